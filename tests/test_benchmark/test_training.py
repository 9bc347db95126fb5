"""``lbc_mmdet.benchmark.training``: the models it times are built through
``lbc_mmdet.apis.build_model`` (its readable errors) and sparsified from the registry."""
import os.path as osp

import pytest

from lbc_mmdet.benchmark.training import benchmark_entries, benchmark_model
from lbc_mmdet.errors import LBCError
from lbc_mmdet.layers import DENSE, get_method, method_names, sparse_layers

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DENSE_CFG = osp.join(REPO_ROOT, 'configs', 'faster_rcnn_dense.py')


def test_entries_come_from_the_registry():
    entries = benchmark_entries()
    assert entries[0] == DENSE
    assert set(method_names()) <= set(entries)
    for key in method_names():
        for variant in get_method(key).variants:  # right after its method
            assert entries.index(variant) > entries.index(key)


def test_a_missing_config_is_one_readable_error(tmp_path):
    missing = str(tmp_path / 'no_such_config.py')
    with pytest.raises(LBCError, match='no_such_config.py'):
        benchmark_model(DENSE, missing)


def test_a_broken_config_names_the_file(tmp_path):
    bad = tmp_path / 'bad_cfg.py'
    bad.write_text(f"_base_ = '{DENSE_CFG}'\nmodel = dict(backbone=dict(type='NoSuchNet'))\n")
    with pytest.raises(LBCError, match='NoSuchNet'):
        benchmark_model(DENSE, str(bad), depth=18)


def test_the_model_is_the_configs_with_its_backbone_sparsified():
    key = method_names()[0]
    model = benchmark_model(key, DENSE_CFG, depth=18)
    assert model.training and model.backbone.depth == 18
    layers = sparse_layers(model)
    assert layers and all(name.startswith('backbone.') for name, _ in layers)
    assert all(layer.nm_method == key for _, layer in layers)
    assert not sparse_layers(benchmark_model(DENSE, DENSE_CFG, depth=18))
