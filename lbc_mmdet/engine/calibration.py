"""Calibration data for one-shot pruning: batches of a config's training set chosen by a
seed, and the statistics of chosen layers' inputs collected with forward hooks.

- **Batches.** ``calibration_batches(dataset, collate, k, batch_size, seed)``: a
  permutation of the dataset's indices drawn from ``torch.Generator().manual_seed(seed)``;
  batch ``b`` holds the images at positions ``[b * batch_size, (b + 1) * batch_size)`` of
  it (``skip`` batches are skipped first: the held-out batches of the prune tool follow
  the calibration ones, so the two never share an image). The training pipeline runs
  (its random augmentations too) with Python's, NumPy's and torch's global RNGs seeded
  from ``seed`` and restored afterwards: the same seed gives the same batches, another
  seed other batches, and the training that follows draws the same random numbers as
  without calibration. Every process of a distributed run draws the same batches.
- **Statistics.** ``collect_input_statistics(model, layers, batches)``: one pass of the
  model in eval mode (``mode='tensor'``, no gradient) per batch, with a forward hook on
  every requested layer that accumulates its input columns (im2col, in the grouping
  order: :mod:`lbc_mmdet.nm.layer_inputs`) into an :class:`~lbc_mmdet.nm.InputStatistics`.
  All layers are collected in the same passes from the model as it is (not re-collected
  after each layer is pruned).
"""
import contextlib
import random
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..errors import LBCError
from ..nm import InputStatistics, conv_input_columns, linear_input_columns


class CalibrationError(LBCError):
    """Calibration cannot run (too few images, an unsupported layer)."""


@contextlib.contextmanager
def seeded_rng(seed: int):
    """Seed Python's, NumPy's and torch's global RNGs with ``seed`` inside, restore them
    on exit."""
    py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(th)


def calibration_indices(num_images: int, k: int, batch_size: int, seed: int,
                        skip: int = 0) -> List[List[int]]:
    """The dataset indices of ``k`` batches (module docstring).

    Raises:
        CalibrationError: The dataset holds fewer than ``(skip + k) * batch_size``
            images.
    """
    need = (skip + k) * batch_size
    if k < 1 or batch_size < 1:
        raise CalibrationError(f'calibration needs k >= 1 batches of >= 1 images, got '
                               f'k={k}, batch_size={batch_size}')
    if need > num_images:
        raise CalibrationError(f'calibration needs {need} images ({skip} + {k} batches '
                               f'of {batch_size}) but the training set has {num_images}')
    perm = torch.randperm(num_images, generator=torch.Generator().manual_seed(int(seed)))
    perm = perm[skip * batch_size:need].tolist()
    return [perm[i * batch_size:(i + 1) * batch_size] for i in range(k)]


def calibration_batches(dataset, collate: Callable, k: int, batch_size: int, seed: int,
                        skip: int = 0) -> Iterator[dict]:
    """Yield ``k`` collated batches of ``dataset`` chosen by ``seed`` (module
    docstring); each batch is made when it is needed."""
    for b, idx in enumerate(calibration_indices(len(dataset), k, batch_size, seed, skip)):
        with seeded_rng(int(seed) * 1000003 + skip + b):
            yield collate([dataset[i] for i in idx])


def dataset_and_collate(dataloader) -> Tuple[object, Callable, int]:
    """``(dataset, collate_fn, batch_size)`` of a built ``DataLoader`` or of a dataloader
    config (the dataset is built then, in the current default scope)."""
    if isinstance(dataloader, torch.utils.data.DataLoader):
        size = dataloader.batch_size or getattr(dataloader.batch_sampler, 'batch_size', 1)
        return dataloader.dataset, dataloader.collate_fn, int(size or 1)
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, FUNCTIONS
    cfg = dict(dataloader)
    dataset = cfg['dataset']
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    collate = cfg.get('collate_fn') or dict(type='pseudo_collate')
    if isinstance(collate, dict):
        collate = dict(collate)
        fn = FUNCTIONS.get(collate.pop('type'))
        collate = (lambda batch, fn=fn, kw=collate: fn(batch, **kw)) if collate else fn
    return dataset, collate or pseudo_collate, int(cfg.get('batch_size', 1))


def eligible_calibration_layer(module: nn.Module) -> bool:
    """A ``Conv2d`` (one group, numeric padding) or ``Linear`` whose inputs can be
    turned into columns."""
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and not isinstance(module.padding, str) and \
            module.padding_mode == 'zeros'
    return isinstance(module, nn.Linear)


