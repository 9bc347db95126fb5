"""verify_nm and tools/verify_nm.py on exported, dense and tampered checkpoints."""
import json

import pytest
import torch
from deploy_helpers import load_tool, run_tool

from lbc_mmdet.deploy.verify import DEFAULT_INCLUDE, verify_nm
from lbc_mmdet.nm import to_groups

TAMPERED = 'backbone.layer2.1.conv2.weight'


def tamper(state, key=TAMPERED, group=5):
    """Give one group of 4 of ``key`` N + 1 = 3 non-zeros."""
    state = dict(state)
    w = state[key].clone()
    groups = to_groups(w, 4)  # a copy for 4-D weights
    row = groups[group]
    zero = int((row == 0).nonzero()[0])
    row[zero] = 0.123
    o, i, kh, kw = w.shape
    state[key] = groups.reshape(o, kh, kw, i).permute(0, 3, 1, 2).contiguous()
    return state


def test_exported_checkpoint_passes(exported):
    state, _ = exported
    result = verify_nm(state, 2, 4)
    assert result.ok, result.summary()
    assert result.include == list(DEFAULT_INCLUDE)
    assert len(result.checked) == 52
    assert [s['key'] for s in result.skipped] == ['backbone.conv1.weight']
    assert 'not divisible by M=4' in result.skipped[0]['reason']
    assert result.summary().startswith('OK: all 52 checked weights are 2:4')
    assert json.loads(json.dumps(result.to_dict()))['ok'] is True
    # a wrapped checkpoint dict works the same; 1:4 would not hold
    assert verify_nm(dict(state_dict=state, meta={}), 2, 4).ok
    assert not verify_nm(state, 1, 4).ok


def test_all_layers_checks_the_dense_heads_too(exported):
    state, _ = exported
    result = verify_nm(state, 2, 4, all_layers=True)
    assert not result.ok
    bad = {c.key for c in result.offending}
    assert 'rpn_head.rpn_conv.weight' in bad and 'roi_head.bbox_head.fc_cls.weight' in bad
    assert not any(k.startswith('backbone.') for k in bad)
    # include patterns select keys
    result = verify_nm(state, 2, 4, include=['backbone.layer4.*', 'neck.*'])
    assert {c.key.split('.')[0] for c in result.offending} == {'neck'}
    assert all(c.key.startswith(('backbone.layer4.', 'neck.')) for c in result.checked)


def test_dense_and_tampered_checkpoints_fail(exported, dense_model):
    result = verify_nm(dense_model.state_dict(), 2, 4)
    assert not result.ok and len(result.offending) == 52
    result = verify_nm(tamper(exported[0]), 2, 4)
    assert not result.ok
    assert [c.key for c in result.offending] == [TAMPERED]
    assert result.offending[0].bad_groups == 1 and result.offending[0].max_nonzero == 3
    assert TAMPERED in result.summary()


def test_training_checkpoint_gets_a_hint(lbc_model):
    result = verify_nm(lbc_model.state_dict(), 2, 4)
    assert not result.ok
    assert any('export it first' in h.lower() for h in result.hints)


def test_nothing_matched_fails(exported):
    result = verify_nm(exported[0], 2, 4, include=['nope.*'])
    assert not result.ok and 'nothing was checked' in result.summary()
    with pytest.raises(ValueError):
        verify_nm(exported[0], 4, 4)


def test_linear_and_half_weights():
    w = torch.tensor([[1.0, 0, 0, 2, 0, 3, 0, 4]]).half()
    assert verify_nm({'fc.weight': w}, 2, 4, all_layers=True).ok
    w[0, 1] = 5
    result = verify_nm({'fc.weight': w}, 2, 4, all_layers=True)
    assert not result.ok and result.offending[0].bad_groups == 1


def test_tool_exit_status_and_layer_names(exported_file, exported, workdir):
    proc = run_tool('verify_nm.py', exported_file, '--n', '2', '--m', '4', '--json',
                    str(workdir / 'verify.json'))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'OK: all 52 checked weights are 2:4' in proc.stdout
    assert json.loads((workdir / 'verify.json').read_text())['ok'] is True

    tampered = workdir / 'tampered.pth'
    torch.save(dict(state_dict=tamper(exported[0])), tampered)
    proc = run_tool('verify_nm.py', str(tampered), '--n', '2', '--m', '4')
    assert proc.returncode == 1
    assert TAMPERED in proc.stdout and '1 of' in proc.stdout



def test_tool_fails_a_dense_checkpoint(dense_model, workdir, capsys):
    dense = workdir / 'dense.pth'
    torch.save(dense_model.state_dict(), dense)  # a bare state dict
    tool = load_tool('verify_nm')
    assert tool.cli([str(dense), '--n', '2', '--m', '4', '--include',
                      'backbone.layer1.*']) == 1
    out = capsys.readouterr().out
    assert 'FAIL: 10 of 10 checked weights are not 2:4' in out
    assert 'backbone.layer1.0.conv1.weight' in out


def test_tool_bad_input(workdir, capsys):
    tool = load_tool('verify_nm')
    assert tool.cli([str(workdir / 'missing.pth'), '--n', '2', '--m', '4']) == 2
    assert 'not found' in capsys.readouterr().err
    assert tool.cli([str(workdir / 'missing.pth'), '--n', '4', '--m', '4']) == 2
    assert 'need 0 < n < m' in capsys.readouterr().err
    junk = workdir / 'junk.pth'
    junk.write_bytes(b'not a checkpoint')
    assert tool.cli([str(junk), '--n', '2', '--m', '4']) == 2
    assert 'is corrupt or truncated' in capsys.readouterr().err


def test_non_finite_weights_are_named():
    """A NaN counts as a non-zero and is named as what it is: a diverged training."""
    weight = torch.zeros(8, 8, 3, 3)
    weight[:, 0] = 1.0  # 1 of every 4 input channels: 2:4 holds
    assert verify_nm({'backbone.conv.weight': weight}, 2, 4).ok
    weight[0, 1, 0, 0] = float('nan')  # 2 non-zeros in a group: still within 2:4
    result = verify_nm({'backbone.conv.weight': weight}, 2, 4)
    check = result.checked[0]
    assert check.bad_groups == 0 and check.nonfinite == 1 and not check.ok
    assert not result.ok and result.to_dict()['checked'][0]['nonfinite'] == 1
    assert '1 non-finite values' in result.summary()
    assert any('non-finite values (NaN/Inf)' in h and 'training diverged' in h
               for h in result.hints)
