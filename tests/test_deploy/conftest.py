"""Shared fixtures of the deployment tests: a finished LBC 2:4 Faster R-CNN R50-FPN
(randomly initialised, every LBC layer forced to one candidate), its export, config files
and a tiny LBC detector for the tool tests."""
import os.path as osp
import sys

import pytest
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from deploy_helpers import build, config_text, finish_lbc, sd_checkpoint  # noqa: E402

from lbc_mmdet.deploy.export import export_sparse_state_dict  # noqa: E402


@pytest.fixture(scope='session')
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp('deploy')


@pytest.fixture(scope='session')
def config_files(workdir):
    paths = {}
    for name, text in (('sparse', config_text(True)), ('dense', config_text(False)),
                       ('tiny', config_text(True, tiny=True)),
                       ('tiny_dense', config_text(False, tiny=True))):
        path = workdir / f'{name}_cfg.py'
        path.write_text(text)
        paths[name] = str(path)
    return paths


@pytest.fixture(scope='session')
def lbc_model(config_files):
    torch.manual_seed(0)
    return finish_lbc(build(config_files['sparse'])).eval()


@pytest.fixture(scope='session')
def exported(lbc_model):
    return export_sparse_state_dict(lbc_model)


@pytest.fixture(scope='session')
def _dense_build(config_files):
    torch.manual_seed(1)
    model = build(config_files['dense']).eval()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def dense_model(_dense_build):
    """The stock dense model (random weights), reset to its own weights for every test."""
    model, state = _dense_build
    model.load_state_dict(state, strict=True)
    return model


@pytest.fixture(scope='session')
def exported_file(exported, workdir):
    """The export written as a checkpoint (as tools/export.py writes it)."""
    path = workdir / 'exported_r50.pth'
    torch.save(dict(state_dict=exported[0], meta=dict(note='fixture')), path)
    return str(path)


@pytest.fixture(scope='session')
def tiny_files(config_files, workdir):
    """A finished tiny LBC checkpoint, an unfinished one and the export of the first."""
    torch.manual_seed(0)
    model = build(config_files['tiny'])
    unfinished = workdir / 'tiny_unfinished.pth'
    torch.save(sd_checkpoint(model), unfinished)
    finish_lbc(model)
    finished = workdir / 'tiny_finished.pth'
    torch.save(sd_checkpoint(model, dataset_meta=dict(classes=('a', 'b', 'c')), epoch=3,
                             hook_msgs=dict(last_ckpt='x')), finished)
    state, _ = export_sparse_state_dict(model)
    exported_path = workdir / 'tiny_exported.pth'
    torch.save(dict(state_dict=state, meta={}), exported_path)
    return dict(config=config_files['tiny'], finished=str(finished),
                unfinished=str(unfinished), exported=str(exported_path), model=model)
