"""Lowering of convolutions to semi-structured GEMMs (CPU: numerics and rules)."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lbc_mmdet.deploy.lowering import (
    LoweredConv2d,
    im2col,
    lower_convs,
    plan_layer,
    plan_model,
    semi_structured_constraints,
    semi_structured_support,
)
from lbc_mmdet.deploy.packing import gemm_matrix
from lbc_mmdet.nm import from_groups, to_groups, topn_magnitude_mask

GEOMETRIES = [
    # in, out, kernel, stride, padding, dilation, H, W
    (8, 16, 1, 1, 0, 1, 7, 9),
    (8, 16, 1, 2, 0, 1, 7, 9),
    (8, 16, 1, (2, 1), 0, 1, 8, 5),
    (8, 3, 3, 2, 1, 1, 9, 8),
    (12, 20, 3, 1, 2, 2, 10, 11),
    (4, 8, (3, 1), (2, 1), (1, 0), 1, 7, 7),
    (16, 8, 7, 2, 3, 1, 15, 13),
    (8, 8, 1, 1, 1, 1, 5, 5),  # 1x1 with padding: im2col
]


def make_2to4(conv):
    with torch.no_grad():
        groups = to_groups(conv.weight, 4)
        keep = topn_magnitude_mask(groups, 2)
        conv.weight.copy_(from_groups(torch.where(keep, groups, torch.zeros(())),
                                      conv.weight.shape))
    return conv


@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_im2col_gemm_equals_conv2d(geometry):
    cin, cout, k, s, p, d, h, w = geometry
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, p, d, bias=False).double()
    x = torch.randn(2, cin, h, w, dtype=torch.float64)
    cols, (ho, wo) = im2col(x, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    assert cols.shape == (2 * ho * wo, conv.weight[0].numel())
    y = (cols @ gemm_matrix(conv.weight).t()).reshape(2, ho, wo, cout).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, conv(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize('bias', [False, True])
@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_lowered_conv_equals_conv(geometry, bias):
    cin, cout, k, s, p, d, h, w = geometry
    torch.manual_seed(0)
    conv = make_2to4(nn.Conv2d(cin, cout, k, s, p, d, bias=bias).double())
    plan = plan_layer(conv, 'c', dtype=torch.float16, backend='cutlass')
    assert plan.accelerated, plan.reason
    expected = ('conv1x1' if (k, p) == (1, 0) and s == 1 else
                'conv1x1_strided' if (k, p) == (1, 0) else 'conv_im2col')
    assert plan.kind == expected
    lowered = LoweredConv2d(conv, plan)
    assert lowered.gemm_weight.shape == (cout + plan.pad_rows, plan.K + plan.pad_cols)
    x = torch.randn(2, cin, h, w, dtype=torch.float64)
    for inp in (x, x.contiguous(memory_format=torch.channels_last)):
        y = lowered(inp)
        ref = conv(inp)
        assert y.shape == ref.shape
        torch.testing.assert_close(y, ref, atol=1e-12, rtol=0)
        gemm = plan.gemm_shape(inp.shape)
        assert gemm == dict(M=cout, K=cin * conv.kernel_size[0] * conv.kernel_size[1],
                            N=2 * ref.shape[2] * ref.shape[3])


def test_shape_constraints_come_from_pytorch():
    assert semi_structured_constraints(torch.float16, 'cusparselt') == (16, 16)
    assert semi_structured_constraints(torch.bfloat16, 'cutlass') == (32, 64)
    assert semi_structured_constraints(torch.float32, 'cutlass') is None  # 1:2 TF32
    assert semi_structured_constraints(torch.float32, 'cusparselt') is None
    with pytest.raises(ValueError):
        semi_structured_constraints(torch.float16, 'nope')


def test_padding_follows_the_backend():
    conv = make_2to4(nn.Conv2d(8, 3, 3, padding=1))  # M=3, K=72
    p1 = plan_layer(conv, dtype=torch.float16, backend='cusparselt')
    assert (p1.pad_rows, p1.pad_cols) == (13, 8)
    p2 = plan_layer(conv, dtype=torch.float16, backend='cutlass')
    assert (p2.pad_rows, p2.pad_cols) == (29, 56)
    assert any('activations are padded' in n for n in p2.notes)
    conv = make_2to4(nn.Conv2d(64, 128, 1))
    plan = plan_layer(conv, dtype=torch.bfloat16, backend='cutlass')
    assert (plan.pad_rows, plan.pad_cols) == (0, 0) and not plan.notes


def test_eligibility_rules():
    def reason(module, **kw):
        plan = plan_layer(module, **kw)
        assert not plan.accelerated
        return plan.reason

    torch.manual_seed(0)
    assert 'grouped' in reason(make_2to4(nn.Conv2d(8, 8, 3, groups=2)))
    assert 'grouped' in reason(nn.Conv2d(8, 8, 3, groups=8))  # depthwise
    assert 'input channels not divisible by 4' in reason(nn.Conv2d(3, 64, 7, 2, 3))
    assert 'weight not 2:4' in reason(nn.Conv2d(8, 8, 1))  # dense weight
    assert plan_layer(nn.Conv2d(8, 8, 1), check_weight=False).accelerated
    conv = make_2to4(nn.Conv2d(8, 16, 3, padding=1))
    assert 'no 2:4' in reason(conv, dtype=torch.float32)
    assert 'left to the dense kernel' in reason(conv, kxk='dense')
    assert plan_layer(make_2to4(nn.Conv2d(8, 16, 1)), kxk='dense').accelerated
    assert "padding_mode='reflect'" in reason(
        make_2to4(nn.Conv2d(8, 8, 3, padding=1, padding_mode='reflect')))
    assert 'only numeric padding' in reason(make_2to4(nn.Conv2d(8, 8, 3, padding='same')))
    assert 'not an nn.Conv2d' in reason(nn.ConvTranspose2d(8, 8, 3))
    assert 'not an nn.Conv2d' in reason(nn.BatchNorm2d(8))
    linear = make_2to4(nn.Linear(64, 10))
    plan = plan_layer(linear, dtype=torch.float16)
    assert plan.kind == 'linear' and plan.accelerated and plan.pad_rows == 6
    assert plan.gemm_shape([5, 7, 64]) == dict(M=10, K=64, N=35)
    with pytest.raises(ValueError):
        LoweredConv2d(linear, plan)


def test_lower_a_resnet_backbone():
    from mmdet.models.backbones import ResNet
    torch.manual_seed(0)
    backbone = ResNet(depth=18, base_channels=16, init_cfg=None)
    backbone.eval()  # mmdet's ResNet.train() returns None: no chaining
    for m in backbone.modules():
        if isinstance(m, nn.Conv2d) and m.in_channels % 4 == 0:
            make_2to4(m)
    plans = plan_model(backbone, dtype=torch.float16)
    by_name = {p.name: p for p in plans}
    assert not by_name['conv1'].accelerated  # the 3-channel stem
    assert by_name['layer2.0.downsample.0'].kind == 'conv1x1_strided'
    assert by_name['layer2.0.conv1'].kind == 'conv_im2col'
    assert sum(p.accelerated for p in plans) == len(plans) - 1
    lowered = copy.deepcopy(backbone)
    names = lower_convs(lowered, plans)
    assert len(names) == len(plans) - 1
    assert isinstance(lowered.layer1[0].conv1, LoweredConv2d)
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        for a, b in zip(backbone(x), lowered(x)):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_convert_weight_and_support_probe():
    conv = make_2to4(nn.Conv2d(8, 16, 1))
    lowered = LoweredConv2d(conv, plan_layer(conv))
    lowered.convert_weight(lambda w: w * 2)
    x = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(lowered(x), F.conv2d(x, conv.weight * 2, conv.bias))
    ok, why = semi_structured_support()
    assert isinstance(ok, bool) and why
    if not torch.cuda.is_available():
        assert not ok and 'no CUDA' in why
