"""Safe checkpoints: resume under torch>=2.6 weights_only, refusal of bad pickles, atomic
writes, and no change to MMEngine on import."""
import copy
import io
import logging
import os
import os.path as osp
import pickle
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_from_local
from mmengine.testing.runner_test_case import ToyDataset, ToyMetric, ToyModel

import lbc_mmdet.engine.checkpoint as safe_ckpt
from lbc_mmdet.engine.checkpoint import (
    UNSAFE_LOAD_ENV,
    AtomicLocalBackend,
    UnsafeCheckpointError,
    history_buffer_from_plain,
    history_buffer_to_plain,
    plain_checkpoint,
    restore_checkpoint,
)
from lbc_mmdet.utils import atomic_write, to_plain

SAFE_HOOK = dict(type='mmdet.SafeCheckpointHook')


@pytest.fixture(autouse=True)
def _installed_and_safe(monkeypatch):
    """Every test starts with safe checkpoints installed and no unsafe opt-in."""
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    safe_ckpt.install_safe_checkpoints()
    yield
    safe_ckpt.install_safe_checkpoints()


@pytest.fixture(scope='module', autouse=True)
def _toy_registry():
    from mmengine.registry import DATASETS, METRICS, MODELS

    import lbc_mmdet  # noqa: F401  (registers SafeCheckpointHook)
    MODELS.register_module(module=ToyModel, force=True)
    METRICS.register_module(module=ToyMetric, force=True)
    DATASETS.register_module(module=ToyDataset, force=True)


def _toy_cfg(work_dir, max_iters, name, safe=True):
    """An iteration-based toy Runner config saving a checkpoint every 4."""
    return Config(dict(
        work_dir=str(work_dir),
        experiment_name=name,
        model=dict(type='ToyModel'),
        train_dataloader=dict(
            dataset=dict(type='ToyDataset'),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=3, num_workers=0),
        val_dataloader=dict(
            dataset=dict(type='ToyDataset'),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=3, num_workers=0),
        val_evaluator=[dict(type='ToyMetric')],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                              end=4)],
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=4),
        val_cfg=dict(),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False,
                            save_best='acc', rule='greater')),
        custom_hooks=[SAFE_HOOK] if safe else [],
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
    ))


def _train(work_dir, max_iters, name, safe=True):
    runner = Runner.from_cfg(_toy_cfg(work_dir, max_iters, name, safe))
    runner.train()
    hub = runner.message_hub
    logging.shutdown()
    return runner, hub


# --------------------------------------------------------------------------- plain data
def test_history_buffer_round_trip():
    buf = HistoryBuffer(max_length=5)
    for v in (1.0, 2.5, 3, 4.25, 5.0, 6.0):
        buf.update(v, count=2)
    plain = history_buffer_to_plain(buf)
    assert plain == dict(type='HistoryBuffer', log_history=[2.5, 3.0, 4.25, 5.0, 6.0],
                         count_history=[2, 2, 2, 2, 2], max_length=5)
    assert all(type(v) is float for v in plain['log_history'])
    back = history_buffer_from_plain(plain)
    assert back.max_length == 5
    np.testing.assert_array_equal(back.data[0], buf.data[0])
    np.testing.assert_array_equal(back.data[1], buf.data[1])
    assert back.mean() == buf.mean() and back.current() == 6.0


def test_to_plain_converts_numpy_recursively_and_keeps_tensors():
    from mmengine.config import ConfigDict
    sd = torch.nn.BatchNorm2d(2).state_dict()
    obj = dict(a=np.float32(0.5), b=[np.arange(3), (np.int64(7), 'x')],
               c=ConfigDict(d=np.bool_(True)), sd=sd, t=torch.ones(2))
    out = to_plain(obj)
    assert out['a'] == 0.5 and type(out['a']) is float
    assert out['b'] == [[0, 1, 2], (7, 'x')] and type(out['b'][1][0]) is int
    assert type(out['c']) is dict and out['c']['d'] is True
    assert out['sd'] is sd  # unchanged containers are kept (with _metadata)
    assert out['t'] is obj['t']
    od = OrderedDict(x=np.float64(1.0))
    od._metadata = {'': {'version': 2}}
    assert to_plain(od)._metadata == {'': {'version': 2}}
    assert to_plain(object(), fallback=str).startswith('<object')


