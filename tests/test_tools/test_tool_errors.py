"""What a newcomer sees when an input is wrong: every tool prints exactly one line starting
with ``error:`` on stderr (details indented below it), no traceback, exit status 2;
``--debug`` (or ``LBC_MMDET_DEBUG=1``) shows the traceback instead. Most cases call the
tools in process (``lbc_mmdet.cli.<tool>.cli(argv)``), a few through ``tools/*.py``.
Every ``tools/*.py`` answers ``--help`` with exit status 0."""
import glob
import importlib
import importlib.util
import os
import os.path as osp
import runpy
import signal
import subprocess
import sys
from typing import Tuple

import pytest
import torch
from _common import data_cfg_options, fresh_mmlogger

from lbc_mmdet.cli._common import run_tool
from lbc_mmdet.engine.checkpoint import CorruptCheckpointError
from lbc_mmdet.errors import CheckpointMismatchError, LBCError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = sorted(glob.glob(osp.join(ROOT, 'tools', '*.py')))
LBC_DEMO = osp.join(ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_lbc_2of4_demo.py')
#: the LBC demo detector, small enough to build, save and load in a second
SMALL = {'model.backbone.base_channels': 16, 'model.neck.in_channels': [64, 128, 256, 512],
         'model.roi_head.bbox_head.fc_out_channels': 64}
SMALL_ARGS = ['model.backbone.base_channels=16', 'model.neck.in_channels=[64,128,256,512]',
              'model.roi_head.bbox_head.fc_out_channels=64']
CORRUPT = 'is corrupt or truncated'
MISMATCH = ('the checkpoint holds shape (32, 28) but this 2:4 LBC layer has (64, 6): the '
            'checkpoint was trained with another N:M pattern or model')


def tool_cli(name):
    """``cli(argv)`` of a tool: the package module behind ``tools/<name>.py``, or the
    tool file itself when its code lives there."""
    try:
        return importlib.import_module(f'lbc_mmdet.cli.{name}').cli
    except ModuleNotFoundError:
        spec = importlib.util.spec_from_file_location(
            f'_tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return lambda argv=None: run_tool(module.main, argv)


def user_error(capsys, rc) -> Tuple[str, str]:
    """The one ``error:`` line of a user error (asserted), and all of stderr."""
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith('error:')]
    assert rc == 2, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    assert 'Traceback' not in err
    return errors[0], err


def the_error(capsys, rc) -> str:
    """The one ``error:`` line of a user error (asserted)."""
    return user_error(capsys, rc)[0]


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A 2:8 LBC checkpoint of the small demo detector, a truncated copy, a broken
    config."""
    from lbc_mmdet.apis import build_model
    folder = tmp_path_factory.mktemp('tool_errors')
    _, model = build_model(LBC_DEMO, dict(SMALL, **{'model.backbone.conv_cfg.m': 8}))
    other = str(folder / 'lbc_2of8.pth')
    torch.save(dict(meta=dict(epoch=1, iter=4), state_dict=model.state_dict()), other)
    data = open(other, 'rb').read()
    truncated = str(folder / 'truncated.pth')
    open(truncated, 'wb').write(data[:len(data) // 2])
    broken = str(folder / 'broken.py')
    open(broken, 'w').write("model = dict(type='FasterRCNN'\n")
    return dict(other=other, truncated=truncated, broken=broken, folder=str(folder),
                missing=str(folder / 'missing.py'))


@pytest.fixture(autouse=True)
def fresh_logger():
    """In process, every test starts with a current MMLogger of its own and leaves none
    behind (:func:`_common.fresh_mmlogger`)."""
    with fresh_mmlogger('tool_errors'):
        yield


@pytest.fixture
def keep_signals():
    """``tools/run_suite.py`` installs SIGINT/SIGTERM handlers: restore pytest's."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _present(cases: dict) -> dict:
    """The cases of the tools that exist (some are being added)."""
    return {t: argv for t, argv in cases.items()
            if osp.isfile(osp.join(ROOT, 'tools', f'{t}.py'))}


# --------------------------------------------------------------------------- configs
def _config_cases(f):
    """tool -> argv naming the config ``f`` (missing or broken)."""
    return _present(dict(
        train=[f],
        test=[f, 'x.pth'],
        export=[f, 'x.pth', 'out.pth'],
        export_onnx=[f, 'x.pth', 'out.onnx'],
        permutation_report=[f, 'x.pth'],
        benchmark_latency=[f, 'x.pth'],
        benchmark_training=['--config', f],
        run_suite=[f],
    ))


@pytest.mark.parametrize('tool', sorted(_config_cases('')))
def test_missing_config(tool, files, capsys, keep_signals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = _config_cases(files['missing'])[tool]
    line = the_error(capsys, tool_cli(tool)(argv))
    assert files['missing'] in line and 'not found' in line


@pytest.mark.parametrize('tool', sorted(_config_cases('')))
def test_broken_config(tool, files, capsys, keep_signals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = _config_cases(files['broken'])[tool]
    line = the_error(capsys, tool_cli(tool)(argv))
    assert line.endswith(f"{files['broken']} has a syntax error (line 1): '(' was never "
                         'closed')


def test_unregistered_type_in_a_config(files, capsys, tmp_path):
    bad = str(tmp_path / 'bad_type.py')
    open(bad, 'w').write(f"_base_ = '{LBC_DEMO}'\nmodel = dict(type='FasterRCNNN')\n")
    line = the_error(capsys, tool_cli('export')([bad, files['other'], 'out.pth']))
    assert line == (f"error: config {bad}: type 'FasterRCNNN' is not registered "
                    '(mmdet::model registry): check its spelling, or import the module '
                    'that registers it (custom_imports)')


def test_other_bad_arguments(files, capsys, tmp_path):
    line = the_error(capsys, tool_cli('make_demo_data')(['--out', files['broken']]))
    assert line == f"error: --out {files['broken']} is a file, not a folder"
    line = the_error(capsys, tool_cli('make_demo_data')(
        ['--out', str(tmp_path / 'd'), '--num-train', '0']))
    assert 'num_train and num_val must be >= 1' in line
    line = the_error(capsys, tool_cli('verify_nm')([files['missing'], '--n', '2',
                                                     '--m', '4']))
    assert line == f"error: checkpoint not found: {files['missing']}"
    line = the_error(capsys, tool_cli('convert_official_lbc')([files['missing'], 'x.pth']))
    assert line == f"error: no such checkpoint: {files['missing']}"
    line = the_error(capsys, tool_cli('train_flops')(['--method', 'nope']))
    assert line.startswith("error: unknown N:M method 'nope'; known methods: [")


# --------------------------------------------------------------------------- checkpoints
def _checkpoint_cases(ckpt, data, work_dir):
    small = ['--cfg-options'] + SMALL_ARGS
    return _present(dict(
        train=[LBC_DEMO, '--resume', ckpt, '--work-dir', work_dir] + small + data,
        test=[LBC_DEMO, ckpt, '--work-dir', work_dir] + small + data,
        export=[LBC_DEMO, ckpt, osp.join(work_dir, 'out.pth')] + small,
        export_onnx=[LBC_DEMO, ckpt, osp.join(work_dir, 'out.onnx')] + small,
        permutation_report=[LBC_DEMO, ckpt, '--out', osp.join(work_dir, 'p')] + small,
        benchmark_latency=[LBC_DEMO, ckpt, '--out', osp.join(work_dir, 'b.json')] + small,
        verify_nm=[ckpt, '--n', '2', '--m', '4'],
        convert_official_lbc=[ckpt, osp.join(work_dir, 'c.pth')],
    ))


@pytest.mark.parametrize('tool', sorted(_checkpoint_cases('', [], '')))
def test_truncated_checkpoint(tool, files, tiny_coco, capsys, tmp_path):
    argv = _checkpoint_cases(files['truncated'], data_cfg_options(tiny_coco['out_dir']),
                             str(tmp_path / 'work'))[tool]
    line = the_error(capsys, tool_cli(tool)(argv))
    assert line.startswith(f"error: Checkpoint '{files['truncated']}' (") and CORRUPT in line


@pytest.mark.parametrize('tool', sorted(
    {'train', 'test', 'export', 'export_onnx', 'permutation_report'}
    & set(_checkpoint_cases('', [], ''))))
def test_checkpoint_of_another_pattern(tool, files, tiny_coco, capsys, tmp_path):
    argv = _checkpoint_cases(files['other'], data_cfg_options(tiny_coco['out_dir']),
                             str(tmp_path / 'work'))[tool]
    line = the_error(capsys, tool_cli(tool)(argv))
    assert 'backbone.layer1.0.conv1.scores: ' + MISMATCH in line


def test_export_of_non_finite_weights_names_them(capsys, tmp_path):
    """A diverged training (a NaN weight) is named as such, not blamed on the masks."""
    from lbc_mmdet.apis import build_model
    _, model = build_model(LBC_DEMO, SMALL)
    state = model.state_dict()
    state['backbone.layer1.0.conv2.weight'][0, 0, 0, 0] = float('nan')
    ckpt = str(tmp_path / 'diverged.pth')
    torch.save(dict(meta=dict(iter=4), state_dict=state), ckpt)
    out = str(tmp_path / 'export' / 'diverged.pth')
    argv = [LBC_DEMO, ckpt, out, '--cfg-options'] + SMALL_ARGS
    line, err = user_error(capsys, tool_cli('export')(argv))
    assert line == ('error: refusing to export: non-finite weights: '
                    'backbone.layer1.0.conv2.weight holds 1 NaN/Inf value(s); training '
                    'diverged: export a checkpoint from before it')
    assert 'mask' not in err and not osp.exists(out)


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_missing_dataset(tool, files, capsys, tmp_path):
    nowhere = str(tmp_path / 'nowhere')
    work_dir = str(tmp_path / 'work')
    argv = ([LBC_DEMO] if tool == 'train' else [LBC_DEMO, files['other']]) + [
        '--work-dir', work_dir, '--cfg-options'] + data_cfg_options(nowhere)
    line, err = user_error(capsys, tool_cli(tool)(argv))
    assert line.startswith(f'error: Dataset files of config {LBC_DEMO} not found')
    split = 'train' if tool == 'train' else 'val'
    assert f"  missing: {osp.join(nowhere, 'annotations', f'instances_{split}.json')}" in err
    assert '  python tools/make_demo_data.py --out data/demo_coco' in err
    assert not osp.exists(work_dir)  # stopped before the Runner wrote anything


# --------------------------------------------------------------------------- --debug
def test_debug_shows_the_exception(files, tiny_coco, capsys, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='config file not found'):
        tool_cli('train')([files['missing'], '--debug'])
    with pytest.raises(CorruptCheckpointError):
        tool_cli('verify_nm')([files['truncated'], '--n', '2', '--m', '4', '--debug'])
    argv = _checkpoint_cases(files['other'], data_cfg_options(tiny_coco['out_dir']),
                             str(tmp_path / 'work'))['export']
    with pytest.raises(LBCError, match='another N:M pattern'):
        tool_cli('export')(argv + ['--debug'])
    monkeypatch.setenv('LBC_MMDET_DEBUG', '1')
    with pytest.raises(CheckpointMismatchError):
        tool_cli('test')(_checkpoint_cases(files['other'],
                                           data_cfg_options(tiny_coco['out_dir']),
                                           str(tmp_path / 'w2'))['test'])
    assert 'error:' not in capsys.readouterr().err


def _run(args, env=None):
    env = dict(os.environ, **(env or {}))
    env.pop('LBC_MMDET_ALLOW_UNSAFE_LOAD', None)
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_subprocess_error_and_debug(files):
    verify = osp.join(ROOT, 'tools', 'verify_nm.py')
    proc = _run([verify, files['truncated'], '--n', '2', '--m', '4'])
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert proc.returncode == 2 and len(errors) == 1 and CORRUPT in errors[0]
    assert 'Traceback' not in proc.stderr
    for env, extra in (({'LBC_MMDET_DEBUG': '1'}, []), ({}, ['--debug'])):
        proc = _run([verify, files['truncated'], '--n', '2', '--m', '4'] + extra, env)
        assert proc.returncode == 1
        assert 'Traceback' in proc.stderr and 'CorruptCheckpointError' in proc.stderr
        assert not any(ln.startswith('error:') for ln in proc.stderr.splitlines())
    proc = _run([osp.join(ROOT, 'tools', 'train.py'), files['missing']])
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        f"error: config file not found: {files['missing']}"


# --------------------------------------------------------------------------- --help
@pytest.mark.parametrize('tool', TOOLS, ids=osp.basename)
def test_every_tool_has_help(tool, capsys, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [tool, '--help'])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(tool, run_name='__main__')
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith('usage: ') and '--help' in out


@pytest.mark.skipif(not osp.isfile(osp.join(ROOT, 'tools', 'gpu_check.sh')),
                    reason='no tools/gpu_check.sh')
def test_gpu_check_script_has_help():
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', 'gpu_check.sh'), '--help'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'usage' in proc.stdout.lower()


# --------------------------------------------------------------------------- warnings
def test_no_pkg_resources_warning():
    """Importing ``lbc_mmdet`` first silences setuptools' deprecation warning, which
    MMEngine's use of ``pkg_resources`` triggers (the tools import it first)."""
    dense_demo = osp.join(ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_dense_demo.py')
    parse = f'from mmengine.config import Config; Config.fromfile({dense_demo!r})'
    assert 'pkg_resources is deprecated' in _run(['-c', parse]).stderr  # without it
    assert 'pkg_resources' not in _run(['-c', 'import lbc_mmdet; ' + parse]).stderr
    for tool in ('verify_nm.py', 'train.py'):
        proc = _run([osp.join(ROOT, 'tools', tool), '--help'])
        assert proc.returncode == 0
        assert 'pkg_resources' not in proc.stderr, proc.stderr[-2000:]


# --------------------------------------------------------------------------- python API
def test_nmsparsify_needs_a_method():
    """No method is the default: ``NMSparsify`` and ``sparsify`` ask for one."""
    from mmdet.registry import MODELS

    from lbc_mmdet.engine import SparsityConfigError, validate_sparsity_cfg
    layer = dict(n=2, m=4)
    with pytest.raises(ValueError, match=r'^NMSparsify: `layer` needs a `method`, e\.g\. '
                       r"layer=dict\(method=\.\.\., n=2, m=4\); known methods: \["):
        MODELS.build(dict(type='NMSparsify', model=dict(type='ResNet', depth=18),
                          layer=layer))
    with pytest.raises(SparsityConfigError, match=r'^model\.layer\.method: NMSparsify: '):
        validate_sparsity_cfg(dict(model=dict(type='NMSparsify', model=dict(type='ResNet'),
                                              layer=layer)))
    import lbc_mmdet
    with pytest.raises(TypeError, match='method'):
        lbc_mmdet.sparsify(torch.nn.Conv2d(8, 8, 1))


def test_tool_logger_writes_to_the_current_stdout(capsys):
    """A tool's logger made earlier in the process (another test, a notebook cell) whose
    stdout has since been replaced and closed still prints, to the stdout of now (it
    printed "--- Logging error ---" tracebacks in the middle of an error message)."""
    import io

    from lbc_mmdet.cli._common import tool_logger
    old, earlier = sys.stdout, io.StringIO()
    sys.stdout = earlier
    try:
        tool_logger('lbc_mmdet_test_stale_stdout')
    finally:
        sys.stdout = old
    earlier.close()
    tool_logger('lbc_mmdet_test_stale_stdout').info('still printed')
    out, err = capsys.readouterr()
    assert 'still printed' in out
    assert 'Logging error' not in err
