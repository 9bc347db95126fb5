"""Shared fixtures: a tiny synthetic COCO dataset made once per session."""
import os.path as osp
import sys
from typing import Dict, List

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

#: Size of the tiny dataset shared by the tests.
TINY = dict(num_train=8, num_val=4, img_size=96, seed=0)


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory) -> Dict:
    """A tiny demo dataset (8 train / 4 val images, 96 px), made once.

    Returns:
        The summary dict of :func:`lbc_mmdet.datasets.make_demo_coco`.
    """
    from lbc_mmdet.datasets import make_demo_coco
    root = str(tmp_path_factory.mktemp('tiny_coco'))
    return make_demo_coco(root, **TINY)


def data_cfg_options(root: str, with_classes: bool = False) -> List[str]:
    """``--cfg-options`` pointing every dataloader/evaluator at ``root``.

    Args:
        root: Dataset root made by ``make_demo_coco``.
        with_classes: Also set the 3 demo classes as metainfo (needed for
            stock mmdet configs, which default to the 80 COCO classes).

    Returns:
        ``key=value`` strings for ``--cfg-options``.
    """
    root = root.rstrip('/') + '/'
    opts = []
    for split, dl in (('train', 'train_dataloader'), ('val', 'val_dataloader'),
                      ('val', 'test_dataloader')):
        opts += [
            f'{dl}.dataset.data_root={root}',
            f'{dl}.dataset.ann_file=annotations/instances_{split}.json',
            f'{dl}.dataset.data_prefix.img=images/{split}/',
            f'{dl}.num_workers=0',
            f'{dl}.persistent_workers=False',
        ]
        if with_classes:
            opts.append(
                f'{dl}.dataset.metainfo.classes="(circle,square,triangle)"')
    for ev in ('val_evaluator', 'test_evaluator'):
        opts.append(f'{ev}.ann_file={root}annotations/instances_val.json')
    return opts
