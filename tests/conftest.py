"""Shared fixtures: a tiny synthetic COCO dataset made once per session."""
import os
import os.path as osp
import sys
from typing import Dict

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for _p in (REPO_ROOT, osp.dirname(osp.abspath(__file__))):  # the repo; tests/ (_common)
    if _p not in sys.path:
        sys.path.insert(0, _p)

# The fused weight-side kernels (lbc_mmdet/nm/kernels.py) are off unless asked for; the
# tests run the eager code (tests/test_nm/test_kernels.py compares the two;
# `LBC_MMDET_COMPILE=auto pytest tests` runs everything compiled).
os.environ.setdefault('LBC_MMDET_COMPILE', '0')

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


@pytest.fixture
def cpu_amp(monkeypatch):
    """Let MMEngine's ``AmpOptimWrapper`` be built on a CPU-only machine."""
    import torch
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    if not torch.cuda.is_available():
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
