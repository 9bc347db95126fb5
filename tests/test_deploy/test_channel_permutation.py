"""Channel permutation of mmdet ResNet blocks: which convs, function preserved (R50
backbone, whole Faster R-CNN), sparse layers' state rules."""
import copy

import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.structures import DetDataSample

from lbc_mmdet.deploy.channel_permutation import (
    PermutationError,
    apply_permutations,
    find_permutable_layers,
    plan_permutation_map,
    plan_permutations,
    plan_summary,
    state_is_initial,
)
from lbc_mmdet.deploy.export import strip_sparse_layers
from lbc_mmdet.nm import kept_magnitude


def predict(model, seed=0):
    """Predictions of ``model`` on 2 random 128 px images."""
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8, generator=gen)
              for _ in range(2)]
    samples = [DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                           scale_factor=(1.0, 1.0), img_id=i))
               for i in range(2)]
    with torch.no_grad():
        return model.test_step(dict(inputs=inputs, data_samples=samples))


@pytest.fixture(scope='module', autouse=True)
def _scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')


def dense_outputs(model, x):
    """Outputs of ``model`` computed with its raw (unmasked) weights."""
    dense = copy.deepcopy(model)
    strip_sparse_layers(dense)
    with torch.no_grad():
        return dense(x)


def randomize_bn(model, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters (the permutation must move
    them with their channels)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                mod.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(c, generator=gen) * 0.1)
    return model


