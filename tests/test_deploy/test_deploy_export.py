"""Export of a finished LBC 2:4 Faster R-CNN R50-FPN to the stock dense model."""
import json
import os.path as osp

import pytest
import torch
import torch.nn as nn
from _common import SPARSE_LAYERS
from deploy_helpers import build, finish_lbc, load_tool, run_tool
from mmdet.structures import DetDataSample

from lbc_mmdet.deploy.export import (
    NMExportError,
    compare_keys,
    export_sparse_state_dict,
    strip_sparse_layers,
)
from lbc_mmdet.deploy.verify import verify_nm
from lbc_mmdet.layers import NMScheduleState, sparse_layers


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


def test_keys_match_the_stock_dense_model(exported, dense_model):
    state, _ = exported
    assert compare_keys(dense_model, state) == ([], [])
    result = dense_model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_dense_model_predicts_what_the_sparse_model_predicts(lbc_model, exported,
                                                             dense_model):
    dense_model.load_state_dict(exported[0], strict=True)
    sparse_out, dense_out = predict(lbc_model), predict(dense_model)
    for s, d in zip(sparse_out, dense_out):
        s, d = s.pred_instances, d.pred_instances
        assert len(s) == len(d) > 0
        torch.testing.assert_close(d.bboxes, s.bboxes, atol=1e-5, rtol=0)
        torch.testing.assert_close(d.scores, s.scores, atol=1e-5, rtol=0)
        assert torch.equal(d.labels, s.labels)
    # and the features: the neck outputs of both models
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(lbc_model.extract_feat(x), dense_model.extract_feat(x)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_exported_weights_are_the_folded_masks(lbc_model, exported):
    state, _ = exported
    for name, layer in sparse_layers(lbc_model):
        w = state[name + '.weight']
        if not layer.nm_eligible:
            assert torch.equal(w, layer.weight)
            continue
        assert torch.equal(w, layer.masked_weight())
        zeros = w[w == 0]
        assert not torch.signbit(zeros).any(), 'zeros are written as +0.0'
        for extra in layer.nm_extra_state_names:
            assert name + '.' + extra not in state
    # the model itself is left as it was
    assert all(hasattr(layer, 'scores') for _, layer in sparse_layers(lbc_model)
               if layer.nm_eligible)


def test_report(exported):
    _, report = exported
    assert report['pattern'] == '2:4' and report['methods'] == ['lbc']
    assert json.loads(json.dumps(report)) == report  # plain data
    names = [e['name'] for e in report['layers']]
    assert len(names) == 52  # R50: 53 convs, the 3-channel stem cannot be grouped by 4
    assert 'backbone.layer1.0.conv2' in names and 'backbone.layer1.0.downsample.0' in names
    for entry in report['layers']:
        assert entry['nm_valid'] and entry['bad_groups'] == 0
        assert entry['sparsity'] == pytest.approx(0.5, abs=1e-3)  # random weights: no 0s
        assert entry['nonzero'] * 2 <= entry['numel']
    dense = {e['name']: e['reason'] for e in report['dense_layers']}
    assert 'not divisible by M=4' in dense['backbone.conv1']
    assert 'not a sparse layer' in dense['rpn_head.rpn_conv']
    assert 'roi_head.bbox_head.fc_cls' in dense
    assert len(report['dropped_keys']) == 2 * 52
    s = report['summary']
    assert s['sparse_layers'] == 52 and s['all_nm_valid']
    assert 0 < s['sparsity_of_conv_linear_weights'] < s['sparsity_of_sparse_layers']


def test_refuses_an_unfinished_layer_and_names_it(lbc_model):
    layer = lbc_model.backbone.layer3[1].conv2
    saved = layer.alive.clone()
    try:
        layer.alive.fill_(True)  # as at the start of training: every candidate alive
        with pytest.raises(NMExportError) as err:
            export_sparse_state_dict(lbc_model)
        assert err.value.layers == ['backbone.layer3.1.conv2']
        assert 'backbone.layer3.1.conv2' in str(err.value)
        assert 'not exactly N:M' in str(err.value)
    finally:
        layer.alive.copy_(saved)
    assert layer.nm_is_exact()  # restored


def test_refuses_a_model_without_sparse_layers(dense_model):
    with pytest.raises(NMExportError, match='no N:M sparse layer'):
        export_sparse_state_dict(dense_model)


def test_refuses_undeclared_method_state():
    from lbc_mmdet.layers.lbc import LBCConv2d
    model = nn.Sequential(LBCConv2d(8, 8, 1, n=2, m=4))
    model[0].remove_to(model[0].num_candidates - 1)
    model[0].register_buffer('secret', torch.zeros(1))
    with pytest.raises(NMExportError, match='nm_extra_state_names') as err:
        export_sparse_state_dict(model)
    assert err.value.layers == ['0']


def test_strip_sparse_layers_gives_the_dense_model(config_files, dense_model):
    model = build(config_files['tiny'])
    model2 = build(config_files['tiny'])
    replaced = strip_sparse_layers(model)
    assert replaced and not sparse_layers(model)
    conv = model.backbone.layer1[0].conv1
    assert type(conv) is nn.Conv2d and set(conv.state_dict()) == {'weight'}
    state, _ = export_sparse_state_dict(finish_lbc(model2))
    assert compare_keys(model, state) == ([], [])
    model.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval().backbone(x), model2.eval().backbone(x)):
            torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------ the tool
