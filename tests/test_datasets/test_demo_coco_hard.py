"""`make_demo_coco(variant='hard')` / `tools/make_demo_data.py --variant hard`, and the
default output unchanged byte for byte."""
import hashlib
import json
import os
import os.path as osp

import pytest

from lbc_mmdet.cli import make_demo_data
from lbc_mmdet.datasets.demo_coco import make_demo_coco
from lbc_mmdet.datasets.demo_coco_hard import HARD_CLASSES, HARD_PALETTE

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: sha256 over (relative path, bytes) of every file the generator wrote, computed with the
#: generator as it was before the hard variant existed (git 4facf61)
DEFAULT_DIGESTS = {
    (6, 4, 64, 3): '1c472201f167fb9e1d4d83e3d4a6b9bd503b727f1f66473c1c6aa256ff9880d0',
    (5, 3, 128, 0): '27236039de56df15160548a15cff68aeed95595376bd1de566975a4f20aae031',
}


def digest(root: str) -> str:
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(folder, name)
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.mark.parametrize('params', sorted(DEFAULT_DIGESTS))
def test_the_default_output_is_unchanged(tmp_path, params):
    num_train, num_val, size, seed = params
    make_demo_coco(str(tmp_path), num_train=num_train, num_val=num_val, img_size=size,
                   seed=seed)
    assert digest(str(tmp_path)) == DEFAULT_DIGESTS[params]


def test_hard_variant(tmp_path):
    out = str(tmp_path / 'hard')
    s = make_demo_coco(out, num_train=12, num_val=6, variant='hard')
    assert s['params']['variant'] == 'hard' and not s['skipped']
    with open(s['ann_files']['train']) as f:
        coco = json.load(f)
    assert [c['name'] for c in coco['categories']] == list(HARD_CLASSES)
    assert len(HARD_PALETTE) == len(HARD_CLASSES) == 7
    per_image = [sum(a['image_id'] == i['id'] for a in coco['annotations'])
                 for i in coco['images']]
    assert max(per_image) >= 3 and min(per_image) >= 1
    sides = [max(a['bbox'][2:]) for a in coco['annotations']]
    assert min(sides) < 0.15 * 128 and max(sides) > 0.35 * 128  # a wide spread of scales
    # deterministic, other images than the default, and its stamp reused
    again = make_demo_coco(str(tmp_path / 'again'), num_train=12, num_val=6, variant='hard')
    assert digest(str(tmp_path / 'again')) == digest(out) and not again['skipped']
    assert make_demo_coco(out, num_train=12, num_val=6, variant='hard')['skipped']
    easy = make_demo_coco(out, num_train=12, num_val=6)  # another variant: regenerated
    assert not easy['skipped'] and 'variant' not in easy['params']
    with pytest.raises(ValueError, match='variant'):
        make_demo_coco(out, variant='nope')


def test_tool_option_and_the_hard_dataset_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert make_demo_data.cli(['--variant', 'hard', '--num-train', '2', '--num-val', '2']) == 0
    assert osp.isfile('data/demo_coco_hard/annotations/instances_val.json')
    assert 'variant=hard' in capsys.readouterr().out
    assert not osp.exists('data/demo_coco')  # the default's folder is another one
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/_base_/datasets/demo_coco_hard.py'))
    assert cfg.num_classes == 7
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == 'data/demo_coco_hard/'
        assert tuple(loader.dataset.metainfo['classes']) == HARD_CLASSES
    assert cfg.val_evaluator.ann_file == 'data/demo_coco_hard/annotations/instances_val.json'
    # the suites switch the demo configs to the same data through cfg_options
    suite = Config.fromfile(osp.join(REPO_ROOT, 'configs/suites/_base_/demo_finetune_hard.py'))
    opts = suite.cfg_options
    assert opts['val_dataloader.dataset.data_root'] == cfg.val_dataloader.dataset.data_root
    assert tuple(opts['train_dataloader.dataset.metainfo.classes']) == HARD_CLASSES
    assert [tuple(p) for p in opts['val_dataloader.dataset.metainfo.palette']] == \
        list(HARD_PALETTE)
    assert opts['val_evaluator.ann_file'] == cfg.val_evaluator.ann_file
