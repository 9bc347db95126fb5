"""``CalibrationHook``: give the sparse layers that ask for it the statistics of their
inputs on calibration data, once, at the start of training (or before a test).

It knows no method: it asks every sparse layer what it still needs
(``layer.nm_calibration_needs()``: ``None``, ``'weights'`` -- calibrated from its own
weights, no data --, ``'norms'`` or ``'hessian'``), runs the calibration forward passes
once for all of those that need data (:mod:`lbc_mmdet.engine.calibration`:
``batches`` batches of the training set chosen by ``seed``, default the run's seed), and
calls ``layer.nm_calibrate(stats)`` on each, in the model's module order.

Order of events in ``Runner.train()``: the optimizer is built, the weights are loaded
(``load_from``), then ``before_train``: this hook (priority ``ABOVE_NORMAL``) runs before
``NMSparsityHook`` (``NORMAL``). On a resume nothing is asked for: the layers' calibrated
state is in the checkpoint (and the hook does nothing after iteration 0 anyway). Under
``tools/test.py`` (``before_test``/``before_val``) it calibrates the layers that still need
it, so that a one-shot config evaluates a dense checkpoint pruned, without training. EMA
copies of the model (any hook with an ``ema_model``) get the calibrated weights and state.
"""
import time
from typing import Dict, Optional, Tuple

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...layers import sparse_layers
from ..calibration import calibration_batches, collect_input_statistics, dataset_and_collate


@HOOKS.register_module()
class CalibrationHook(Hook):
    """Calibrate the sparse layers that ask for it (module docstring).

    Args:
        batches (int): Calibration batches. Defaults to 8.
        seed (int, optional): Chooses the batches; default: the run's seed
            (``randomness.seed``), else 0.
        batch_size (int, optional): Images per batch; default: the training
            dataloader's.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, batches: int = 8, seed: Optional[int] = None,
                 batch_size: Optional[int] = None) -> None:
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ValueError(f'CalibrationHook: `batches` must be a positive integer, got '
                             f'{batches!r}')
        self.batches = batches
        self.seed = seed
        self.batch_size = batch_size
        self.report: Optional[Dict] = None

    def _model(self, runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _source(self, runner):
        loop = getattr(runner, '_train_loop', None)
        if loop is not None and not isinstance(loop, dict):
            return dataset_and_collate(runner.train_dataloader)
        return dataset_and_collate(runner.cfg.train_dataloader)

    @torch.no_grad()
    def calibrate(self, runner) -> Dict:
        model = self._model(runner)
        wanted: Dict[str, Tuple[torch.nn.Module, str]] = {}
        for name, layer in sparse_layers(model):
            need = layer.nm_calibration_needs()
            if need is not None:
                wanted[name] = (layer, need)
        if not wanted:
            return dict(layers=0)
        seed = self.seed if self.seed is not None else (getattr(runner, 'seed', None) or 0)
        dataset, collate, batch_size = self._source(runner)
        batch_size = self.batch_size or batch_size
        start = time.time()
        # 'weights': the layer is calibrated from its own weights, with no data
        data = {name: lw for name, lw in wanted.items() if lw[1] != 'weights'}
        runner.logger.info(f'CalibrationHook: {len(wanted)} layers ask for calibration, '
                           f'{len(data)} of them for data; {self.batches} batches of '
                           f'{batch_size} images (seed {seed})')
        stats = {}
        if data:
            batches = calibration_batches(dataset, collate, self.batches, batch_size, seed)
            stats = collect_input_statistics(model, data, batches)
        changed = 0
        for name, (layer, _) in wanted.items():
            changed += int(layer.nm_calibrate(stats.pop(name, None)))
        self._sync_ema(runner, model, list(wanted))
        self.report = dict(layers=len(wanted), changed=changed, seed=int(seed),
                           batches=self.batches, batch_size=batch_size,
                           seconds=time.time() - start)
        runner.logger.info(f'CalibrationHook: calibrated {changed}/{len(wanted)} layers '
                           f'in {self.report["seconds"]:.1f}s')
        return self.report

    def _sync_ema(self, runner, model, names) -> None:
        state = model.state_dict()
        for hook in runner.hooks:
            ema = getattr(hook, 'ema_model', None)
            if ema is None or hook is self:
                continue
            target = getattr(ema, 'module', ema)
            own = target.state_dict()
            for name in names:
                for key, value in state.items():
                    if key.startswith(name + '.') and key in own:
                        own[key].copy_(value)

    def before_train(self, runner) -> None:
        if runner.iter != 0:
            runner.logger.info(f'CalibrationHook: resumed at iteration {runner.iter}: '
                               'not calibrated again (the state is in the checkpoint)')
            return
        self.calibrate(runner)

    def before_val(self, runner) -> None:
        if getattr(runner, '_train_loop', None) is None or \
                isinstance(runner._train_loop, dict):
            self.calibrate(runner)  # a val-only run (not the validation inside training)

    def before_test(self, runner) -> None:
        self.calibrate(runner)
