"""tools/train.py and tools/test.py end to end on a tiny generated dataset."""
import glob
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from _common import data_cfg_options

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
TEST = osp.join(REPO_ROOT, 'tools', 'test.py')
FASTER_DEMO = osp.join(REPO_ROOT, 'configs', 'demo',
                       'faster_rcnn_r50_fpn_dense_demo.py')
STOCK_FASTER = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
#: After a few iterations from scratch no detection clears the default
#: score_thr (0.05) and CocoMetric reports nothing; keep every detection.
KEEP_ALL = ['model.test_cfg.rcnn.score_thr=0.0']
LOSS_RE = re.compile(r'(?:Iter|Epoch)\(train\).*?\sloss: ([-\w.+]+)')


def _run(args, cwd, timeout=300, check=True):
    env = dict(os.environ)
    env.pop('LBC_MMDET_ALLOW_UNSAFE_LOAD', None)
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{args[:2]} exited {proc.returncode}\n--- stdout\n'
            f'{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}')
    return proc


def _losses(text):
    return [float(v) for v in LOSS_RE.findall(text)]


def _scalars(work_dir):
    """All records of the train/val scalar json logs below ``work_dir``."""
    records = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', '*.json')):
        if osp.basename(path) == 'scalars.json':
            continue
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records


@pytest.fixture(scope='module')
def demo_run(tiny_coco, tmp_path_factory):
    """tools/train.py on the demo config, 4 iterations at batch 2."""
    work_dir = str(tmp_path_factory.mktemp('demo_work'))
    opts = data_cfg_options(tiny_coco['out_dir']) + [
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=4',
        'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4',
        'default_hooks.logger.interval=1',
        'param_scheduler.0.end=2', 'param_scheduler.1.milestones=[3]'
    ] + KEEP_ALL
    proc = _run([TRAIN, FASTER_DEMO, '--work-dir', work_dir,
                 '--cfg-options'] + opts, cwd=REPO_ROOT)
    return dict(work_dir=work_dir, proc=proc, opts=opts)


def test_help():
    out = _run([TRAIN, '--help'], cwd=REPO_ROOT).stdout
    for flag in ('--work-dir', '--resume', '--amp', '--auto-scale-lr',
                 '--cfg-options', '--launcher', '--local_rank',
                 '--unsafe-load'):
        assert flag in out
    out = _run([TEST, '--help'], cwd=REPO_ROOT).stdout
    for flag in ('checkpoint', '--work-dir', '--out', '--show-dir',
                 '--cfg-options', '--launcher', '--tta', '--unsafe-load'):
        assert flag in out


def test_train_demo_config(demo_run):
    work_dir, out = demo_run['work_dir'], demo_run['proc'].stdout
    log = demo_run['proc'].stdout + demo_run['proc'].stderr
    losses = _losses(log)
    assert len(losses) == 4, log[-3000:]
    assert all(math.isfinite(v) and v > 0 for v in losses)
    records = _scalars(work_dir)
    assert [r['iter'] for r in records if 'loss' in r] == [1, 2, 3, 4]
    val = [r for r in records if 'coco/bbox_mAP' in r]
    assert len(val) == 1 and 0.0 <= val[0]['coco/bbox_mAP'] <= 1.0
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    # results are announced at the end
    assert 'Results of' in out and work_dir in out
    assert osp.join(work_dir, 'iter_4.pth') in out


def test_test_tool_on_checkpoint(demo_run, tiny_coco, tmp_path):
    ckpt = osp.join(demo_run['work_dir'], 'iter_4.pth')
    out_pkl = str(tmp_path / 'preds.pkl')
    work_dir = str(tmp_path / 'test_work')
    proc = _run([TEST, FASTER_DEMO, ckpt, '--work-dir', work_dir, '--out',
                 out_pkl, '--cfg-options'] +
                data_cfg_options(tiny_coco['out_dir']) + KEEP_ALL,
                cwd=REPO_ROOT)
    metrics_files = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(metrics_files) == 1
    with open(metrics_files[0]) as f:
        metrics = json.load(f)
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    assert 'coco/bbox_mAP_50' in metrics
    assert 'coco/bbox_mAP:' in proc.stdout + proc.stderr
    assert osp.isfile(out_pkl)
    assert 'Test results of' in proc.stdout and metrics_files[0] in proc.stdout