def input_columns(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input ``x`` of ``module`` as rows of columns in the grouping order."""
    if isinstance(module, nn.Conv2d):
        return conv_input_columns(x, module.kernel_size, module.stride, module.padding,
                                  module.dilation)
    return linear_input_columns(x)


def forward_batches(model: nn.Module, batches, hooks=()) -> int:
    """Run ``model`` (an MMEngine model: its ``data_preprocessor``, ``mode='tensor'``) in
    eval mode without gradient on every batch, with the forward hooks ``hooks`` (``(module,
    hook)`` pairs) installed meanwhile; the training mode is restored and the hooks removed.
    Returns the number of batches."""
    was_training = model.training
    model.eval()
    count = 0
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        with torch.no_grad():
            for batch in batches:
                data = model.data_preprocessor(batch, False)
                if isinstance(data, dict):
                    model(**data, mode='tensor')
                else:
                    model(*data, mode='tensor')
                count += 1
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return count


def collect_input_statistics(model: nn.Module, layers: Dict[str, Tuple[nn.Module, str]],
                             batches) -> Dict[str, InputStatistics]:
    """``name -> InputStatistics`` of the inputs of every ``layers[name] = (module,
    need)`` (``need``: ``'norms'`` or ``'hessian'``) over ``batches``.

    Raises:
        CalibrationError: An unsupported layer, or a layer that never ran.
    """
    stats: Dict[str, InputStatistics] = {}
    hooks = []
    for name, (module, need) in layers.items():
        if not eligible_calibration_layer(module):
            raise CalibrationError(f'{name}: {type(module).__name__} layers cannot be '
                                   'calibrated (grouped or string-padded convs)')
        cols = module.weight[0].numel()
        stats[name] = InputStatistics(cols, need, device=module.weight.device)

        def hook(mod, args, _out, name=name):
            stats[name].add(input_columns(mod, args[0]))
        hooks.append((module, hook))
    forward_batches(model, batches, hooks)
    silent = [n for n, s in stats.items() if s.rows == 0]
    if silent:
        raise CalibrationError(f'layers never ran during calibration: {silent[:5]}')
    return stats


def measure_output_errors(model: nn.Module, layers: Dict[str, nn.Module],
                          new_weights: Dict[str, torch.Tensor],
                          batches) -> Dict[str, float]:
    """Relative output error ``||W X - W' X|| / ||W X||`` (no bias) of every layer
    ``name`` over ``batches``, with ``W`` the layer's current weight and ``W' =
    new_weights[name]``, ``X`` its inputs in the model as it is."""
    sums: Dict[str, List[float]] = {name: [0.0, 0.0] for name in layers}
    hooks = []
    for name, module in layers.items():
        def hook(mod, args, _out, name=name):
            x = args[0]
            w, w2 = mod.weight.detach(), new_weights[name].to(mod.weight)
            if isinstance(mod, nn.Conv2d):
                y = mod._conv_forward(x, w, None)
                d = mod._conv_forward(x, w - w2, None)
            else:
                y = nn.functional.linear(x, w)
                d = nn.functional.linear(x, w - w2)
            sums[name][0] += float(d.double().pow(2).sum())
            sums[name][1] += float(y.double().pow(2).sum())
        hooks.append((module, hook))
    forward_batches(model, batches, hooks)
    return {name: (d / y) ** 0.5 if y > 0 else 0.0 for name, (d, y) in sums.items()}


def select_layers(model: nn.Module, include: Sequence[str], exclude: Sequence[str],
                  m: int) -> Tuple[Dict[str, nn.Module], Dict[str, str]]:
    """``(eligible layers, skipped layer -> why)`` among the ``Conv2d``/``Linear`` of
    ``model`` whose names match ``include`` and not ``exclude`` (``fnmatch``), in the
    model's module order."""
    from ..nm import group_size_error
    from ..utils import matches
    chosen, skipped = {}, {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)) or not name:
            continue
        if not matches(name, include) or matches(name, exclude):
            continue
        why: Optional[str] = group_size_error(tuple(module.weight.shape), m)
        if why is None and not eligible_calibration_layer(module):
            why = 'grouped or string-padded conv'
        if why is None:
            chosen[name] = module
        else:
            skipped[name] = why
    return chosen, skipped