def test_message_hub_state_round_trips_through_the_safe_loader():
    hub = MessageHub.get_instance('lbc_test_plain_hub')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('iter', 3)
    hub.update_info('arr', np.arange(2, dtype=np.int64))
    hub.update_info('nested', dict(score=np.float32(0.25)))
    checkpoint = dict(message_hub=hub.state_dict(), meta=dict(iter=3))
    plain_checkpoint(checkpoint)
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    buf.seek(0)
    loaded = torch.load(buf)  # default: weights_only=True
    state = loaded['message_hub']
    assert state['log_scalars']['train/loss']['log_history'] == [1.5, 0.5]
    assert state['runtime_info']['arr'] == [0, 1]
    assert state['runtime_info']['nested'] == {'score': 0.25}
    restore_checkpoint(loaded)
    new = MessageHub.get_instance('lbc_test_plain_hub_2')
    new.load_state_dict(loaded['message_hub'])
    assert isinstance(new.get_scalar('train/loss'), HistoryBuffer)
    assert new.get_scalar('train/loss').mean() == 1.0
    assert new.get_info('iter') == 3


def test_copy_of_plain_state_does_not_alias():
    hub = MessageHub.get_instance('lbc_test_alias')
    hub.update_scalar('x', 1.0)
    checkpoint = dict(message_hub=hub.state_dict())
    plain_checkpoint(checkpoint)
    state = copy.deepcopy(checkpoint)
    hub.update_scalar('x', 2.0)
    assert state['message_hub']['log_scalars']['x']['log_history'] == [1.0]


# --------------------------------------------------------------------------- a Runner
def test_runner_checkpoint_loads_with_weights_only_and_resumes(tmp_path):
    runner, hub = _train(tmp_path / 'a', 8, 'lbc_ckpt_a')
    ckpt = osp.join(runner.work_dir, 'iter_8.pth')
    assert osp.isfile(ckpt)
    # the plain torch default (weights_only=True) loads the whole checkpoint
    raw = torch.load(ckpt, map_location='cpu')
    assert raw['meta']['iter'] == 8
    assert raw['message_hub']['log_scalars']['train/loss']['type'] == 'HistoryBuffer'
    # so does the path mmengine uses
    assert _load_checkpoint(ckpt, map_location='cpu')['meta']['iter'] == 8
    expected = hub.get_scalar('train/loss').data
    expected_lr = hub.get_scalar('train/lr').data

    resumed_cfg = _toy_cfg(tmp_path / 'b', 12, 'lbc_ckpt_b')
    resumed_cfg.resume = True
    resumed_cfg.load_from = ckpt
    resumed = Runner.from_cfg(resumed_cfg)
    resumed.load_or_resume()
    assert resumed.iter == 8
    rhub = resumed.message_hub
    np.testing.assert_allclose(rhub.get_scalar('train/loss').data[0], expected[0])
    np.testing.assert_array_equal(rhub.get_scalar('train/loss').data[1], expected[1])
    np.testing.assert_allclose(rhub.get_scalar('train/lr').data[0], expected_lr[0])
    assert rhub.get_info('best_score') == 1
    # optimizer momentum buffers were restored
    state = resumed.optim_wrapper.optimizer.state_dict()['state']
    assert state and all('momentum_buffer' in s for s in state.values())
    # and training continues from there
    resumed.train()
    assert resumed.iter == 12
    logging.shutdown()
    torch.load(osp.join(resumed.work_dir, 'iter_12.pth'))


