"""A run that dies between two checkpoints and is resumed ends exactly as an uninterrupted
run with the same seed: same method state (LBC ``alive``, ASP ``mask``/``pruned``, BAME
buffers), same masks, same weights. Toy model in a real MMEngine Runner (fast)."""
import os.path as osp

import pytest
import torch
from _common import SPARSE_LAYERS
from _nm_toy import method_state, toy_model, toy_runner_kwargs
from mmengine.hooks import Hook
from mmengine.runner import Runner

MAX_ITERS, TF, CRASH_AFTER = 8, 6, 3  # checkpoints every 2: the crash loses iteration 3


class Crash(Exception):
    pass


class CrashHook(Hook):
    """Dies after iteration ``after`` (before the next checkpoint)."""
    priority = 'LOWEST'

    def __init__(self, after):
        self.after = after

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.after:
            raise Crash(f'killed after iteration {self.after}')


def _hooks(method):
    ti = 2 if method == 'asp' else 0
    return [dict(type='NMSparsityHook', ti=ti, tf=TF), dict(type='RNGStateHook')]


def _runner(method, work_dir, name, resume=False):
    kwargs = dict(interval=2) if method == 'bame' else {}
    runner = Runner(model=toy_model(method, **kwargs), resume=resume,
                    **toy_runner_kwargs(work_dir, max_iters=MAX_ITERS,
                                        custom_hooks=_hooks(method), ckpt_interval=2,
                                        name=name))
    return runner


def _ckpt_state(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


@pytest.mark.parametrize('method', sorted(SPARSE_LAYERS))
def test_killed_and_resumed_run_matches_uninterrupted(method, tmp_path):
    full_dir, cut_dir = str(tmp_path / 'full'), str(tmp_path / 'cut')
    full = _runner(method, full_dir, f'{method}_full')
    full.train()

    cut = _runner(method, cut_dir, f'{method}_cut')
    cut.register_hook(CrashHook(CRASH_AFTER))
    with pytest.raises(Crash):
        cut.train()
    assert osp.isfile(osp.join(cut_dir, 'iter_2.pth'))
    assert not osp.isfile(osp.join(cut_dir, 'iter_4.pth'))

    # the checkpoint it resumes from is mid-schedule, with the method's state in it
    state2 = _ckpt_state(osp.join(cut_dir, 'iter_2.pth'))
    if method == 'lbc':
        assert 1 < int(state2['conv2.alive'][0].sum()) < 6
    elif method == 'asp':
        assert bool(state2['conv2.pruned'])
    elif method == 'bame':
        assert int(state2['conv2.last_update']) == 2
        assert bool(state2['conv2.initialized'])

    resumed = _runner(method, cut_dir, f'{method}_resumed', resume=True)  # auto-resume
    resumed.train()
    assert resumed.iter == MAX_ITERS

    want, got = method_state(full.model), method_state(resumed.model)
    assert set(want) == set(got) and want
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, equal_nan=True,
                                   msg=f'{method} {key}')
    for (name, p_full), (_, p_res) in zip(full.model.named_parameters(),
                                          resumed.model.named_parameters()):
        assert torch.equal(p_full, p_res), (method, name)

    # the final checkpoints agree too
    final_full = _ckpt_state(osp.join(full_dir, f'iter_{MAX_ITERS}.pth'))
    final_cut = _ckpt_state(osp.join(cut_dir, f'iter_{MAX_ITERS}.pth'))
    assert set(final_full) == set(final_cut)
    for key in final_full:
        torch.testing.assert_close(final_cut[key], final_full[key], rtol=0, atol=0,
                                   equal_nan=True, msg=f'{method} {key}')
