"""The one-shot method (``OneShotConv2d``/``OneShotLinear``) and ``CalibrationHook``: the
calibration batches follow the seed, the hook prunes at the start of training with the
statistics of the chosen batches, the mask state survives a resume (no re-prune), and a
layer never calibrated falls back to magnitude."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.runner import Runner

import lbc_mmdet
from lbc_mmdet.engine.calibration import (
    calibration_batches,
    calibration_indices,
    collect_input_statistics,
    dataset_and_collate,
)
from lbc_mmdet.layers import NMScheduleState, get_method, sparse_layers
from lbc_mmdet.nm import prune_weight, to_groups

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_engine'))
from _nm_toy import ToyData, method_state, toy_model, toy_runner_kwargs  # noqa: E402

CONV = get_method('oneshot').layers['Conv2d']


def test_options_are_checked():
    with pytest.raises(ValueError, match='criterion'):
        CONV(8, 8, 3, n=2, m=4, criterion='obs')
    with pytest.raises(ValueError, match='damp'):
        CONV(8, 8, 3, n=2, m=4, damp=-1.0)
    with pytest.raises(ValueError, match='multiple of M'):
        CONV(8, 8, 3, n=2, m=4, block_size=6)
    layer = CONV(8, 8, 3, n=2, m=4, criterion='wanda', damp=0.1, block_size=8)
    assert (layer.criterion, layer.damp, layer.block_size) == ('wanda', 0.1, 8)
    assert layer.nm_calibration_needs() == 'norms' and not layer.nm_is_exact()


def test_calibration_seed_chooses_the_batches():
    a = calibration_indices(40, 3, 4, seed=0)
    assert a == calibration_indices(40, 3, 4, seed=0)
    assert a != calibration_indices(40, 3, 4, seed=1)
    flat = sum(a, [])
    assert len(set(flat)) == 12
    held = sum(calibration_indices(40, 2, 4, seed=0, skip=3), [])
    assert not set(held) & set(flat)  # held-out batches follow, no shared image
    with pytest.raises(lbc_mmdet.errors.LBCError, match='has 40'):
        calibration_indices(40, 11, 4, seed=0)
    # the collated batches too, and the global RNG is left as it was
    dataset, collate, _ = dataset_and_collate(dict(
        dataset=ToyData(size=16), collate_fn=dict(type='default_collate'), batch_size=2))
    state = torch.get_rng_state()
    b0 = list(calibration_batches(dataset, collate, 2, 2, seed=5))
    assert torch.equal(torch.get_rng_state(), state)
    b0_again = list(calibration_batches(dataset, collate, 2, 2, seed=5))
    b1 = list(calibration_batches(dataset, collate, 2, 2, seed=6))
    assert all(torch.equal(x['inputs'], y['inputs']) for x, y in zip(b0, b0_again))
    assert not all(torch.equal(x['inputs'], y['inputs']) for x, y in zip(b0, b1))


def _hooks(batches=2):
    return [dict(type='CalibrationHook', batches=batches),
            dict(type='NMSparsityHook', ti=0, tf=4), dict(type='RNGStateHook')]


def _runner(work_dir, name, criterion='sparsegpt', resume=False, max_iters=4):
    model = toy_model('oneshot', criterion=criterion, block_size=8)
    return Runner(model=model, resume=resume, **toy_runner_kwargs(
        work_dir, max_iters=max_iters, custom_hooks=_hooks(), ckpt_interval=2, name=name))


@pytest.mark.parametrize('criterion', ['sparsegpt', 'wanda'])
def test_hook_prunes_from_the_seeded_batches(criterion, tmp_path):
    """The weights after the hook are prune_weight() of the initial weights with the
    statistics of the batches seed 0 chooses (computed here independently)."""
    ref = toy_model('oneshot', criterion=criterion, block_size=8)
    dataset, collate, bs = dataset_and_collate(dict(
        dataset=ToyData(), collate_fn=dict(type='default_collate'), batch_size=2))
    wanted = {n: (lay, lay.nm_calibration_needs()) for n, lay in sparse_layers(ref)
              if lay.nm_eligible}
    stats = collect_input_statistics(ref, wanted, calibration_batches(
        dataset, collate, 2, bs, seed=0))
    expect = {n: prune_weight(lay.weight, 2, 4, criterion, stats[n], block_size=8)
              for n, (lay, _) in wanted.items()}

    runner = _runner(str(tmp_path), f'cal_{criterion}', criterion, max_iters=1)
    hook = next(h for h in runner._hooks if type(h).__name__ == 'CalibrationHook')
    runner.train_loop  # build it as train() does, then only run before_train
    runner.call_hook('before_train')
    assert hook.report['layers'] == len(wanted) == 4
    for name, layer in sparse_layers(runner.model):
        w, mask = expect[name]
        assert torch.equal(layer.mask, mask), name
        torch.testing.assert_close(layer.weight.detach(), w, rtol=1e-5, atol=1e-6)
        assert layer.nm_is_exact() and bool(layer.pruned)
        assert layer.nm_calibration_needs() is None
    if criterion == 'sparsegpt':  # the kept weights moved (the OBS update)
        before = dict(ref.named_parameters())['conv2.weight'].detach()
        after = runner.model.conv2.weight.detach()
        kept = runner.model.conv2.mask
        assert not torch.allclose(after[kept], before[kept])


class _NoCalibration(Exception):
    pass


def test_state_survives_a_resume_without_re_pruning(tmp_path, monkeypatch):
    full = _runner(str(tmp_path / 'full'), 'full')
    full.train()
    cut = _runner(str(tmp_path / 'cut'), 'cut', max_iters=2)
    cut.train()
    state2 = torch.load(osp.join(tmp_path, 'cut', 'iter_2.pth'), weights_only=True,
                        map_location='cpu')['state_dict']
    assert bool(state2['conv2.pruned'])
    assert bool((to_groups(state2['conv2.mask'].int(), 4).sum(1) == 2).all())

    def refuse(self, stats):
        raise _NoCalibration('calibrated again on resume')
    monkeypatch.setattr(CONV, '_nm_calibrate', refuse)
    resumed = _runner(str(tmp_path / 'cut'), 'resumed', resume=True)
    resumed.train()
    assert resumed.iter == 4
    want, got = method_state(full.model), method_state(resumed.model)
    assert set(want) == set(got) and want
    for key in want:
        assert torch.equal(got[key], want[key]), key
    for (name, a), (_, b) in zip(full.model.named_parameters(),
                                 resumed.model.named_parameters()):
        assert torch.equal(a, b), name
    for _, layer in sparse_layers(resumed.model):
        assert layer.nm_is_exact()
        assert bool((layer.weight[~layer.mask] == 0).all())


def test_uncalibrated_layer_falls_back_to_magnitude():
    model = toy_model('oneshot', criterion='sparsegpt')
    layer = model.conv2
    assert layer.nm_warnings() and 'CalibrationHook' in layer.nm_warnings()[0]
    w0 = layer.weight.detach().clone()
    assert not layer.nm_update(NMScheduleState(t=0, ti=1, tf=2, iteration=0))
    assert layer.nm_update(NMScheduleState(t=1, ti=1, tf=2, iteration=1))
    _, mask = prune_weight(w0, 2, 4, 'magnitude')
    assert torch.equal(layer.mask, mask) and layer.nm_is_exact()
    assert layer.nm_stats()['fallback'] == 1.0 and not layer.nm_warnings()
    # magnitude itself is no fallback
    mag = toy_model('oneshot', criterion='magnitude').conv2
    assert mag.nm_calibration_needs() == 'weights'  # pruned by the hook, with no data
    mag.nm_update(NMScheduleState(t=1, ti=1, tf=2, iteration=1))
    assert mag.nm_stats()['fallback'] == 0.0 and mag.nm_is_exact()
    assert mag.nm_calibration_needs() is None  # pruned: nothing more to ask for


def test_magnitude_is_pruned_by_the_calibration_call_without_data():
    """An evaluate-only run has no schedule: the calibration hook's call is what prunes a
    magnitude layer (stats None), the same mask as the schedule's prune."""
    layer = toy_model('oneshot', criterion='magnitude').conv2
    w0 = layer.weight.detach().clone()
    assert layer.nm_calibration_needs() == 'weights' and not layer.nm_is_exact()
    assert layer.nm_calibrate(None)
    _, mask = prune_weight(w0, 2, 4, 'magnitude')
    assert torch.equal(layer.mask, mask) and layer.nm_is_exact()
    assert layer.nm_calibration_needs() is None and not layer.nm_calibrate(None)
