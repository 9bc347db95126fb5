"""Bad input gets a clear error naming the field, at config/build time, and leaves no
partial output behind (docs/errors.md lists the messages)."""
import os
import os.path as osp
import re
import subprocess
import sys
import types

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint, save_checkpoint

from lbc_mmdet import NMSparsityHook, sparsify
from lbc_mmdet.engine import (
    CorruptCheckpointError,
    SparsityConfigError,
    validate_sparsity_cfg,
)
from lbc_mmdet.layers.asp import ASPConv2d
from lbc_mmdet.layers.bame import BAMEConv2d
from lbc_mmdet.layers.lbc import LBCConv2d
from lbc_mmdet.layers.srste import SRSTEConv2d

init_default_scope('mmdet')  # build_conv_layer looks sparse layers up in mmdet's scope

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LBC_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_lbc_2of4_demo.py')


def _cfg(conv_cfg=None, hook=None, model=None):
    return dict(model=model or dict(type='FasterRCNN', backbone=dict(
        type='ResNet', depth=18, conv_cfg=conv_cfg)),
                custom_hooks=[hook or dict(type='NMSparsityHook', ti=0, tf=None)])


# ---------------------------------------------------------------- N:M pattern
def test_n_not_smaller_than_m():
    with pytest.raises(ValueError, match=r'`n` must be smaller than `m` \(n=4 >= m=4'):
        LBCConv2d(8, 8, 1, n=4, m=4)
    with pytest.raises(SparsityConfigError, match=r'^model\.backbone\.conv_cfg\.n: '):
        validate_sparsity_cfg(_cfg(dict(type='LBCConv2d', n=4, m=4)))


def test_n_not_positive():
    with pytest.raises(ValueError, match=r'`n` must be >= 1 .* got n=0'):
        SRSTEConv2d(8, 8, 1, n=0, m=4)
    with pytest.raises(SparsityConfigError, match=r'conv_cfg\.n: .*got n=-1'):
        validate_sparsity_cfg(_cfg(dict(type='ASPConv2d', n=-1, m=4)))


@pytest.mark.parametrize('m', [2.5, '4', 0, True])
def test_m_not_positive_integer(m):
    with pytest.raises(ValueError, match=r'`m` must be a positive integer'):
        LBCConv2d(8, 8, 1, n=1, m=m)
    with pytest.raises(SparsityConfigError, match=r'conv_cfg\.m: .*`m` must be a positive'):
        validate_sparsity_cfg(_cfg(dict(type='LBCConv2d', n=1, m=m)))


def test_pattern_with_huge_score_table():
    with pytest.raises(ValueError, match=r'comb\(16, 8\) = 12870 candidate subsets per '
                       r'group.*above the limit of 1820'):
        LBCConv2d(16, 16, 1, n=8, m=16)
    with pytest.raises(SparsityConfigError, match=r'conv_cfg\.n/m: .*12870'):
        validate_sparsity_cfg(_cfg(dict(type='LBCConv2d', n=8, m=16)))


# ---------------------------------------------------------------- method / layer type
def test_unknown_method_sparsify():
    model = nn.Sequential(nn.Conv2d(8, 8, 1))
    from lbc_mmdet.layers import method_names
    known = method_names()  # sorted: the four of the paper and any method added since
    assert {'asp', 'bame', 'lbc', 'srste'} <= set(known) and known == sorted(known)
    with pytest.raises(ValueError, match=r"unknown N:M method 'foo'; known methods: "
                       + re.escape(str(known))):
        sparsify(model, 'foo')
    assert type(model[0]) is nn.Conv2d  # nothing converted


def test_unknown_method_nmsparsify():
    cfg = dict(type='NMSparsify', model=dict(type='FasterRCNN'),
               layer=dict(method='foo', n=2, m=4))
    with pytest.raises(ValueError, match=r"unknown N:M method 'foo'"):
        MODELS.build(cfg)
    with pytest.raises(SparsityConfigError, match=r"^model\.layer\.method: unknown N:M "
                       r"method 'foo'"):
        validate_sparsity_cfg(dict(model=cfg))


def test_unknown_layer_type_in_conv_cfg():
    # mmcv 2.1's build_conv_layer formats the lookup result, not the name: its KeyError
    # says "Cannot find None in registry ..." -- hence the config-time check below, which
    # tools/train.py runs before anything is built
    with pytest.raises(KeyError, match='Cannot find None in registry'):
        MODELS.build(dict(type='ResNet', depth=18, conv_cfg=dict(type='LBCConv2dd')))
    with pytest.raises(SparsityConfigError,
                       match=r"^model\.backbone\.conv_cfg\.type: 'LBCConv2dd' is not a "
                       r"registered layer type"):
        validate_sparsity_cfg(_cfg(dict(type='LBCConv2dd')))


def test_unknown_layer_option():
    from lbc_mmdet.layers import sparse_layer_types
    options = ', '.join(sorted(sparse_layer_types()['SRSTEConv2d'].nm_option_names()))
    assert 'lambda_w' in options
    with pytest.raises(SparsityConfigError, match=r"unknown option\(s\) \['lamda_w'\] for "
                       r'SRSTEConv2d \(its options: n, m, ' + re.escape(options) + r'\)'):
        validate_sparsity_cfg(_cfg(dict(type='SRSTEConv2d', lamda_w=1e-4)))


def test_registered_dense_conv_types_pass():
    assert validate_sparsity_cfg(_cfg(dict(type='Conv2d'))) == 1  # the hook only
    assert validate_sparsity_cfg(_cfg(dict(type='DCNv2'))) == 1


