"""``NMSparsityHook(diag_interval=...)`` logs the mask-health diagnostics in a real MMEngine
Runner: the mean to the message hub (and so the log), every layer to
``<log_dir>/nm_diagnostics.jsonl``."""
import json
import os.path as osp

import pytest
from _nm_toy import toy_model, toy_runner_kwargs
from mmengine.runner import Runner

from lbc_mmdet.engine.hooks.nm_diagnostics import DIAG_FILE


def _run(tmp_path, method, hook, max_iters=6, lr=0.05, name=None):
    model = toy_model(method)
    # a name of its own: MMEngine shares the message hub of runners of the same name
    runner = Runner(model=model, **toy_runner_kwargs(
        str(tmp_path / method), max_iters=max_iters, name=name or f'diag_{method}',
        custom_hooks=[dict(type='NMSparsityHook', **hook)],
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=lr))))
    runner.train()
    path = osp.join(runner.log_dir, DIAG_FILE)
    records = [json.loads(line) for line in open(path)] if osp.exists(path) else []
    return runner, records


def test_asp_flip_rate_is_zero_after_its_prune(tmp_path):
    runner, records = _run(tmp_path, 'asp', dict(ti=0, tf=1, diag_interval=2))
    # before_train (pruned there, ti = 0), every 2 iterations, after_train
    assert [r['iter'] for r in records] == [0, 2, 4, 6, 6]
    assert records[0]['start'] and records[-1]['final']
    assert records[0]['methods'] == ['asp']
    names = set(records[0]['layers'])
    assert names == {'conv1', 'conv2', 'conv3', 'fc'}
    for r in records:
        assert set(r['layers']) == names
        assert r['mean']['flip_rate'] == 0.0
        assert all(v['flip_rate'] == 0.0 for v in r['layers'].values())
    # the mean went to the message hub (what LoggerHook writes into the log)
    assert runner.message_hub.get_scalar('train/nm_flip_rate').current() == 0.0


def test_srste_flips_early_in_training(tmp_path):
    runner, records = _run(tmp_path, 'srste', dict(diag_interval=1), max_iters=3, lr=0.5)
    assert [r['iter'] for r in records] == [0, 1, 2, 3, 3]
    early = records[1]
    assert early['mean']['flip_rate'] > 0
    mean = sum(v['flip_rate'] for v in early['layers'].values()) / len(early['layers'])
    assert early['mean']['flip_rate'] == pytest.approx(mean)
    # divergence from the start mask: 0 at the start, the first flips after one step
    assert records[0]['mean']['divergence_start'] == 0.0
    assert early['mean']['divergence_start'] == pytest.approx(early['mean']['flip_rate'])
    assert runner.message_hub.get_scalar('train/nm_divergence_start').current() > 0


def test_lbc_logs_its_margin_and_diag_interval_0_disables(tmp_path):
    _, records = _run(tmp_path, 'lbc', dict(ti=0, tf=4, diag_interval=3))
    assert [r['iter'] for r in records] == [0, 3, 6, 6]
    assert 'score_margin' in records[0]['mean']  # every candidate alive
    assert 'score_margin' not in records[-1]['mean']  # one left after tf
    runner, records = _run(tmp_path / 'off', 'lbc', dict(ti=0, tf=4, diag_interval=0),
                           name='diag_off')
    assert records == []
    assert 'train/nm_flip_rate' not in runner.message_hub.log_scalars


def test_diag_interval_is_checked():
    from lbc_mmdet.engine.hooks import NMSparsityHook
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match='diag_interval'):
            NMSparsityHook(diag_interval=bad)


def test_analyze_masks_on_a_real_run(tmp_path, capsys):
    """The hook's file and checkpoints of a real run: the per-layer figures, and the
    distance of every checkpoint's mask to the last one's (rebuilt by the method)."""
    import csv

    import torch

    from lbc_mmdet.cli.analyze_masks import cli
    from lbc_mmdet.nm import topn_magnitude_mask_like

    model = toy_model('srste')
    work_dir = str(tmp_path / 'run')
    runner = Runner(model=model, **toy_runner_kwargs(
        work_dir, max_iters=6, name='diag_ckpt', ckpt_interval=2,
        custom_hooks=[dict(type='NMSparsityHook', diag_interval=2)],
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.5))))
    runner.train()
    start = json.loads(open(osp.join(runner.log_dir, DIAG_FILE)).readline())
    assert start['layer_info']['fc'] == dict(
        method='srste', n=2, m=4, options=dict(lambda_w=2e-4, gradual=False))
    assert cli([work_dir]) == 0
    out = capsys.readouterr().out
    assert 'distance to the final mask' in out
    figures = tmp_path / 'run' / 'mask_analysis'
    for name in ('flip_rate', 'divergence_start', 'divergence_final'):
        assert (figures / f'{name}_layers.png').is_file()
    rows = {r['layer']: r for r in csv.DictReader(open(figures / 'summary.csv'))}
    # by hand: SR-STE's mask is the top-2 |w| of every group of 4 of the checkpoint
    sds = [torch.load(osp.join(work_dir, f'iter_{i}.pth'), weights_only=False)[
        'state_dict'] for i in (2, 6)]
    first, last = (topn_magnitude_mask_like(sd['fc.weight'], 2, 4) for sd in sds)
    expected = float((first != last).float().mean())
    assert expected > 0
    assert float(rows['fc']['first ckpt divergence_final']) == pytest.approx(expected)



def test_srste_gradual_in_a_runner(tmp_path):
    """``gradual=True`` through ``sparsify`` and the hook: dense at ``ti`` (every mask bit
    set), on the cubic schedule in between, exact N:M from ``tf`` on."""
    import torch
    from _nm_toy import ToyNet
    from mmengine.hooks import Hook

    import lbc_mmdet

    torch.manual_seed(0)
    model = ToyNet()
    lbc_mmdet.sparsify(model, 'srste', n=1, m=8, gradual=True)
    layers = [lay for _, lay in lbc_mmdet.sparse_layers(model) if lay.nm_eligible]
    keeps = []

    class KeepSpy(Hook):
        priority = 'LOWEST'  # after NMSparsityHook

        def before_train(self, runner):
            keeps.append(layers[0].nm_keep)
            assert bool(layers[0].nm_mask().all())  # dense at t = ti

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            keeps.append(layers[0].nm_keep)

    runner = Runner(model=model, **toy_runner_kwargs(
        str(tmp_path / 'gradual'), max_iters=5, name='diag_gradual',
        custom_hooks=[dict(type='NMSparsityHook', ti=0, tf=4, diag_interval=1)]))
    runner.register_hook(KeepSpy())
    runner.train()
    # pruned of 8 at t: ceil(7 * (1 - (1 - t / 4) ** 3)): t=1 -> 5, t=2 -> 7 (6.125)
    assert keeps == [8, 3, 1, 1, 1, 1]
    assert all(lay.nm_is_exact() and lay.nm_keep == 1 for lay in layers)