def test_stock_mmdet_config_train_and_resume(tiny_coco, tmp_path):
    """A stock mmdet config, pointed at the tiny data; then --resume."""
    work_dir = str(tmp_path / 'stock')
    opts = data_cfg_options(tiny_coco['out_dir'], with_classes=True) + [
        'model.backbone.init_cfg=None',
        'model.roi_head.bbox_head.num_classes=3',
        'model.train_cfg.rpn_proposal.nms_pre=200',
        'model.train_cfg.rpn_proposal.max_per_img=100',
        'model.train_cfg.rcnn.sampler.num=64',
        'model.test_cfg.rpn.nms_pre=200', 'model.test_cfg.rpn.max_per_img=100',
        'train_dataloader.batch_size=4',
        'train_dataloader.dataset.pipeline.2.scale=(128,128)',
        'val_dataloader.dataset.pipeline.1.scale=(128,128)',
        'test_dataloader.dataset.pipeline.1.scale=(128,128)',
        'default_hooks.logger.interval=1',
    ] + KEEP_ALL
    proc = _run([TRAIN, STOCK_FASTER, '--work-dir', work_dir,
                 '--cfg-options'] + opts + ['train_cfg.max_epochs=1'],
                cwd=REPO_ROOT)
    first = _losses(proc.stdout + proc.stderr)
    assert len(first) == 2 and all(math.isfinite(v) for v in first)
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))

    # auto-resume from the latest checkpoint, one more epoch
    proc = _run([TRAIN, STOCK_FASTER, '--work-dir', work_dir, '--resume',
                 '--cfg-options'] + opts + ['train_cfg.max_epochs=2'],
                cwd=REPO_ROOT)
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1, iter: 2' in log, log[-3000:]
    assert re.search(r'Epoch\(train\)\s*\[2\]', log)
    assert not re.search(r'Epoch\(train\)\s*\[1\]', log)
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
    val = [r for r in _scalars(work_dir) if 'coco/bbox_mAP' in r]
    assert val and all(0.0 <= r['coco/bbox_mAP'] <= 1.0 for r in val)


def test_resume_explicit_checkpoint(demo_run, tmp_path):
    ckpt = osp.join(demo_run['work_dir'], 'iter_4.pth')
    work_dir = str(tmp_path / 'resumed')
    opts = [o for o in demo_run['opts'] if not o.startswith('train_cfg.')]
    proc = _run([TRAIN, FASTER_DEMO, '--work-dir', work_dir, '--resume',
                 ckpt, '--cfg-options'] + opts +
                ['train_cfg.max_iters=6', 'train_cfg.val_interval=100'],
                cwd=REPO_ROOT)
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 4' in log, log[-3000:]
    assert len(_losses(log)) == 2
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_missing_annotation_file_is_a_clear_error(tmp_path, tool):
    missing_root = str(tmp_path / 'nowhere')
    opts = data_cfg_options(missing_root)
    args = [TRAIN, FASTER_DEMO] if tool == 'train' else [
        TEST, FASTER_DEMO, str(tmp_path / 'x.pth')
    ]
    proc = _run(args + ['--work-dir', str(tmp_path / 'w'), '--cfg-options'] +
                opts, cwd=REPO_ROOT, check=False)
    assert proc.returncode != 0
    err = proc.stderr
    split = 'train' if tool == 'train' else 'val'
    expected = osp.join(missing_root, 'annotations', f'instances_{split}.json')
    assert expected in err
    assert 'tools/make_demo_data.py' in err
    assert 'Traceback' not in err
    assert not osp.exists(str(tmp_path / 'w'))  # stopped before the runner


def test_unsafe_checkpoint_needs_opt_in(demo_run, tiny_coco, tmp_path):
    """A checkpoint pickling a HistoryBuffer (plain mmengine) needs the flag."""
    import torch
    from mmengine.logging import HistoryBuffer
    ckpt = torch.load(osp.join(demo_run['work_dir'], 'iter_4.pth'))
    ckpt['message_hub']['log_scalars']['train/loss'] = HistoryBuffer(
        [1.0], [1])
    old = str(tmp_path / 'old_style.pth')
    torch.save(ckpt, old)
    args = [TEST, FASTER_DEMO, old, '--work-dir', str(tmp_path / 'w'),
            '--cfg-options'] + data_cfg_options(tiny_coco['out_dir']) + KEEP_ALL
    proc = _run(args, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith('error: refusing to load checkpoint')
    assert '--unsafe-load' in errors[0] and old in errors[0]
    proc = _run(args + ['--unsafe-load'], cwd=REPO_ROOT)
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
