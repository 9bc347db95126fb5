"""One-shot N:M pruning of a trained dense detector from calibration data
(``tools/prune.py``): magnitude, Wanda or SparseGPT, no training.

Steps (``docs/deployment.md``, "From a trained dense detector to 2:4 in one command"):

1. build the dense model of the config and load the checkpoint strictly;
2. choose the layers: every ``Conv2d``/``Linear`` whose name matches ``include`` (default
   the backbone) and not ``exclude``, with input channels divisible by M (the stem stays
   dense), in the model's module order;
3. calibration (``wanda``: the input column norms, ``sparsegpt``: ``X^T X``): ``k``
   batches of the config's training set chosen by ``seed``, one pass of the dense model,
   every layer's statistics collected in the same passes (not re-collected after each
   layer is pruned: :mod:`lbc_mmdet.engine.calibration`);
4. prune every layer (:func:`lbc_mmdet.nm.prune_weight`);
5. report, per layer, the relative output error ``||W X - W' X|| / ||W X||`` on
   ``heldout`` further batches of the same seeded order (no image shared with the
   calibration batches; the inputs are those of the dense model), and its mean over the
   backbone;
6. write the dense checkpoint with the pruned weights (loads into the dense config with
   ``strict=True``, accepted by ``tools/verify_nm.py``) and the JSON report.
"""
import json
import os.path as osp
import time
from typing import Dict, Optional, Sequence

import torch
from mmengine.logging import print_log

from ..deploy.verify import verify_nm
from ..engine.calibration import (
    calibration_batches,
    collect_input_statistics,
    dataset_and_collate,
    measure_output_errors,
    select_layers,
)
from ..engine.config_path import readable_config_errors
from ..errors import LBCError
from ..layers import sparse_layers
from ..nm import criterion_needs, prune_weight, validate_pattern
from ..utils import atomic_torch_save, atomic_write
from ..version import __version__
from .models import build_model, load_checkpoint_strict

#: Fields of the source checkpoint's ``meta`` carried over.
META_KEYS = ('dataset_meta', 'experiment_name', 'epoch', 'iter', 'seed', 'mmdet_version',
             'mmengine_version')


def backbone_mean(errors: Dict[str, float]) -> Optional[float]:
    """Mean relative output error of the ``backbone.`` layers (None if none)."""
    values = [v for k, v in errors.items() if k.startswith('backbone.')]
    return sum(values) / len(values) if values else None


