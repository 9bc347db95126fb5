"""``NMSparsityHook``: tells every N:M sparse layer where training is.

The hook only decides *when* (``nm_update(state)`` after every iteration); each layer's
method decides *what*. It lists the layers left dense and each method's notes at the start,
reports layers initialised from a dense checkpoint, logs the sparsity state through
MMEngine's message hub, and keeps an EMA model's masks equal to the live model's: MMEngine's
averaged models average only floating-point state, so the methods' own buffers
(``nm_extra_state_names``) are copied into the EMA model after each update
(``nm_copy_state_to``). Use the EMA
model's ``masked_weight()``, never its raw (averaged latent) weights. Before every iteration
it sets each layer's ``nm_grad_scale`` (:func:`grad_scale_of`): what AMP loss scaling and
gradient accumulation multiply the gradient reaching the layers' backward by.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from ...errors import ModelError
from ...layers import (
    NMScheduleState,
    NMSparseMixin,
    display_name,
    set_nm_grad_scale,
    sparse_layer_types,
    sparse_layers,
)
from ...nm import removal_schedule_error
from .nm_diagnostics import append_record, collect_diagnostics, layer_info


def grad_scale_of(optim_wrapper) -> float:
    """How many times larger than the iteration's true gradient the gradient reaching
    the layers' backward is in the coming ``optim_wrapper.update_params(loss)``.

    MMEngine's ``OptimWrapper.update_params`` divides the loss by the accumulation loss
    factor (``scale_loss``: ``accumulative_counts``, or the remainder in the last, partial
    window of training), and ``AmpOptimWrapper.backward`` multiplies it by its
    ``loss_scaler``'s current scale (a ``GradScaler``: 65536 initially, dynamic; 1.0 when
    disabled). The product of the two is returned (1.0 for anything else, e.g. an
    ``OptimWrapperDict``). Reading the scale costs one host sync.
    """
    scale_loss = getattr(optim_wrapper, 'scale_loss', None)
    if scale_loss is None or not hasattr(optim_wrapper, '_accumulative_counts'):
        return 1.0
    try:
        factor = float(scale_loss(torch.ones((), dtype=torch.float64)))
    except AssertionError:  # mmengine: past the last iteration of a bad count status
        factor = 1.0 / optim_wrapper._accumulative_counts
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    if scaler is not None and getattr(scaler, 'is_enabled', lambda: True)():
        factor *= float(scaler.get_scale())
    return factor if math.isfinite(factor) and factor > 0 else 1.0


def dense_init_summary(model) -> List[str]:
    """One line per method whose layers were initialised from a dense checkpoint (a
    checkpoint without the method's state, see ``NMSparseMixin``); clears the marks."""
    by_method: Dict[str, List[NMSparseMixin]] = {}
    for _, layer in sparse_layers(model):
        if getattr(layer, 'nm_init_from_dense', False):
            by_method.setdefault(layer.nm_method, []).append(layer)
            layer.nm_init_from_dense = False
    lines = []
    for method, layers in sorted(by_method.items()):
        names = ', '.join(layers[0].nm_state_tensors())
        lines.append(f'initialised {display_name(method)} state ({names}) for '
                     f'{len(layers)} layers from a dense checkpoint')
    return lines


@HOOKS.register_module()
class NMSparsityHook(Hook):
    """Drive the N:M schedule of every sparse layer of the model.

    Time ``t`` counts epochs for epoch-based loops and iterations for iteration-based
    loops. By default it advances after every iteration (fractional epochs), so a 12-epoch
    schedule changes the masks smoothly; ``step_by_epoch=True`` only advances at epoch
    ends, as in the paper. What ``ti`` and ``tf`` mean for each method is in
    ``docs/methods.md``.

    Args:
        ti (float): Start of the sparsification window. Defaults to 0.
        tf (float, optional): End of the window. Defaults to half of training, as in the
            LBC paper.
        step_by_epoch (bool): For epoch-based loops, advance ``t`` only at epoch ends.
            Defaults to False.
        log_interval (int): Iterations between log updates of the sparsity scalars.
            Defaults to 1 (they are cheap: recomputed only when a mask changes).
        diag_interval (int): Iterations between mask-health diagnostics (flip rate and
            the methods' own values, ``docs/methods.md``): their mean over the layers
            goes to the message hub (``train/nm_<name>``), every layer's to
            ``<log_dir>/nm_diagnostics.jsonl``. 0 disables them. Defaults to 10.
    """
    priority = 'NORMAL'

    def __init__(self,
                 ti: float = 0,
                 tf: Optional[float] = None,
                 step_by_epoch: bool = False,
                 log_interval: int = 1,
                 diag_interval: int = 10) -> None:
        for name, value in (('ti', ti), ('tf', tf)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise ValueError(f'NMSparsityHook: `{name}` must be a number, got '
                                 f'{value!r}')
        if tf is not None:
            err = removal_schedule_error(ti, tf)
            if err:
                raise ValueError(f'NMSparsityHook: {err}')
        elif ti < 0:
            raise ValueError(f'NMSparsityHook: `ti` must be >= 0, got ti={ti}')
        self.ti = float(ti)
        self.tf = None if tf is None else float(tf)
        self.step_by_epoch = step_by_epoch
        self.log_interval = log_interval
        if isinstance(diag_interval, bool) or not isinstance(diag_interval, int) \
                or diag_interval < 0:
            raise ValueError(f'NMSparsityHook: `diag_interval` must be an integer >= 0, '
                             f'got {diag_interval!r}')
        self.diag_interval = diag_interval
        self._layers: List[Tuple[str, NMSparseMixin]] = []
        self._stats: Dict[str, float] = {}
        self._ema_pairs: List[Tuple[NMSparseMixin, NMSparseMixin]] = []

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _report_dense_init(self, runner) -> None:
        for line in dense_init_summary(self._model(runner)):
            runner.logger.info(line)

    @staticmethod
    def _by_epoch(runner) -> bool:
        # IterBasedTrainLoop also has a `max_epochs` (of 1): test the loop's type
        return isinstance(runner.train_loop, EpochBasedTrainLoop)

    def _total(self, runner) -> float:
        loop = runner.train_loop
        return float(loop.max_epochs if self._by_epoch(runner) else loop.max_iters)

    def _time(self, runner, iters_done: int) -> float:
        if not self._by_epoch(runner):
            return float(iters_done)
        per_epoch = len(runner.train_dataloader)
        if self.step_by_epoch:
            return float(iters_done // per_epoch)
        return iters_done / per_epoch

    def _update(self, runner, iters_done: int) -> bool:
        state = NMScheduleState(t=self._time(runner, iters_done), ti=self.ti,
                                tf=self.tf, iteration=iters_done)
        changed = False
        for _, layer in self._layers:
            changed |= bool(layer.nm_update(state))
        return changed

    def _collect_stats(self) -> Dict[str, float]:
        """Overall sparsity and exact-N:M count of the eligible layers, plus the mean
        over layers of every method-specific statistic (LBC ``alive_mean``, BAME
        ``designated_frac`` ...), logged as ``nm_<name>``."""
        numel = nonzero = exact = 0.0
        eligible = 0
        extra: Dict[str, List[float]] = {}
        for _, layer in self._layers:
            s = layer.nm_stats()
            if not s.get('eligible'):
                continue
            eligible += 1
            numel += s['numel']
            nonzero += s['nonzero']
            exact += s['exact']
            for key, value in s.items():
                if key not in ('eligible', 'numel', 'nonzero', 'exact'):
                    extra.setdefault(key, []).append(float(value))
        stats = dict(nm_sparsity=1.0 - nonzero / max(numel, 1.0),
                     nm_exact_layers=exact, nm_sparse_layers=float(eligible))
        for key, values in extra.items():
            stats[f'nm_{key}'] = sum(values) / len(values)
        return stats

    def _find_ema_pairs(self, runner) -> List[Tuple[NMSparseMixin, NMSparseMixin]]:
        """``(live layer, EMA layer)`` for every sparse layer, when an EMA hook (any hook
        with an ``ema_model``, e.g. MMEngine's ``EMAHook``) averages the model."""
        pairs = []
        live = dict(self._layers)
        for hook in runner.hooks:
            ema = getattr(hook, 'ema_model', None)
            if ema is None:
                continue
            ema = getattr(ema, 'module', ema)
            for name, mod in ema.named_modules():
                if isinstance(mod, NMSparseMixin) and name in live:
                    pairs.append((live[name], mod))
        return pairs

    def _sync_ema(self, runner) -> None:
        """Copy the method's mask state of the live layers into the EMA model
        (:meth:`NMSparseMixin.nm_copy_state_to`)."""
        if not self._ema_pairs:
            self._ema_pairs = self._find_ema_pairs(runner)
        for src, dst in self._ema_pairs:
            src.nm_copy_state_to(dst)

    def _diagnose(self, runner, iters_done: int, start: bool = False,
                  final: bool = False) -> None:
        """Log the layers' mask-health diagnostics (``diag_interval``)."""
        mean, per_layer = collect_diagnostics(self._layers, start=start)
        for key, value in mean.items():
            runner.message_hub.update_scalar(f'train/nm_{key}', value)
        log_dir = getattr(runner, 'log_dir', None)
        if log_dir and is_main_process():
            methods = sorted({lay.nm_method for _, lay in self._layers if lay.nm_eligible})
            record = dict(iter=int(iters_done), t=self._time(runner, iters_done),
                          methods=methods, start=start, final=final, mean=mean,
                          layers=per_layer)
            if start:
                record['layer_info'] = layer_info(self._layers)
            append_record(log_dir, record)

    def _log(self, runner) -> None:
        for key, value in self._stats.items():
            runner.message_hub.update_scalar(f'train/{key}', value)

    # ------------------------------------------------------------------ hooks
    def before_run(self, runner) -> None:
        self._layers = sparse_layers(self._model(runner))
        if not self._layers:
            types = ', '.join(sorted(sparse_layer_types()))
            raise ModelError(
                'NMSparsityHook: the model has no N:M sparse layer. Give the backbone '
                "`conv_cfg=dict(type=<an N:M layer>, n=2, m=4)` (registered layers: "
                f"{types}), or build the model with type='NMSparsify'; see "
                'configs/_base_/sparsity/.')
        eligible = [(n, lay) for n, lay in self._layers if lay.nm_eligible]
        dense = [(n, lay) for n, lay in self._layers if not lay.nm_eligible]
        methods = sorted({lay.nm_method for _, lay in eligible})
        patterns = sorted({f'{lay.nm_n}:{lay.nm_m}' for _, lay in eligible})
        lines = [f'N:M sparsity: {len(eligible)} sparse layers ({", ".join(methods)} '
                 f'{", ".join(patterns)}), {len(dense)} left dense']
        lines += [f'  left dense: {n} ({lay.nm_skip_reason})' for n, lay in dense]
        notes: Dict[str, List[str]] = {}
        for n, lay in eligible:
            for note in lay.nm_warnings():
                notes.setdefault(note, []).append(n)
        lines += [f'  {len(names)} layers {note}: {", ".join(names)}'
                  for note, names in notes.items()]
        runner.logger.info('\n'.join(lines))

    def before_val(self, runner) -> None:
        self._report_dense_init(runner)

    def before_test(self, runner) -> None:
        self._report_dense_init(runner)

    def before_train(self, runner) -> None:
        self._report_dense_init(runner)
        total = self._total(runner)
        if self.tf is None:
            self.tf = total / 2.0
            err = removal_schedule_error(self.ti, self.tf)
            if err:
                raise ValueError(f'NMSparsityHook: {err} (tf defaults to half of '
                                 f'training, {total})')
        runner.logger.info(
            f'N:M schedule: ti={self.ti:g}, tf={self.tf:g} '
            f'({"epochs" if self._by_epoch(runner) else "iterations"}, '
            f'{"per epoch" if self.step_by_epoch else "every iteration"})')
        # bring the layers to the current point (t = 0, or where a resume left off)
        self._update(runner, runner.iter)
        self._stats = self._collect_stats()
        self._ema_pairs = []
        self._sync_ema(runner)
        if self.diag_interval:
            self._diagnose(runner, runner.iter, start=True)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        scale = grad_scale_of(getattr(runner, 'optim_wrapper', None))
        for _, layer in self._layers:
            layer.nm_grad_scale = scale

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._update(runner, runner.iter + 1):
            self._stats = self._collect_stats()
        self._sync_ema(runner)
        if self.every_n_train_iters(runner, self.log_interval):
            self._log(runner)
        if self.diag_interval and self.every_n_train_iters(runner, self.diag_interval):
            self._diagnose(runner, runner.iter + 1)

    def after_train(self, runner) -> None:
        set_nm_grad_scale(self._model(runner), 1.0)
        if self.diag_interval:
            self._diagnose(runner, runner.iter, final=True)
        self._sync_ema(runner)
        stats = self._collect_stats()
        runner.logger.info(
            'N:M sparsity at the end of training: '
            f'{int(stats["nm_exact_layers"])}/{int(stats["nm_sparse_layers"])} layers '
            f'exactly N:M, sparsity {stats["nm_sparsity"]:.4f}')