def test_checkpoint_without_the_hook_is_refused_then_opt_in(tmp_path, monkeypatch):
    """Why the hook exists; old checkpoints load only on explicit opt-in."""
    runner, _ = _train(tmp_path / 'old', 4, 'lbc_ckpt_old', safe=False)
    ckpt = osp.join(runner.work_dir, 'iter_4.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt)
    with pytest.raises(UnsafeCheckpointError) as info:
        _load_checkpoint(ckpt, map_location='cpu')
    msg = str(info.value)
    assert ckpt in msg and '--unsafe-load' in msg and UNSAFE_LOAD_ENV in msg
    assert 'Unsupported global' in msg

    monkeypatch.setenv(UNSAFE_LOAD_ENV, '1')
    old = _load_checkpoint(ckpt, map_location='cpu')
    assert isinstance(old['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    # and resuming from it works (the original message-hub format is left as it is)
    cfg = _toy_cfg(tmp_path / 'resumed', 8, 'lbc_ckpt_old_resumed')
    cfg.resume, cfg.load_from = True, ckpt
    resumed = Runner.from_cfg(cfg)
    resumed.load_or_resume()
    assert resumed.iter == 4
    assert resumed.message_hub.get_scalar('train/loss').data[0].size > 0
    logging.shutdown()


_FRESH = """
import sys, torch
import mmengine.logging, mmengine.runner.runner as mm_runner
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import CheckpointLoader
before = (mmengine.logging.MessageHub.state_dict, mmengine.logging.MessageHub.load_state_dict,
          mm_runner.save_checkpoint, CheckpointLoader._get_checkpoint_loader('a.pth'),
          type(get_file_backend('a.pth')))
import lbc_mmdet
after = (mmengine.logging.MessageHub.state_dict, mmengine.logging.MessageHub.load_state_dict,
         mm_runner.save_checkpoint, CheckpointLoader._get_checkpoint_loader('a.pth'),
         type(get_file_backend('a.pth')))
assert before == after, (before, after)
print('UNTOUCHED_OK')
from mmengine.config import Config
from mmengine.registry import DATASETS, METRICS, MODELS
from mmengine.runner import Runner
from mmengine.testing.runner_test_case import ToyDataset, ToyMetric, ToyModel
MODELS.register_module(module=ToyModel, force=True)
METRICS.register_module(module=ToyMetric, force=True)
DATASETS.register_module(module=ToyDataset, force=True)
r = Runner.from_cfg(Config.fromfile(sys.argv[1]))
r.train()
loss = r.message_hub.get_scalar('train/loss').data[0].tolist()
r2 = Runner.from_cfg(Config.fromfile(sys.argv[2]))
r2.train()
hist = r2.message_hub.get_scalar('train/loss').data[0].tolist()
assert hist[:4] == loss, (hist, loss)
assert len(hist) == 8 and r2.iter == 8
print('RESUMED_OK')
"""


def test_import_changes_nothing_and_the_hook_enables_safe_resume(tmp_path):
    """In a fresh interpreter ``import lbc_mmdet`` leaves MMEngine as it is; a config
    listing ``SafeCheckpointHook`` saves and resumes under weights_only loading."""
    first, second = str(tmp_path / 'first.py'), str(tmp_path / 'second.py')
    _toy_cfg(tmp_path / 'x', 4, 'fresh_a').dump(first)
    cfg = _toy_cfg(tmp_path / 'y', 8, 'fresh_b')
    cfg.resume, cfg.load_from = True, str(tmp_path / 'x' / 'iter_4.pth')
    cfg.dump(second)
    env = dict(os.environ)
    env.pop(UNSAFE_LOAD_ENV, None)
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    proc = subprocess.run([sys.executable, '-c', _FRESH, first, second],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=str(tmp_path))
    out = proc.stdout[-2000:] + proc.stderr[-4000:]
    assert 'UNTOUCHED_OK' in proc.stdout, out
    assert 'RESUMED_OK' in proc.stdout, out


# --------------------------------------------------------------------------- bad pickles
class _WritesFile:
    """Unpickling this runs ``os.system('touch <path>')``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


class _UsesGetattr:
    """Unpickling this calls ``builtins.getattr`` (the gadget behind most pickle
    exploits: it reaches any attribute of an allowed object)."""

    def __reduce__(self):
        return (getattr, (int, '__subclasses__'))


def _evil_checkpoint(tmp_path, payload):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': payload}, path)
    return path


def _loaders():
    """Every entry point mmengine uses for a local checkpoint."""
    return [
        lambda f: _load_checkpoint(f, map_location='cpu'),
        lambda f: CheckpointLoader.load_checkpoint(f, map_location='cpu'),
        lambda f: load_from_local(f, map_location='cpu'),
        lambda f: safe_ckpt.load_from_local(f, map_location='cpu'),
    ]


@pytest.mark.parametrize('loader', range(4))
def test_malicious_reduce_is_refused_and_never_runs(tmp_path, loader):
    marker = tmp_path / 'pwned'
    ckpt = _evil_checkpoint(tmp_path, _WritesFile(marker))
    with pytest.raises(pickle.UnpicklingError) as info:
        _loaders()[loader](ckpt)
    assert 'system' in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize('loader', range(4))
def test_getattr_pickle_is_refused(tmp_path, loader):
    ckpt = _evil_checkpoint(tmp_path, _UsesGetattr())
    with pytest.raises(pickle.UnpicklingError) as info:
        _loaders()[loader](ckpt)
    assert 'getattr' in str(info.value)


def test_getattr_and_numpy_internals_never_allow_listed():
    names = set()
    for g in torch.serialization.get_safe_globals():
        f = g[0] if isinstance(g, tuple) else g
        names.add(f'{getattr(f, "__module__", "")}.{getattr(f, "__qualname__", f)}')
    assert getattr not in [g[0] if isinstance(g, tuple) else g
                           for g in torch.serialization.get_safe_globals()]
    assert not any('getattr' in n or 'HistoryBuffer' in n or '_reconstruct' in n
                   for n in names), names
    assert not os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')


def test_install_registers_loader_and_backend_and_uninstall_restores():
    from mmengine.fileio import get_file_backend
    from mmengine.fileio.backends import LocalBackend
    assert CheckpointLoader._get_checkpoint_loader('a.pth') is safe_ckpt.load_from_local
    assert type(get_file_backend('a.pth')) is AtomicLocalBackend
    safe_ckpt.uninstall_safe_checkpoints()
    assert not safe_ckpt.safe_checkpoints_installed()
    assert CheckpointLoader._get_checkpoint_loader('a.pth') is load_from_local
    assert type(get_file_backend('a.pth')) is LocalBackend
    safe_ckpt.install_safe_checkpoints()
    safe_ckpt.install_safe_checkpoints()  # idempotent
    assert safe_ckpt.safe_checkpoints_installed()
    assert type(get_file_backend('a.pth')) is AtomicLocalBackend


def test_opt_in_needs_a_true_value(tmp_path, monkeypatch):
    """``LBC_MMDET_ALLOW_UNSAFE_LOAD=0`` is not an opt-in."""
    monkeypatch.setenv(UNSAFE_LOAD_ENV, '0')
    marker = tmp_path / 'pwned'
    ckpt = _evil_checkpoint(tmp_path, _WritesFile(marker))
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(ckpt)
    assert not marker.exists()


# --------------------------------------------------------------------------- atomic writes
class _HalfThenFail:
    """A file object that writes half of what it is given, then fails (a kill midway)."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise OSError('killed midway')

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_atomic_write_interrupted_midway_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'iter_4.pth'
    atomic_write(path, b'old checkpoint')
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, 'fdopen', lambda fd, *a, **k: _HalfThenFail(
        real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match='killed midway'):
        atomic_write(path, b'new checkpoint, much longer than the old one')
    assert path.read_bytes() == b'old checkpoint'
    assert sorted(os.listdir(tmp_path)) == ['iter_4.pth']  # no partial or temp file


def test_runner_save_killed_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """The CheckpointHook's save of iter_8 dies halfway: iter_4 and ``last_checkpoint``
    are intact, no partial ``iter_8.pth`` exists, and a resume from the work dir works."""
    work = tmp_path / 'run'
    runner = Runner.from_cfg(_toy_cfg(work, 8, 'lbc_kill'))
    real_put = AtomicLocalBackend.put

    def dying_put(self, obj, filepath):
        if str(filepath).endswith('iter_8.pth'):
            real_fdopen = os.fdopen
            monkeypatch.setattr(os, 'fdopen', lambda fd, *a, **k: _HalfThenFail(
                real_fdopen(fd, *a, **k)))
        return real_put(self, obj, filepath)

    monkeypatch.setattr(AtomicLocalBackend, 'put', dying_put)
    with pytest.raises(OSError, match='killed midway'):
        runner.train()
    logging.shutdown()
    monkeypatch.undo()
    safe_ckpt.install_safe_checkpoints()
    names = sorted(os.listdir(work))
    assert 'iter_4.pth' in names and 'iter_8.pth' not in names, names
    assert not [n for n in names if n.endswith('.tmp')], names
    assert open(work / 'last_checkpoint').read().strip().endswith('iter_4.pth')
    assert torch.load(work / 'iter_4.pth')['meta']['iter'] == 4
    cfg = _toy_cfg(work, 8, 'lbc_kill_resumed')
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    logging.shutdown()
    assert resumed.iter == 8 and osp.isfile(work / 'iter_8.pth')
