"""Early, readable checks that a config's dataset files exist.

Without them a missing annotation file surfaces as a deep stack trace from
inside dataset construction, after the model has been built.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..errors import LBCError

#: Which dataloaders / evaluators each phase needs.
PHASES = {
    'train': (('train_dataloader', 'train_cfg'), ('val_dataloader', 'val_cfg'),
              ('val_evaluator', 'val_cfg')),
    'val': (('val_dataloader', 'val_cfg'), ('val_evaluator', 'val_cfg')),
    'test': (('test_dataloader', 'test_cfg'), ('test_evaluator', 'test_cfg')),
}


class DatasetNotFoundError(LBCError, FileNotFoundError):
    """A dataset file or folder named by the config does not exist."""


def _is_remote(path: str) -> bool:
    """Whether ``path`` is a URI (``s3://`` ...) rather than a local path."""
    return '://' in path


def _join(root: Optional[str], path: str) -> str:
    """Joins like mmengine's ``BaseDataset`` (only relative paths, root set)."""
    if root and not osp.isabs(path) and not _is_remote(path):
        return osp.join(root, path)
    return path


def _iter_datasets(cfg: Any, where: str) -> Iterator[Tuple[str, Mapping]]:
    """Yields ``(location, dataset_cfg)`` of every leaf dataset in ``cfg``.

    Follows dataset wrappers (``dataset=`` of ``RepeatDataset`` /
    ``ClassBalancedDataset`` ..., ``datasets=[...]`` of ``ConcatDataset``).
    """
    if not isinstance(cfg, Mapping):
        return
    if isinstance(cfg.get('dataset'), Mapping):
        yield from _iter_datasets(cfg['dataset'], f'{where}.dataset')
    datasets = cfg.get('datasets')
    if isinstance(datasets, Sequence) and not isinstance(datasets, str):
        for i, sub in enumerate(datasets):
            yield from _iter_datasets(sub, f'{where}.datasets[{i}]')
    if 'ann_file' in cfg or 'data_prefix' in cfg:
        yield where, cfg


def _dataset_missing(where: str, ds: Mapping) -> List[Tuple[str, str]]:
    """Missing ``(what, path)`` pairs of one dataset config."""
    if ds.get('backend_args'):
        return []  # files live on a remote backend; cannot check here
    root = ds.get('data_root')
    missing = []
    ann_file = ds.get('ann_file')
    if ann_file:
        path = _join(root, ann_file)
        if not _is_remote(path) and not osp.isfile(path):
            missing.append((f'{where}.ann_file', path))
    prefix = ds.get('data_prefix') or {}
    img = prefix.get('img', prefix.get('img_path')) if isinstance(
        prefix, Mapping) else None
    if img and not missing:
        path = _join(root, img)
        if not _is_remote(path) and not osp.isdir(path):
            missing.append((f'{where}.data_prefix.img', path))
    return missing


def _evaluator_missing(where: str, ev: Any) -> List[Tuple[str, str]]:
    """Missing ``(what, path)`` pairs of an evaluator config (or list)."""
    if isinstance(ev, Sequence) and not isinstance(ev, str):
        out = []
        for i, sub in enumerate(ev):
            out += _evaluator_missing(f'{where}[{i}]', sub)
        return out
    if not isinstance(ev, Mapping):
        return []
    if 'metrics' in ev:  # an Evaluator wrapping several metrics
        return _evaluator_missing(f'{where}.metrics', ev['metrics'])
    ann_file = ev.get('ann_file')
    if (ann_file and not ev.get('backend_args') and not _is_remote(ann_file)
            and not osp.isfile(ann_file)):
        return [(f'{where}.ann_file', ann_file)]
    return []


def find_missing_dataset_paths(cfg: Mapping,
                               phase: str = 'train') -> List[Tuple[str, str]]:
    """Lists the dataset files/folders of ``phase`` that do not exist.

    Args:
        cfg (Mapping): The full config (``mmengine.Config`` or a mapping).
        phase (str): ``'train'`` (train + val data), ``'val'`` or ``'test'``.

    Returns:
        List[Tuple[str, str]]: ``(config location, path)`` pairs, e.g.
        ``('train_dataloader.dataset.ann_file',
        'data/demo_coco/annotations/instances_train.json')``; empty when all
        exist. Remote paths (URIs, ``backend_args``) are not checked.
    """
    if phase not in PHASES:
        raise ValueError(f'phase must be one of {sorted(PHASES)}, got {phase}')
    missing: List[Tuple[str, str]] = []
    for key, loop_key in PHASES[phase]:
        section = cfg.get(key)
        if section is None or (loop_key != 'train_cfg'
                               and cfg.get(loop_key) is None):
            continue
        if key.endswith('_evaluator'):
            found = _evaluator_missing(key, section)
        else:
            found = [m for where, ds in _iter_datasets(section, key)
                     for m in _dataset_missing(where, ds)]
        missing += [m for m in found if m[1] not in {p for _, p in missing}]
    return missing


def format_missing_message(missing: Sequence[Tuple[str, str]],
                           config_name: Optional[str] = None) -> str:
    """Explains which dataset paths are missing and how to get them.

    Args:
        missing (Sequence[Tuple[str, str]]): Output of :func:`find_missing_dataset_paths`.
        config_name (str, optional): Config file, for the message.

    Returns:
        str: A multi-line message.
    """
    cfg_part = f' of config {config_name}' if config_name else ''
    lines = [f'Dataset files{cfg_part} not found '
             f'(relative paths are resolved from {os.getcwd()}):']
    lines += [f'  missing: {path}   ({where})' for where, path in missing]
    lines += [
        'The demo configs (configs/demo/*.py, configs/_base_/datasets/'
        'demo_coco*.py) expect the bundled synthetic dataset; generate it with',
        '  python tools/make_demo_data.py --out data/demo_coco',
        'or point the config at your data, e.g. --cfg-options '
        'train_dataloader.dataset.data_root=... '
        'val_dataloader.dataset.data_root=... '
        'val_evaluator.ann_file=... (and test_* likewise).',
    ]
    return '\n'.join(lines)


def check_dataset_paths(cfg: Mapping, phase: str = 'train') -> None:
    """Raises a readable error when the dataset files of ``phase`` are missing.

    Args:
        cfg (Mapping): The full config (``mmengine.Config`` or a mapping).
        phase (str): ``'train'`` (train + val data), ``'val'`` or ``'test'``.

    Raises:
        DatasetNotFoundError: Naming every missing path and how to fix it.
    """
    missing = find_missing_dataset_paths(cfg, phase)
    if missing:
        name = getattr(cfg, 'filename', None)
        raise DatasetNotFoundError(format_missing_message(missing, name))