def test_export_tool_end_to_end(tiny_files, config_files, workdir):
    out = workdir / 'export' / 'tiny_dense.pth'
    proc = run_tool('export.py', tiny_files['config'], tiny_files['finished'], str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = proc.stdout + proc.stderr
    assert 'exported 19 2:4 layers' in log and f'wrote {out}' in log
    report = json.loads((workdir / 'export' / 'tiny_dense.pth.json').read_text())
    assert report['pattern'] == '2:4' and report['summary']['sparse_layers'] == 19
    assert report['output'] == str(out)
    # safe loader, plain meta, keys of the stock dense model
    checkpoint = torch.load(out, map_location='cpu', weights_only=True)
    assert set(checkpoint) == {'state_dict', 'meta'}
    meta = checkpoint['meta']
    assert meta['dataset_meta']['classes'] == ['a', 'b', 'c'] and meta['epoch'] == 3
    assert meta['lbc_mmdet_export']['pattern'] == '2:4'
    assert 'hook_msgs' not in meta
    dense = build(config_files['tiny_dense']).eval()
    assert compare_keys(dense, checkpoint['state_dict']) == ([], [])
    dense.load_state_dict(checkpoint['state_dict'], strict=True)
    for s, d in zip(predict(tiny_files['model'].eval()), predict(dense)):
        assert len(d.pred_instances) > 0
        torch.testing.assert_close(d.pred_instances.bboxes, s.pred_instances.bboxes,
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(d.pred_instances.scores, s.pred_instances.scores,
                                   atol=1e-5, rtol=0)
    # stock mmdet loading with the dense config
    from mmdet.apis import init_detector
    detector = init_detector(config_files['tiny_dense'], str(out), device='cpu')
    assert list(detector.dataset_meta['classes']) == ['a', 'b', 'c']


def test_export_tool_errors(tiny_files, workdir, capsys):
    tool = load_tool('export')
    cfg = tiny_files['config']
    out = str(workdir / 'tiny_out.pth')
    # missing checkpoint
    assert tool.cli([cfg, str(workdir / 'nope.pth'), out]) == 2
    assert 'checkpoint not found' in capsys.readouterr().err
    # config/checkpoint mismatch: an exported (dense-keyed) checkpoint
    assert tool.cli([cfg, tiny_files['exported'], out]) == 2
    err = capsys.readouterr().err
    assert 'does not match config' in err and 'missing' in err
    assert 'already exported' in err
    # unfinished LBC run: refused, a layer named
    assert tool.cli([cfg, tiny_files['unfinished'], out]) == 1
    err = capsys.readouterr().err
    assert 'not exactly N:M' in err and 'backbone.layer1.0.conv1' in err
    assert not osp.exists(out)
    # finished: exported; dataset_meta carried over
    assert tool.cli([cfg, tiny_files['finished'], out]) == 0
    meta = torch.load(out, weights_only=True)['meta']
    assert meta['dataset_meta']['classes'] == ['a', 'b', 'c']
    assert osp.isfile(out + '.json')


def test_export_tool_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        load_tool('export').parse_args(['--help'])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert 'config' in out and 'checkpoint' in out and 'exit status' in out


@pytest.mark.parametrize('method', sorted(SPARSE_LAYERS))
def test_every_method_exports_through_the_protocol(method):
    """Only the sparse-layer protocol is used: every registered method's layers export to
    plain nn.Conv2d / nn.Linear keys and compute the same."""
    torch.manual_seed(0)
    conv_cls, linear_cls = SPARSE_LAYERS[method]['Conv2d'], SPARSE_LAYERS[method]['Linear']
    model = nn.Sequential(conv_cls(8, 16, 3, n=2, m=4), nn.ReLU(),
                          conv_cls(16, 8, 1, n=2, m=4), nn.Flatten(),
                          linear_cls(8 * 7 * 7, 12, n=2, m=4))
    dense = nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Conv2d(16, 8, 1), nn.Flatten(),
                          nn.Linear(8 * 7 * 7, 12))
    state = NMScheduleState(t=10.0, ti=0.0, tf=1.0, iteration=1000)
    for _, layer in sparse_layers(model):
        layer.nm_update(state)
    # past tf (and ti) every method is exactly N:M
    assert all(layer.nm_is_exact() for _, layer in sparse_layers(model))
    exported_state, report = export_sparse_state_dict(model)
    assert report['methods'] == [method] and report['summary']['all_nm_valid']
    # verify_nm passes the exported checkpoint of every method ...
    assert verify_nm(exported_state, 2, 4, all_layers=True).ok
    # ... and fails it once one group holds N+1 non-zeros
    tampered = {k: v.clone() for k, v in exported_state.items()}
    w = tampered['0.weight']
    w[0, :4, 0, 0] = 1.0
    assert not verify_nm(tampered, 2, 4, all_layers=True).ok
    dense.load_state_dict(exported_state, strict=True)
    x = torch.randn(2, 8, 9, 9)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(dense(x), model(x), atol=1e-6, rtol=0)
