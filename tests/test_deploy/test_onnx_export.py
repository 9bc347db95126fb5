"""tools/export_onnx.py: the backbone + neck of a tiny LBC 2:4 detector to ONNX, checked
against PyTorch with onnxruntime, N:M verified in the ONNX initializers (a tampered one is
caught), TensorRT eligibility listed."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from deploy_helpers import load_tool, run_tool

onnx = pytest.importorskip('onnx', reason='onnx is not installed (requirements/tests.txt)')
pytest.importorskip('onnxruntime', reason='onnxruntime is not installed '
                    '(requirements/tests.txt)')

from onnx import helper, numpy_helper  # noqa: E402

from lbc_mmdet.deploy.onnx_export import onnx_convs, scope_to_module, trt_status  # noqa

NUM_SPARSE = 19  # the tiny R18's convs but the stem


@pytest.fixture(scope='module')
def exported_onnx(tiny_files, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('onnx') / 'tiny.onnx')
    rc = load_tool('export_onnx').cli([tiny_files['config'], tiny_files['finished'], out,
                                       '--input-size', '64'])
    assert rc == 0
    with open(out + '.json') as f:
        return out, json.load(f)


def test_onnx_matches_pytorch_and_keeps_nm(exported_onnx):
    _, report = exported_onnx
    assert report['ok'] and report['exported']
    rt = report['onnxruntime']
    assert rt['ok'] and len(rt['outputs']) == 5  # the FPN levels
    assert 0 <= rt['max_abs_diff'] < 1e-3
    assert all(o['max_abs_diff'] <= o['tolerance'] for o in rt['outputs'])
    nm = report['nm']
    assert nm['ok'] and nm['expected'] == nm['checked'] == NUM_SPARSE and not nm['failed']
    checked = [e for e in report['layers'] if 'nm_valid' in e]
    assert len(checked) == NUM_SPARSE and all(e['nm_valid'] for e in checked)
    assert all(e['max_nonzero'] <= 2 for e in checked)
    # every ONNX conv was matched to its module
    assert all(e['module'] for e in report['layers'])
    assert {e['module'] for e in checked} >= {'backbone.layer1.0.conv1',
                                              'backbone.layer4.1.conv2'}


def test_tensorrt_eligibility(exported_onnx):
    _, report = exported_onnx
    trt = report['tensorrt']
    assert len(trt['sparse_eligible']) == NUM_SPARSE
    why = {e['name']: e['reason'] for e in trt['not_eligible']}
    assert why['backbone.conv1'] == '3 input channels: not a multiple of 4'
    assert all('not 2:4' in r for n, r in why.items() if n.startswith('neck.'))
    assert len(why) == 1 + 8  # the stem and the dense FPN convs
    assert trt['large'] == []  # the tiny model's channels are below 256


def test_a_tampered_initializer_is_caught(exported_onnx, tiny_files, tmp_path, capsys):
    out, report = exported_onnx
    entry = [e for e in report['layers'] if e['module'] == 'backbone.layer2.0.conv2'][0]
    model = onnx.load(out)
    init = [i for i in model.graph.initializer if i.name == entry['source']][0]
    w = numpy_helper.to_array(init).copy()
    zeros = np.flatnonzero(w[0, 0:4, 1, 1] == 0)
    w[0, zeros[0], 1, 1] = 1e-6  # a third non-zero in one group of 4 input channels
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    bad = str(tmp_path / 'tampered.onnx')
    onnx.save(model, bad)
    capsys.readouterr()
    rc = load_tool('export_onnx').cli([tiny_files['config'], tiny_files['finished'], bad,
                                       '--input-size', '64', '--check-only'])
    err = capsys.readouterr().err
    assert rc == 1
    assert 'error: ONNX check failed' in err and 'backbone.layer2.0.conv2' in err
    assert '1 groups of 4 input channels hold more than 2 non-zeros (max 3)' in err
    with open(bad + '.json') as f:
        rep = json.load(f)
    assert rep['nm']['failed'] == ['backbone.layer2.0.conv2'] and not rep['ok']
    assert rep['onnxruntime']['ok']  # the outputs barely moved: only the N:M check fails


def test_dense_config_with_exported_checkpoint(tiny_files, config_files, tmp_path):
    out = str(tmp_path / 'dense.onnx')
    rc = load_tool('export_onnx').cli([config_files['tiny_dense'], tiny_files['exported'],
                                       out, '--input-size', '64', '--check-only'])
    assert rc == 2  # no such file to check
    rc = load_tool('export_onnx').cli([config_files['tiny_dense'], tiny_files['exported'],
                                       out, '--input-size', '64'])
    assert rc == 0
    with open(out + '.json') as f:
        rep = json.load(f)
    assert 'dense config' in rep['expected_layers']
    assert rep['nm']['checked'] == NUM_SPARSE and rep['ok']


def test_tool_help_and_bad_input(tmp_path):
    res = run_tool('export_onnx.py', '--help')
    assert res.returncode == 0 and '--check-only' in res.stdout and 'trtexec' in res.stdout
    res = run_tool('export_onnx.py', 'missing.py', 'missing.pth', str(tmp_path / 'x.onnx'))
    assert res.returncode == 2 and res.stderr.strip().startswith('error:')


def test_scope_names_map_to_modules():
    assert scope_to_module('/backbone/layer1/layer1.0/conv2/Conv') == \
        'backbone.layer1.0.conv2'
    assert scope_to_module('/backbone/layer2/layer2.0/downsample/downsample.0/Conv') == \
        'backbone.layer2.0.downsample.0'
    assert scope_to_module('/neck/lateral_convs.0/conv/Conv') == 'neck.lateral_convs.0.conv'


def test_weights_behind_transpose_and_identity_nodes():
    """A graph storing the conv weight transposed ([C, K, R, S]) behind Transpose and
    Identity nodes: the check reads it back in [K, C, R, S]."""
    w = np.zeros((4, 8, 1, 1), dtype=np.float32)
    w[:, 0] = 1.0
    w[:, 5] = 2.0  # 2:4 along the input channels
    graph = helper.make_graph(
        [helper.make_node('Transpose', ['wt'], ['w1'], perm=[1, 0, 2, 3]),
         helper.make_node('Identity', ['w1'], ['w2']),
         helper.make_node('Conv', ['x', 'w2'], ['y'], name='/conv/Conv')],
        'g', [helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1, 8, 2, 2])],
        [helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1, 4, 2, 2])],
        initializer=[numpy_helper.from_array(w.transpose(1, 0, 2, 3).copy(), 'wt')])
    module = nn.Module()
    module.conv = nn.Conv2d(8, 4, 1, bias=False)
    module.forward = lambda x: module.conv(x)
    convs = onnx_convs(helper.make_model(graph), module, torch.randn(1, 8, 2, 2))
    assert len(convs) == 1 and convs[0]['module'] == 'conv'
    np.testing.assert_array_equal(convs[0]['weight'], w)
    assert 'via Identity/Transpose' in convs[0]['source']
    assert trt_status(convs[0])[0]
    w[0, 1] = 3.0
    w[0, 2] = 3.0  # 3 non-zeros in the first group of output channel 0
    convs[0]['weight'] = w
    ok, why = trt_status(convs[0])
    assert not ok and '1 groups of 4 hold more than 2' in why