# ---------------------------------------------------------------- schedule
def test_tf_not_after_ti():
    with pytest.raises(ValueError, match=r'NMSparsityHook: `tf` must be greater than `ti`, '
                       r'got ti=5, tf=5'):
        NMSparsityHook(ti=5, tf=5)
    with pytest.raises(SparsityConfigError, match=r'^custom_hooks\.0: NMSparsityHook: `tf`'):
        validate_sparsity_cfg(_cfg(hook=dict(type='NMSparsityHook', ti=6, tf=2)))


def test_negative_ti():
    with pytest.raises(ValueError, match=r'NMSparsityHook: `ti` must be >= 0, got ti=-1'):
        NMSparsityHook(ti=-1)
    with pytest.raises(ValueError, match=r'`ti` must be >= 0, got ti=-1'):
        NMSparsityHook(ti=-1, tf=3)
    with pytest.raises(SparsityConfigError, match=r'^custom_hooks\.0: .*`ti` must be >= 0'):
        validate_sparsity_cfg(_cfg(hook=dict(type='NMSparsityHook', ti=-1)))


# ---------------------------------------------------------------- method options
def test_srste_negative_lambda():
    with pytest.raises(ValueError, match=r'SR-STE: `lambda_w` must be >= 0, got '
                       r'lambda_w=-0.1'):
        SRSTEConv2d(8, 8, 1, lambda_w=-0.1)
    with pytest.raises(SparsityConfigError, match=r'conv_cfg: SR-STE: `lambda_w`'):
        validate_sparsity_cfg(_cfg(dict(type='SRSTEConv2d', lambda_w=-0.1)))


@pytest.mark.parametrize('opts,msg', [(dict(tau=0), r'BAME: `tau` must be a number > 0'),
                                      (dict(interval=0), r'BAME: `interval` must be a '
                                       r'positive integer')])
def test_bame_bad_options(opts, msg):
    with pytest.raises(ValueError, match=msg):
        BAMEConv2d(8, 8, 1, **opts)
    with pytest.raises(SparsityConfigError, match=r'conv_cfg: ' + msg):
        validate_sparsity_cfg(_cfg(dict(type='BAMEConv2d', **opts)))


# ---------------------------------------------------------------- hook
class _Logger:

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def _runner(model):
    return types.SimpleNamespace(model=model, logger=_Logger())


def test_hook_without_sparse_layer():
    with pytest.raises(RuntimeError, match=r'NMSparsityHook: the model has no N:M sparse '
                       r'layer'):
        NMSparsityHook().before_run(_runner(nn.Sequential(nn.Conv2d(8, 8, 1))))


def test_summary_lists_the_stem():
    backbone = MODELS.build(dict(type='ResNet', depth=18,
                                 conv_cfg=dict(type='LBCConv2d', n=2, m=4)))
    runner = _runner(backbone)
    NMSparsityHook().before_run(runner)
    text = '\n'.join(runner.logger.lines)
    assert 'N:M sparsity: 19 sparse layers (lbc 2:4), 1 left dense' in text
    assert '  left dense: conv1 (' in text  # the 3-channel stem, with its reason


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('cls,msg', [
    (LBCConv2d, r'scores: the checkpoint holds shape \(32, 28\) but this 2:4 LBC layer '
     r'has \(64, 6\).*another N:M pattern'),
    (ASPConv2d, r"mask: the checkpoint's mask does not keep exactly 2 of every 4 weights: "
     r'it was pruned with another N:M pattern')])
def test_checkpoint_of_another_pattern(tmp_path, cls, msg):
    torch.manual_seed(0)
    src = nn.Sequential(cls(16, 16, 1, n=2, m=8))
    if cls is ASPConv2d:
        src[0].prune_now()
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(dict(state_dict=src.state_dict(), meta=dict(epoch=1)), path)
    dst = nn.Sequential(cls(16, 16, 1, n=2, m=4))
    with pytest.raises(RuntimeError, match=msg):
        load_checkpoint(dst, path, map_location='cpu')


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'garbage'])
def test_corrupt_checkpoint(tmp_path, damage):
    from lbc_mmdet.engine import install_safe_checkpoints
    install_safe_checkpoints()  # what the tools and SafeCheckpointHook do
    path = str(tmp_path / 'iter_2.pth')
    model = nn.Sequential(LBCConv2d(16, 16, 1))
    save_checkpoint(dict(state_dict=model.state_dict(), meta=dict(iter=2)), path)
    data = open(path, 'rb').read()
    data = dict(truncated=data[:len(data) // 2], empty=b'',
                garbage=b'not a checkpoint ' * 8)[damage]
    with open(path, 'wb') as f:
        f.write(data)
    with pytest.raises(CorruptCheckpointError,
                       match=r"Checkpoint '.*iter_2\.pth' \(\d+ bytes\) is corrupt or "
                       r'truncated'):
        load_checkpoint(model, path, map_location='cpu')


# ---------------------------------------------------------------- no partial output
def test_train_bad_config_leaves_no_work_dir(tmp_path):
    work_dir = tmp_path / 'run'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-W', 'ignore', osp.join(REPO_ROOT, 'tools', 'train.py'), LBC_DEMO,
         '--work-dir', str(work_dir), '--cfg-options', 'model.backbone.conv_cfg.n=4'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert ('error: model.backbone.conv_cfg.n: N:M pattern: `n` must be smaller than `m` '
            '(n=4 >= m=4') in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not work_dir.exists()
    assert not (tmp_path / 'work_dirs').exists()
