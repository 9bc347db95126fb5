"""``TrainFlopsHook``: the training-FLOPs accounting ("FLOPs (Train)") of a run.

Thin MMEngine glue around :class:`lbc_mmdet.nm.flops.TrainFlopsCounter`, whose module
docstring (and ``docs/benchmark.md``) describes the accounting: forward hooks on every
conv / linear layer measure its dense multiply-adds in every training iteration, each
layer costs ``MACs * (forward + input_grad + weight_grad)`` with the densities its
``nm_train_densities()`` reports at the start of the iteration (dense layers: 1, 1, 1),
and the dense-equivalent costs ``MACs * 3``.

The hook logs ``train/flops_ratio`` (cumulative sparse / dense-equivalent training
FLOPs) through the message hub, keeps its totals in the checkpoints (a resumed run goes
on counting), and at the end of training writes ``train_flops.json`` into
``runner.log_dir`` (rank 0): the total ratio, the backbone-only ratio, the breakdown per
method and per layer, the iterations and the training wall time. Under distributed
training the numbers are those of rank 0 (every rank runs the same model on the same
batch size).
"""
import json
import os.path as osp
import time
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS

from ...nm.flops import TrainFlopsCounter

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
        self.counter: Optional[TrainFlopsCounter] = None
        self._loaded_state: Optional[dict] = None
        self._train_time = 0.0  # seconds of earlier (resumed) sessions
        self._start: Optional[float] = None
        self.out_path: Optional[str] = None

    # ------------------------------------------------------------------ helpers
    def _elapsed(self) -> float:
        return self._train_time + (time.time() - self._start if self._start else 0.0)

    def summary(self) -> dict:
        """What ``train_flops.json`` holds."""
        assert self.counter is not None
        out = dict(
            accounting=('multiply-adds of every conv/linear layer; per iteration a layer '
                        'costs MACs * (forward + input_grad + weight_grad) densities from '
                        'nm_train_densities() (dense: 1, 1, 1), dense-equivalent MACs * 3'
                        + ('; gradients counted only where needed' if self.exact_backward
                           else '; every layer counts all three passes') +
                        '; FLOPs = 2 * MACs; see docs/benchmark.md'),
            ratio=self.counter.ratio('total'),
            backbone_ratio=self.counter.ratio('backbone'),
            train_time_s=self._elapsed())
        out.update(self.counter.summary(with_layers=self.with_layers))
        return out

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.counter = TrainFlopsCounter(model, exact_backward=self.exact_backward,
                                         density_interval=self.density_interval,
                                         backbone_prefix=self.backbone_prefix)
        state = self._loaded_state
        if state is not None and runner.iter > 0:
            # resumed: go on from the saved totals (a plain `load_from` starts afresh)
            self.counter.load_state_dict(state)
            self._train_time = float(state.get('train_time_s', 0.0))
        self._loaded_state = None
        self.counter.attach()
        self._start = time.time()
        runner.logger.info(f'TrainFlopsHook: counting {len(self.counter.layers)} '
                           'conv/linear layers')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.counter is not None:
            self.counter.start_iter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.counter is None:
            return
        self.counter.end_iter()
        if self.every_n_train_iters(runner, self.log_interval):
            runner.message_hub.update_scalar('train/flops_ratio', self.counter.ratio())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.counter is not None:
            state = self.counter.state_dict()
            state['train_time_s'] = self._elapsed()
            checkpoint[CHECKPOINT_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_state = checkpoint.get(CHECKPOINT_KEY)

    def after_train(self, runner) -> None:
        if self.counter is None:
            return
        self.counter.detach()
        summary = self.summary()
        runner.logger.info(
            f'Training FLOPs (sparse / dense-equivalent, {summary["iterations"]} '
            f'iterations): total {summary["ratio"]:.4f}, backbone '
            f'{summary["backbone_ratio"]:.4f}')
        if is_main_process():
            self.out_path = osp.join(runner.log_dir, self.filename)
            with open(self.out_path, 'w') as f:
                json.dump(summary, f, indent=2)
            runner.logger.info(f'TrainFlopsHook: wrote {self.out_path}')