def random_perms(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {lay.name: torch.randperm(lay.consumer.in_channels, generator=gen)
            for lay in find_permutable_layers(model)[0]}


@pytest.fixture(scope='module')
def r50():
    torch.manual_seed(0)
    model = randomize_bn(ResNet(depth=50, init_cfg=None)).double()
    model.eval()  # mmdet's ResNet.train() returns None
    return model


def test_r50_permutable_layers_are_conv2_and_conv3(r50):
    layers, skipped = find_permutable_layers(r50)
    assert len(layers) == 32 and not skipped
    names = {lay.name for lay in layers}
    assert {'layer1.0.conv2', 'layer1.0.conv3', 'layer4.2.conv3'} <= names
    assert not any(n.endswith(('conv1', 'downsample.0')) for n in names)
    by_name = {lay.name: lay for lay in layers}
    lay = by_name['layer2.1.conv3']
    assert (lay.producer_name, lay.norm_name) == ('layer2.1.conv2', 'layer2.1.bn2')
    assert lay.producer is r50.layer2[1].conv2 and lay.norm is r50.layer2[1].bn2


def test_permuting_every_layer_keeps_the_r50_outputs(r50):
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = r50(x)
    params = {k: v for k, v in r50.named_parameters()}
    state = {k: v.clone() for k, v in r50.state_dict().items()}
    try:
        assert apply_permutations(r50, random_perms(r50)) == 32
        with torch.no_grad():
            out = r50(x)
        for a, b in zip(ref, out):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
        # the weights really moved, in place (same Parameter objects)
        assert not torch.equal(state['layer1.0.conv2.weight'], r50.layer1[0].conv2.weight)
        assert all(p is dict(r50.named_parameters())[k] for k, p in params.items())
    finally:
        r50.load_state_dict(state)


def test_searched_plan_raises_kept_magnitude_and_keeps_outputs(r50):
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    state = {k: v.clone() for k, v in r50.state_dict().items()}
    with torch.no_grad():
        ref = r50(x)
    try:
        lines = []
        plan = plan_permutations(r50, 2, 4, include=['layer1.*'], time_limit=5,
                                 logger=lines.append)
        summary = plan_summary(plan)
        assert summary['summary']['layers'] == 6 == len(lines)
        assert summary['summary']['kept_after'] > summary['summary']['kept_before']
        assert all(e['kept_after'] >= e['kept_before'] for e in summary['layers'])
        perms = plan_permutation_map(plan)
        apply_permutations(r50, perms)
        for e in summary['layers']:
            weight = r50.get_submodule(e['name']).weight
            assert kept_magnitude(weight, 2, 4) == pytest.approx(e['kept_after'])
        with torch.no_grad():
            for a, b in zip(ref, r50(x)):
                torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    finally:
        r50.load_state_dict(state)


def test_faster_rcnn_predictions_unchanged(dense_model):
    randomize_bn(dense_model)
    dense_model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = dense_model.extract_feat(x)
    before = predict(dense_model)
    assert apply_permutations(dense_model, random_perms(dense_model, seed=1)) == 32
    after = predict(dense_model)
    with torch.no_grad():
        for a, b in zip(feats, dense_model.extract_feat(x)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    for s, d in zip(before, after):
        s, d = s.pred_instances, d.pred_instances
        assert len(s) == len(d) > 0
        torch.testing.assert_close(d.bboxes, s.bboxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(d.scores, s.scores, atol=1e-4, rtol=0)
        assert torch.equal(d.labels, s.labels)


def test_blocks_that_cannot_be_permuted_are_skipped():
    gn = ResNet(depth=50, init_cfg=None, norm_cfg=dict(type='GN', num_groups=8))
    layers, skipped = find_permutable_layers(gn)
    assert not layers and len(skipped) == 32
    assert all('GroupNorm, not a BatchNorm' in why for _, why in skipped)
    r18 = ResNet(depth=18, init_cfg=None, base_channels=16)
    layers, _ = find_permutable_layers(r18)
    assert [lay.name for lay in layers][:2] == ['layer1.0.conv2', 'layer1.1.conv2']
    plan = plan_permutations(r18)  # a dense model and no pattern: nothing to search
    assert not plan['layers'] and all('no pattern given' in why for _, why in
                                      plan['skipped'])
    with pytest.raises(PermutationError, match='not a permutation'):
        apply_permutations(r18, {'layer1.0.conv2': torch.zeros(16, dtype=torch.long)})
    with pytest.raises(PermutationError, match='not permutable layers'):
        apply_permutations(r18, {'layer1.0.conv1': torch.arange(16)})


@pytest.mark.parametrize('conv_type', ['ASPConv2d', 'LBCConv2d', 'BAMEConv2d', 'SRSTEConv2d'])
def test_sparse_layers_permute_while_their_state_is_initial(conv_type):
    import lbc_mmdet  # noqa: F401  (registers the layers)
    torch.manual_seed(0)
    model = randomize_bn(ResNet(depth=18, init_cfg=None, base_channels=16,
                                conv_cfg=dict(type=conv_type, n=2, m=4)))
    model.eval()
    assert len(find_permutable_layers(model)[0]) == 8
    plan = plan_permutations(model, include=['layer1.*'], time_limit=0.5)
    # the pattern is read from the sparse layers (no n, m given)
    assert len(plan['layers']) == 2
    assert {(r.n, r.m) for _, r in plan['layers']} == {(2, 4)}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    ref_dense = dense_outputs(model, x)
    perms = random_perms(model)
    apply_permutations(model, perms)
    # the dense function (raw weights) is unchanged for every method ...
    for a, b in zip(ref_dense, dense_outputs(model, x)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    # ... and so is the sparse forward of the methods that start dense (their initial
    # mask is all ones); SR-STE's and BAME's masks follow the permuted weights
    if conv_type in ('ASPConv2d', 'LBCConv2d'):
        with torch.no_grad():
            for a, b in zip(ref, model(x)):
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    conv = model.layer1[0].conv2
    assert state_is_initial(conv)
    if conv_type == 'BAMEConv2d':  # its initial mask follows the permuted weights
        from lbc_mmdet.nm import to_groups, topn_magnitude_mask
        assert torch.equal(conv.mask, topn_magnitude_mask(to_groups(conv.weight, 4), 2))


def test_a_computed_mask_is_refused():
    import lbc_mmdet  # noqa: F401
    model = ResNet(depth=18, init_cfg=None, base_channels=16,
                   conv_cfg=dict(type='ASPConv2d', n=2, m=4))
    assert model.layer1[0].conv2.prune_now()
    before = model.layer1[0].conv2.weight.clone()
    with pytest.raises(PermutationError, match='layer1.0.conv2'):
        apply_permutations(model, random_perms(model))
    assert torch.equal(model.layer1[0].conv2.weight, before)  # nothing was changed
    # a layer initialised from a dense checkpoint counts as initial
    other = model.layer2[0].conv2
    assert state_is_initial(other)
    other.pruned.fill_(True)
    assert not state_is_initial(other)
    other.nm_init_from_dense = True
    assert state_is_initial(other)
