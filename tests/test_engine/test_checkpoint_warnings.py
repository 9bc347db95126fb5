"""``SafeCheckpointHook`` silences exactly MMEngine's two warnings about its own
checkpoint code (``FileClient``, ``HardDiskBackend``); every other warning is logged."""
import glob
import logging
import os.path as osp

from _nm_toy import toy_model, toy_runner_kwargs
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import Runner

from lbc_mmdet.engine.hooks.safe_checkpoint_hook import (
    MMENGINE_SELF_DEPRECATIONS,
    MMEngineSelfDeprecationFilter,
)

FILE_CLIENT = '"FileClient" will be deprecated in future'
HARD_DISK = '"HardDiskBackend" is the alias of "LocalBackend"'


class WarnHook(Hook):
    """Logs warnings of its own, before and after the checkpoint is saved."""

    def before_train(self, runner):
        runner.logger.warning('a user warning before training')

    def after_train(self, runner):
        print_log('a warning through print_log after training', logger='current',
                  level=logging.WARNING)
        print_log('"FileClient" is mentioned by someone else', logger='current',
                  level=logging.WARNING)


def _train(work_dir, safe_hook: bool, monkeypatch) -> str:
    # MMEngine caches its FileClients (HardDiskBackend warns when one is first made): each
    # run starts as the first of a process does
    from mmengine.fileio import FileClient
    monkeypatch.setattr(FileClient, '_instances', {})
    kwargs = toy_runner_kwargs(work_dir, max_iters=2, ckpt_interval=1,
                               name=f'warnings_{safe_hook}', custom_hooks=[WarnHook()])
    if not safe_hook:
        kwargs['custom_hooks'] = [h for h in kwargs['custom_hooks']
                                  if not (isinstance(h, dict)
                                          and h['type'] == 'SafeCheckpointHook')]
    runner = Runner(model=toy_model('lbc'), **kwargs)
    runner.train()
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))  # checkpoints were saved
    return open(glob.glob(osp.join(runner.log_dir, '*.log'))[0]).read()


def _warnings(log: str) -> list:
    return [line.split(' - WARNING - ', 1)[1] for line in log.splitlines()
            if ' - WARNING - ' in line]


def test_mmengine_self_deprecations_are_silenced(tmp_path, monkeypatch):
    plain = _train(str(tmp_path / 'plain'), safe_hook=False, monkeypatch=monkeypatch)
    assert FILE_CLIENT in plain and HARD_DISK in plain  # what MMEngine 0.10.7 logs
    log = _train(str(tmp_path / 'safe'), safe_hook=True, monkeypatch=monkeypatch)
    assert FILE_CLIENT not in log and HARD_DISK not in log
    assert 'a user warning before training' in log
    assert 'a warning through print_log after training' in log
    assert '"FileClient" is mentioned by someone else' in log
    # every other warning of the plain run (MMEngine's own included) is still there
    dropped = [w for w in _warnings(plain) if w.startswith(MMENGINE_SELF_DEPRECATIONS)]
    assert len(dropped) >= 2
    assert _warnings(log) == [w for w in _warnings(plain) if w not in dropped]
    assert 'Dataset ToyData has no metainfo' in log  # one of MMEngine's, kept


def test_filter_drops_only_the_two_warnings():
    f = MMEngineSelfDeprecationFilter()

    def record(msg, level=logging.WARNING):
        return logging.LogRecord('mmengine', level, __file__, 1, msg, None, None)

    for prefix in MMENGINE_SELF_DEPRECATIONS:
        assert not f.filter(record(prefix + ' and the rest'))
        assert f.filter(record(prefix, level=logging.ERROR))
    assert f.filter(record('"HardDiskBackend" is something else'))
    assert f.filter(record('any other warning'))
