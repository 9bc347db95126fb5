"""tools/convert_official_lbc.py on a synthetic checkpoint laid out like the official code's."""
import itertools
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet.models.backbones import ResNet

import lbc_mmdet  # noqa: F401
from lbc_mmdet.layers.lbc_official import convert_official_lbc


@pytest.fixture(autouse=True)
def _mmdet_scope():
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)


ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def small_lbc_resnet50(n=2, m=4):
    return ResNet(depth=50, base_channels=16, frozen_stages=-1, norm_eval=False,
                  conv_cfg=dict(type='LBCConv2d', n=n, m=m), init_cfg=None)


def fake_official_checkpoint(n=2, m=4, seed=0):
    """Keys of torchvision's ResNet-50 (as the official code), alpha with removed
    candidates at 0, index_list in *reversed* candidate order, `module.` prefix, `fc`."""
    g = torch.Generator().manual_seed(seed)
    dense = ResNet(depth=50, base_channels=16, frozen_stages=-1, norm_eval=False,
                   init_cfg=None).state_dict()
    combos = list(itertools.combinations(range(m), n))[::-1]
    index_list = torch.zeros(len(combos), m)
    for k, combo in enumerate(combos):
        index_list[k, list(combo)] = 1
    sd, expected = {}, {}
    for key, value in dense.items():
        sd['module.' + key] = value
        if key.endswith('.weight') and value.dim() == 4 and value.shape[1] % m == 0:
            layer = key[:-len('.weight')]
            groups = value.numel() // m
            alpha = torch.rand(groups, len(combos), generator=g) + 0.1
            alpha[:, 1:] *= (torch.rand(groups, len(combos) - 1, generator=g) > 0.5)
            sd['module.' + layer + '.alpha'] = alpha
            sd['module.' + layer + '.index_list'] = index_list
            expected[layer] = (alpha, combos)
    sd['module.fc.weight'] = torch.randn(10, 32)
    sd['module.fc.bias'] = torch.randn(10)
    return dict(state_dict=sd, epoch=120), expected


def test_conversion_loads_strictly_and_keeps_official_masks():
    ckpt, expected = fake_official_checkpoint()
    state_dict, report = convert_official_lbc(ckpt, n=2, m=4)
    assert report['pattern'] == '2:4'
    assert 'fc.weight' in report['dropped']
    model = small_lbc_resnet50()
    model.load_state_dict(state_dict, strict=True)
    for layer, (alpha, combos) in expected.items():
        mod = model.get_submodule(layer)
        # reference mask straight from the official alpha/index_list: a weight is kept
        # iff it is in a candidate whose alpha is non-zero
        keep = torch.zeros(alpha.shape[0], 4, dtype=torch.bool)
        for k, combo in enumerate(combos):
            keep[alpha[:, k] != 0] |= torch.tensor([i in combo for i in range(4)])
        got = mod.nm_mask().permute(0, 2, 3, 1).reshape(-1, 4).bool()
        assert torch.equal(got, keep), layer
        # same score for the same candidate
        ours = list(itertools.combinations(range(4), 2))
        for k, combo in enumerate(combos):
            assert torch.equal(mod.scores[:, ours.index(combo)], alpha[:, k])
    assert not model.conv1.nm_eligible  # the stem stays dense


def test_pattern_mismatch_is_refused():
    ckpt, _ = fake_official_checkpoint()
    with pytest.raises(ValueError, match='expected 2:8'):
        convert_official_lbc(ckpt, n=2, m=8)


def test_tool_writes_a_safe_loadable_checkpoint(tmp_path):
    ckpt, _ = fake_official_checkpoint()
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save(ckpt, src)
    res = subprocess.run([sys.executable, 'tools/convert_official_lbc.py', str(src),
                          str(dst), '--n', '2', '--m', '4'], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert '2:4' in res.stdout
    loaded = torch.load(dst, weights_only=True)
    small_lbc_resnet50().load_state_dict(loaded['state_dict'], strict=True)
    assert osp.isfile(str(dst) + '.json')
    res = subprocess.run([sys.executable, 'tools/convert_official_lbc.py',
                          str(tmp_path / 'missing.pth'), str(dst)], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode != 0 and 'no such checkpoint' in res.stderr