def prune_checkpoint(config: str, checkpoint: str, out: str, method: str = 'sparsegpt',
                     n: int = 2, m: int = 4, calib_batches: int = 8, seed: int = 0,
                     heldout_batches: int = 2, damp: float = 0.01, block_size: int = 128,
                     batch_size: Optional[int] = None,
                     include: Sequence[str] = ('backbone.*', ),
                     exclude: Sequence[str] = (), report_path: Optional[str] = None,
                     cfg_options: Optional[dict] = None, logger='current') -> dict:
    """Prune ``checkpoint`` of the dense ``config`` one-shot (module docstring), write
    ``out`` and the JSON report (``out + '.json'`` by default); returns the report.

    Raises:
        LBCError: A missing or unreadable config/checkpoint, a sparse config, a bad
            pattern or option, too few training images.
    """
    start = time.time()
    try:
        validate_pattern(n, m)
        need = criterion_needs(method)
    except ValueError as err:
        raise LBCError(str(err)) from err
    if block_size < m or block_size % m:
        raise LBCError(f'--block-size must be a positive multiple of M={m}, got '
                       f'{block_size}')
    if damp < 0 or calib_batches < 1 or heldout_batches < 0:
        raise LBCError('need --damp >= 0, --calib-batches >= 1 and --heldout-batches >= 0')
    print_log(f'building the model of {config}', logger=logger)
    cfg, model = build_model(config, cfg_options)
    if sparse_layers(model):
        raise LBCError(f'{config} builds N:M sparse layers: pass the dense config the '
                       'checkpoint was trained with')
    print_log(f'loading {checkpoint}', logger=logger)
    ckpt = load_checkpoint_strict(model, checkpoint, config)
    model.eval()
    layers, skipped = select_layers(model, include, exclude, m)
    if not layers:
        raise LBCError(f'no Conv2d/Linear layer matching {list(include)} can be pruned '
                       f'to {n}:{m}')
    print_log(f'{len(layers)} layers to prune {n}:{m} by {method} (module order), '
              f'{len(skipped)} left dense: {sorted(skipped)[:4]}', logger=logger)
    with readable_config_errors(config):
        dataset, collate, loader_bs = dataset_and_collate(cfg.train_dataloader)
    bs = batch_size or loader_bs

    def batches(k, skip=0):
        return calibration_batches(dataset, collate, k, bs, seed, skip)

    stats = {}
    if need is not None:
        print_log(f'calibration: {calib_batches} batches of {bs} training images (seed '
                  f'{seed}), collecting {need} for every layer', logger=logger)
        stats = collect_input_statistics(
            model, {name: (mod, need) for name, mod in layers.items()},
            batches(calib_batches))
    new_weights, masks = {}, {}
    for i, (name, mod) in enumerate(layers.items(), 1):
        new_weights[name], masks[name] = prune_weight(
            mod.weight, n, m, method, stats.pop(name, None), damp=damp,
            block_size=block_size)
        if i % 10 == 0 or i == len(layers):
            print_log(f'pruned {i}/{len(layers)} layers', logger=logger)
    errors: Dict[str, float] = {}
    if heldout_batches:
        print_log(f'relative output error on {heldout_batches} held-out batches',
                  logger=logger)
        errors = measure_output_errors(model, layers, new_weights,
                                       batches(heldout_batches, skip=calib_batches))
    with torch.no_grad():
        for name, mod in layers.items():
            mod.weight.copy_(new_weights[name].to(mod.weight))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    check = verify_nm(state, n, m, include=[f'{name}.weight' for name in layers])
    if not check.ok:  # a bug, not a user error
        raise RuntimeError(check.summary())
    src_meta = ckpt.get('meta') or {}
    meta = {k: src_meta[k] for k in META_KEYS if k in src_meta}
    report = dict(
        version=__version__, method=method, pattern=f'{n}:{m}', n=n, m=m, seed=seed,
        calib_batches=calib_batches if need else 0, heldout_batches=heldout_batches,
        batch_size=bs, damp=damp if method == 'sparsegpt' else None,
        block_size=block_size if method == 'sparsegpt' else None,
        config=config, source_checkpoint=osp.abspath(checkpoint), output=osp.abspath(out),
        calibration='collected once from the dense model (not sequential)',
        layers={name: dict(shape=list(mod.weight.shape),
                           relative_output_error=errors.get(name)) for name, mod in
                layers.items()},
        skipped=skipped, mean_relative_output_error_backbone=backbone_mean(errors),
        mean_relative_output_error=(sum(errors.values()) / len(errors)
                                    if errors else None),
        seconds=time.time() - start)
    meta['lbc_mmdet_prune'] = {k: v for k, v in report.items() if k not in ('layers', )}
    atomic_torch_save(dict(state_dict=state, meta=meta), out)
    torch.load(out, map_location='cpu', weights_only=True)  # stock tools can load it
    report_path = report_path or out + '.json'
    atomic_write(report_path, json.dumps(report, indent=2))
    _log_report(report, logger)
    print_log(f'wrote {out}', logger=logger)
    print_log(f'wrote {report_path}', logger=logger)
    return report


def _log_report(report: dict, logger) -> None:
    rows = [(name, v['relative_output_error']) for name, v in report['layers'].items()]
    if any(e is not None for _, e in rows):
        width = max(len(name) for name, _ in rows)
        lines = [f'{"layer":<{width}}  rel. output error']
        lines += [f'{name:<{width}}  {e:.4f}' for name, e in rows if e is not None]
        print_log('\n'.join(lines), logger=logger)
    mean = report['mean_relative_output_error_backbone']
    print_log(f"{report['method']} {report['pattern']}: {len(rows)} layers pruned; mean "
              'relative output error over the backbone: '
              + ('n/a' if mean is None else f'{mean:.4f}'), logger=logger)
