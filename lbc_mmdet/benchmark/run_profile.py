"""Where a training run's time goes: :class:`RunProfiler` attaches timers to a built
MMEngine ``Runner`` and splits its wall time into the detector's forward and backward,
the sparse layers' weight-side work, the optimizer, the hooks, evaluation and data
loading (``tools/profile_training.py``). Knows the methods only through the layer
protocol.

The split is measured in the run itself by wrapping callables of the built objects (no
profiler, no sampling):

- ``data``: what the loop waits for its next batch (the run's wall time of the training
  loop minus everything below, i.e. data loading and the loop's own bookkeeping);
- ``preprocess``: the data preprocessor (batching, normalisation);
- ``forward``: the detector's loss forward, *without* the sparse layers' weight side;
- ``weight_side_forward``: every sparse layer's ``forward_weight()`` (the masked weight
  and what its backward needs), measured inside the forward;
- ``backward``: ``loss.backward()`` (the detector's backward *and* the weight side's);
- ``clip_grad`` / ``optimizer``: gradient clipping and the optimizer's step;
- ``zero_grad``;
- ``hook:<Name>``: every hook's ``before_train_iter`` / ``after_train_iter`` (the N:M
  schedule, logging, checkpoint saving ...);
- ``evaluation``: the validation loops run during training.

The weight side's share of the backward cannot be isolated inside autograd's single pass;
:func:`~lbc_mmdet.benchmark.weight_side.weight_side_ms` times it alone afterwards (the
tool reports it beside the in-run split).
"""
import time
from collections import defaultdict
from typing import Callable, Dict, List

from ..layers import NMSparseMixin


class RunProfiler:
    """Cumulative wall-clock timers on a built runner (see module docstring).

    Args:
        runner (Runner): A built ``mmengine.runner.Runner`` (before ``train()``).
    """

    #: report order of the fixed entries
    ORDER = ('data', 'preprocess', 'forward', 'weight_side_forward', 'backward',
             'clip_grad', 'optimizer', 'zero_grad', 'evaluation')

    def __init__(self, runner) -> None:
        self.runner = runner
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self._depth: Dict[str, int] = defaultdict(int)
        self.train_wall = 0.0
        self.iterations = 0

    # ------------------------------------------------------------------ wrapping
    def _timed(self, key: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            if self._depth[key] or (key != 'evaluation' and self._depth['evaluation']):
                # re-entrant, or inside evaluation (counted as evaluation)
                return fn(*args, **kwargs)
            self._depth[key] += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - t0
                self.calls[key] += 1
                self._depth[key] -= 1
        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapper

    def _wrap_attr(self, obj, name: str, key: str) -> None:
        fn = getattr(obj, name, None)
        if fn is not None:
            setattr(obj, name, self._timed(key, fn))

    def attach(self) -> 'RunProfiler':
        """Wrap the model, the optimizer wrapper, the hooks and the loops. Call after the
        runner's components are built (``runner.train()`` builds them lazily: use
        :meth:`attach_on_train`)."""
        runner = self.runner
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        self._wrap_attr(model.data_preprocessor, 'forward', 'preprocess')
        self._wrap_attr(model, 'forward', 'forward')
        for mod in model.modules():
            if isinstance(mod, NMSparseMixin) and mod.nm_eligible:
                self._wrap_attr(mod, 'forward_weight', 'weight_side_forward')
        wrapper = runner.optim_wrapper
        self._wrap_attr(wrapper, 'backward', 'backward')
        self._wrap_attr(wrapper, '_clip_grad', 'clip_grad')
        self._wrap_attr(wrapper.optimizer, 'step', 'optimizer')
        self._wrap_attr(wrapper, 'zero_grad', 'zero_grad')
        for hook in runner.hooks:
            if hook is self._entry_hook:
                continue
            name = f'hook:{type(hook).__name__}'
            for stage in ('before_train_iter', 'after_train_iter'):
                self._wrap_attr(hook, stage, name)
        if getattr(runner, '_val_loop', None) is not None:
            self._wrap_attr(runner.val_loop, 'run', 'evaluation')
        return self

    _entry_hook = None

    def attach_on_train(self) -> 'RunProfiler':
        """Register a hook that attaches the timers once training starts (after the
        optimizer wrapper and loops exist) and measures the training loop's wall time."""
        from mmengine.hooks import Hook

        profiler = self

        class _Entry(Hook):
            priority = 'LOWEST'

            def before_train(self, runner) -> None:
                # the model's `forward` attribute, optimizer and loops exist now
                runner.val_loop  # noqa: B018 (builds the val loop if configured)
                profiler.attach()
                profiler._t0 = time.perf_counter()

            def after_train_iter(self, runner, batch_idx, data_batch=None,
                                 outputs=None) -> None:
                profiler.iterations += 1

            def after_train(self, runner) -> None:
                profiler.train_wall = time.perf_counter() - profiler._t0

        self._entry_hook = _Entry()
        self.runner.register_hook(self._entry_hook)
        return self

    # ------------------------------------------------------------------ report
    def split(self) -> Dict[str, float]:
        """Seconds per entry; ``forward`` excludes the weight side and ``data`` is the
        remainder of the training loop's wall time."""
        out = dict(self.seconds)
        if 'forward' in out:
            out['forward'] -= out.get('weight_side_forward', 0.0)
        measured = sum(v for k, v in out.items())
        out['data'] = max(self.train_wall - measured, 0.0)
        return out

    def rows(self) -> List[Dict[str, float]]:
        """``name, seconds, share, ms_per_iter`` per entry (fixed entries first, then
        hooks by cost)."""
        split = self.split()
        total = self.train_wall or sum(split.values()) or 1.0
        iters = max(self.iterations, 1)
        keys = [k for k in self.ORDER if k in split]
        keys += sorted((k for k in split if k not in self.ORDER), key=lambda k: -split[k])
        return [dict(name=k, seconds=split[k], share=split[k] / total,
                     ms_per_iter=1e3 * split[k] / iters) for k in keys]
