"""configs/suites/smoke.py end to end on tiny data: the finetune protocol (a dense
pre-training, then 2 entries x 2 seeds from it), mean ± std over the seeds, and a second
call that skips everything finished."""
import csv
import os.path as osp
import subprocess
import sys
import time

from _common import data_cfg_options

from lbc_mmdet.suite.results import read_result

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'run_suite.py')
SUITE = osp.join(REPO_ROOT, 'configs', 'suites', 'smoke.py')


def _run(args):
    return subprocess.run([sys.executable, TOOL, SUITE, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900)


def test_smoke_suite_runs_and_skips_finished_jobs(tiny_coco, tmp_path):
    root = str(tmp_path / 'smoke')
    args = ['--work-root', root, '--quiet', '--cfg-options'] + data_cfg_options(
        tiny_coco['out_dir'])
    start = time.time()
    proc = _run(args)
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the pre-training ran first, then the four jobs from its checkpoint
    out = proc.stdout
    assert 'Dense pre-training' in out and '(4/4) LBC 2:4 (seed 1): done' in out
    assert osp.isfile(osp.join(root, 'pretrain', 'last_checkpoint'))
    log = open(osp.join(root, 'lbc_2of4', 'seed1', 'suite_train.log')).read()
    assert 'load_from=' in log and 'randomness.seed=1' in log
    assert 'initialised LBC state (scores, alive) for 52 layers from a dense checkpoint' \
        in log
    md = open(osp.join(root, 'results.md')).read()
    assert 'Protocol: `finetune`; seeds: 0, 1.' in md
    table = md[md.index('## Faster R-CNN'):].split('\n\n')[1]  # the first table only
    lines = [ln for ln in table.splitlines() if ln.startswith('| Faster R-CNN')]
    assert len(lines) == 2 and all('(n=2)' in ln for ln in lines)
    assert '| 38.5 |' in lines[1]  # the paper's COCO figure beside LBC 2:4
    with open(osp.join(root, 'results.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [(r['label'], r['seed'], r['status']) for r in rows] == [
        ('Dense (continued)', '0', 'done'), ('Dense (continued)', '1', 'done'),
        ('LBC 2:4', '0', 'done'), ('LBC 2:4', '1', 'done')]
    assert osp.isfile(osp.join(root, 'results.png'))
    # the paired design: every run recorded its first batches, the rows at one seed saw
    # the same ones; the final predictions are kept and bootstrapped over the images
    for slug in ('dense_continued', 'lbc_2of4'):
        for seed in (0, 1):
            wd = osp.join(root, slug, f'seed{seed}')
            order = read_result(wd).data_order
            assert order and len(order['img_ids']) == 4  # 4 iterations < 5 batches
            assert osp.isfile(osp.join(wd, 'predictions', 'val.bbox.json'))
            boot = read_result(wd).bootstrap['bbox_mAP']
            assert boot['low'] <= boot['full'] <= boot['high']
            assert abs(boot['full'] - read_result(wd).metric('bbox_mAP')) < 1e-3
    assert 'every run saw the same first training batches' in md, md
    assert 'Minimal detectable difference (bbox_mAP' in md
    assert rows[2]['bbox_mAP_boot_low'] != '' and rows[2]['bbox_mAP_verdict'] != ''
    print(f'smoke suite: {elapsed:.0f} s')
    # a second call trains nothing
    proc = _run(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(': skip (results exist') == 4
    assert 'start ->' not in proc.stdout
