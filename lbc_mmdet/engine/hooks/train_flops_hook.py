"""``TrainFlopsHook``: the training-FLOPs accounting ("FLOPs (Train)") of a run.

Thin MMEngine glue around :class:`lbc_mmdet.accounting.TrainFlopsCounter` (the
accounting is described in ``docs/benchmark.md``), one counter per convention
(``hardware``: every conv/linear layer at the densities it really runs; ``paper``: the
LBC paper's rule, see :mod:`lbc_mmdet.accounting.conventions`).

The hook logs ``train/flops_ratio`` (hardware) and ``train/flops_ratio_paper`` through the
message hub, keeps its totals in the checkpoints (a resumed run goes on counting), and at
the end of training writes ``train_flops.json`` into ``runner.log_dir`` (rank 0). Under
distributed training the numbers are those of rank 0.
"""
import json
import os.path as osp
import time
from typing import Dict, Optional

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...accounting import CONVENTIONS, TrainFlopsCounter
from ...utils import atomic_write

#: the key of the hook's totals in checkpoints
CHECKPOINT_KEY = 'train_flops'


@HOOKS.register_module()
class TrainFlopsHook(Hook):
    """Account the training FLOPs of the (sparse) model against its dense equivalent.

    Add it next to ``NMSparsityHook``::

        custom_hooks = [dict(type='NMSparsityHook'), dict(type='TrainFlopsHook')]

    Args:
        filename (str): Name of the JSON written into ``runner.log_dir`` at the end of
            training. Defaults to ``'train_flops.json'``.
        exact_backward (bool): Count a layer's input gradient only when its input requires
            one, and its weight gradient only when its weight does (the first layer,
            frozen stages). Defaults to False: every layer counts all three passes.
        density_interval (int): Re-read the layers' ``nm_train_densities()`` every this
            many iterations. Defaults to 1.
        log_interval (int): Iterations between updates of ``train/flops_ratio`` in the
            message hub. Defaults to 1.
        backbone_prefix (str): Name prefix of the backbone's layers. Defaults to
            ``'backbone.'``.
        with_layers (bool): Include the per-layer breakdown in the JSON. Defaults to True.
    """
    priority = 'NORMAL'

    def __init__(self,
                 filename: str = 'train_flops.json',
                 exact_backward: bool = False,
                 density_interval: int = 1,
                 log_interval: int = 1,
                 backbone_prefix: str = 'backbone.',
                 with_layers: bool = True) -> None:
        if not str(filename).endswith('.json'):
            raise ValueError(f'TrainFlopsHook: `filename` must end with .json, got '
                             f'{filename!r}')
        if int(density_interval) < 1 or int(log_interval) < 1:
            raise ValueError('TrainFlopsHook: `density_interval` and `log_interval` must '
                             f'be >= 1, got {density_interval}, {log_interval}')
        self.filename = filename
        self.exact_backward = exact_backward
        self.density_interval = int(density_interval)
        self.log_interval = int(log_interval)
        self.backbone_prefix = backbone_prefix
        self.with_layers = with_layers
        self.counters: Dict[str, TrainFlopsCounter] = {}
        self._loaded_state: Optional[dict] = None
        self._train_time = 0.0  # seconds of earlier (resumed) sessions
        self._start: Optional[float] = None
        self.out_path: Optional[str] = None

    # ------------------------------------------------------------------ helpers
    @property
    def counter(self) -> Optional[TrainFlopsCounter]:
        """The ``hardware`` counter (None before training)."""
        return self.counters.get('hardware')

    def _elapsed(self) -> float:
        return self._train_time + (time.time() - self._start if self._start else 0.0)

    def summary(self) -> dict:
        """What ``train_flops.json`` holds: the ``hardware`` accounting at the top level,
        the ``paper`` one under ``paper``."""
        assert self.counter is not None
        paper = self.counters['paper']
        out = dict(
            accounting=('hardware: multiply-adds of every conv/linear layer; per '
                        'iteration a layer costs MACs * (forward + input_grad + '
                        'weight_grad) densities from nm_train_densities() (dense: 1, 1, 1), '
                        'dense-equivalent MACs * 3'
                        + ('; gradients counted only where needed' if self.exact_backward
                           else '; every layer counts all three passes') +
                        '; FLOPs = 2 * MACs. paper: the N:M layers only, input gradient '
                        'dense (the LBC paper\'s rule). See docs/benchmark.md'),
            ratio=self.counter.ratio('total'),
            backbone_ratio=self.counter.ratio('backbone'),
            paper_ratio=paper.ratio('total'),
            train_time_s=self._elapsed())
        out.update(self.counter.summary(with_layers=self.with_layers))
        out['paper'] = paper.summary(with_layers=False)
        return out

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.counters = {
            c: TrainFlopsCounter(model, exact_backward=self.exact_backward,
                                 density_interval=self.density_interval,
                                 backbone_prefix=self.backbone_prefix, convention=c)
            for c in CONVENTIONS}
        state = self._loaded_state
        if state is not None and runner.iter > 0:
            # resumed: go on from the saved totals (a plain `load_from` starts afresh)
            for c, counter in self.counters.items():
                saved = state.get(c, state if c == 'hardware' else None)
                if saved is not None:
                    counter.load_state_dict(saved)
            self._train_time = float(state.get('train_time_s', 0.0))
        self._loaded_state = None
        for counter in self.counters.values():
            counter.attach()
        self._start = time.time()
        runner.logger.info(f'TrainFlopsHook: counting {len(self.counter.layers)} '
                           'conv/linear layers')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        for counter in self.counters.values():
            counter.start_iter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self.counters:
            return
        for counter in self.counters.values():
            counter.end_iter()
        if self.every_n_train_iters(runner, self.log_interval):
            runner.message_hub.update_scalar('train/flops_ratio', self.counter.ratio())
            runner.message_hub.update_scalar('train/flops_ratio_paper',
                                             self.counters['paper'].ratio())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.counters:
            state = {c: counter.state_dict() for c, counter in self.counters.items()}
            state['train_time_s'] = self._elapsed()
            checkpoint[CHECKPOINT_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_state = checkpoint.get(CHECKPOINT_KEY)

    def after_train(self, runner) -> None:
        if self.counter is None:
            return
        for counter in self.counters.values():
            counter.detach()
        summary = self.summary()
        runner.logger.info(
            f'Training FLOPs (sparse / dense-equivalent, {summary["iterations"]} '
            f'iterations): total {summary["ratio"]:.4f}, backbone '
            f'{summary["backbone_ratio"]:.4f}; paper convention {summary["paper_ratio"]:.4f}')
        if is_main_process():
            self.out_path = osp.join(runner.log_dir, self.filename)
            atomic_write(self.out_path, json.dumps(summary, indent=2))
            runner.logger.info(f'TrainFlopsHook: wrote {self.out_path}')
