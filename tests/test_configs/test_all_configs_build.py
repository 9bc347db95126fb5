"""Every config in configs/ loads, passes the sparsity validation and builds its model;
each sparse one yields the method and N:M pattern its file name names."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

import lbc_mmdet
from lbc_mmdet.engine import validate_sparsity_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '/_base_/' not in p and '/suites/' not in p)
METHODS = {'lbc', 'srste', 'asp', 'bame', 'maxq', 'bimask', 'oneshot'}


@pytest.fixture(scope='module', autouse=True)
def _scope():
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def _no_pretrained(model_cfg):
    inner = model_cfg.get('model', model_cfg)  # NMSparsify wraps the detector
    inner.backbone.init_cfg = None


def test_the_walk_finds_the_paper_rows():
    names = {osp.basename(p) for p in CONFIGS}
    for det in ('faster_rcnn', 'mask_rcnn'):
        for row in ('dense', 'srste_2of4', 'lbc_2of4', 'srste_2of8', 'lbc_2of8',
                    'asp_2of4', 'bame_2of4', 'lbc_1of4', 'lbc_1of16', 'srste_1of4',
                    'srste_1of16'):
            assert f'{det}_{row}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds_with_its_pattern(path):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(path)
    validate_sparsity_cfg(cfg)
    _no_pretrained(cfg.model)
    model = MODELS.build(cfg.model)
    name = osp.basename(path)
    method = next((m for m in METHODS if f'_{m}_' in name), None)
    layers = lbc_mmdet.sparse_layers(model)
    if method is None:
        assert not layers, name
        return
    eligible = [layer for _, layer in layers if layer.nm_eligible]
    assert eligible, name
    n, m = map(int, re.search(r'_(\d+)of(\d+)', name).groups())
    assert {(lay.nm_method, lay.nm_n, lay.nm_m) for lay in eligible} == {(method, n, m)}, name
    # every backbone conv but the 3-channel stem is sparse
    dense = [n_ for n_, lay in layers if not lay.nm_eligible]
    assert all(d.endswith('conv1') and '.layer' not in d for d in dense), dense
    assert any(n_.startswith('backbone.layer4') for n_, lay in layers if lay.nm_eligible)
