"""The synthetic COCO shapes generator: format, content, determinism."""
import hashlib
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lbc_mmdet.datasets import DEMO_CLASSES, make_demo_coco, validate_coco
from lbc_mmdet.datasets.demo_coco import STAMP_NAME

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(path):
    with open(path) as f:
        return json.load(f)


def _digest(root):
    """sha256 over every file below ``root`` except the stamp."""
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name == STAMP_NAME:
                continue
            path = osp.join(dirpath, name)
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def test_layout_and_coco_format(tiny_coco):
    root = tiny_coco['out_dir']
    for split, n in (('train', 8), ('val', 4)):
        ann = _load(osp.join(root, 'annotations', f'instances_{split}.json'))
        assert [c['name'] for c in ann['categories']] == list(DEMO_CLASSES)
        assert [c['id'] for c in ann['categories']] == [1, 2, 3]
        assert len(ann['images']) == n
        assert len({im['id'] for im in ann['images']}) == n
        per_image = {im['id']: 0 for im in ann['images']}
        for a in ann['annotations']:
            per_image[a['image_id']] += 1
            assert a['iscrowd'] == 0
            assert a['category_id'] in (1, 2, 3)
            x, y, w, h = a['bbox']
            assert w > 5 and h > 5
            assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
            assert len(a['segmentation']) == 1
            poly = a['segmentation'][0]
            assert len(poly) % 2 == 0 and len(poly) >= 6
            # polygon vertices span exactly the bbox
            assert min(poly[0::2]) == pytest.approx(x, abs=0.01)
            assert max(poly[1::2]) == pytest.approx(y + h, abs=0.01)
            assert 0 < a['area'] <= w * h + 1
        assert all(1 <= k <= 4 for k in per_image.values())
        assert len({a['id'] for a in ann['annotations']}) == len(
            ann['annotations'])
        for im in ann['images']:
            path = osp.join(root, 'images', split, im['file_name'])
            with Image.open(path) as img:
                assert img.format == 'PNG'
                assert img.size == (im['width'], im['height']) == (96, 96)
                assert img.mode == 'RGB'


def test_pycocotools_masks_match_pixels(tiny_coco):
    """annToMask works, its area matches, and the shape is really drawn."""
    from pycocotools.coco import COCO
    root = tiny_coco['out_dir']
    ann_file = tiny_coco['ann_files']['train']
    counts = validate_coco(ann_file, osp.join(root, 'images', 'train'))
    assert counts == tiny_coco['counts']['train']
    coco = COCO(ann_file)
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        pixels = np.asarray(
            Image.open(osp.join(root, 'images', 'train', info['file_name'])),
            dtype=np.float32)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        union = np.zeros(pixels.shape[:2], bool)
        for a in anns:
            mask = coco.annToMask(a).astype(bool)
            assert mask.sum() == round(a['area'])
            union |= mask
        bg = pixels[~union].mean(0)
        for a in anns:
            mask = coco.annToMask(a).astype(bool)
            # object colour differs clearly from the background colour
            assert np.linalg.norm(pixels[mask].mean(0) - bg) > 30
        # objects do not overlap
        assert union.sum() == sum(
            coco.annToMask(a).sum() for a in anns)


def test_all_classes_and_counts_in_default_size(tmp_path):
    summary = make_demo_coco(str(tmp_path), num_train=40, num_val=10,
                             img_size=64, seed=3)
    ann = _load(summary['ann_files']['train'])
    seen = {a['category_id'] for a in ann['annotations']}
    assert seen == {1, 2, 3}
    assert summary['counts']['train']['images'] == 40
    assert summary['counts']['val']['images'] == 10
    assert summary['counts']['train']['annotations'] == len(
        ann['annotations'])
    assert summary['skipped'] is False


def test_deterministic_and_seed_dependent(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    make_demo_coco(a, num_train=3, num_val=2, img_size=64, seed=1)
    make_demo_coco(b, num_train=3, num_val=2, img_size=64, seed=1)
    make_demo_coco(c, num_train=3, num_val=2, img_size=64, seed=2)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_idempotent_and_regenerates_on_new_params(tmp_path):
    root = str(tmp_path)
    first = make_demo_coco(root, num_train=3, num_val=2, img_size=64)
    ann_file = first['ann_files']['train']
    mtime = os.stat(ann_file).st_mtime_ns
    again = make_demo_coco(root, num_train=3, num_val=2, img_size=64)
    assert again['skipped'] is True
    assert again['counts'] == first['counts']
    assert os.stat(ann_file).st_mtime_ns == mtime

    bigger = make_demo_coco(root, num_train=5, num_val=2, img_size=64)
    assert bigger['skipped'] is False
    assert len(_load(ann_file)['images']) == 5
    assert len(os.listdir(osp.join(root, 'images', 'train'))) == 5
    assert _load(osp.join(root, STAMP_NAME))['params']['num_train'] == 5

    smaller = make_demo_coco(root, num_train=2, num_val=2, img_size=64)
    # stale images of the previous run are removed
    assert len(os.listdir(osp.join(root, 'images', 'train'))) == 2
    assert smaller['counts']['train']['images'] == 2

    forced = make_demo_coco(root, num_train=2, num_val=2, img_size=64,
                            force=True)
    assert forced['skipped'] is False


def test_incomplete_run_is_redone(tmp_path):
    root = str(tmp_path)
    make_demo_coco(root, num_train=2, num_val=2, img_size=64)
    os.remove(osp.join(root, 'annotations', 'instances_val.json'))
    again = make_demo_coco(root, num_train=2, num_val=2, img_size=64)
    assert again['skipped'] is False
    assert osp.isfile(osp.join(root, 'annotations', 'instances_val.json'))


@pytest.mark.parametrize('kwargs', [dict(num_train=0), dict(img_size=16)])
def test_rejects_bad_params(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_demo_coco(str(tmp_path), **kwargs)


def test_validate_coco_detects_wrong_area(tmp_path, tiny_coco):
    ann = _load(tiny_coco['ann_files']['val'])
    ann['annotations'][0]['area'] += 50
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(ann))
    with pytest.raises(ValueError, match='area'):
        validate_coco(str(bad))


def test_generator_module_needs_no_mmengine_or_torch():
    """The module itself imports only numpy / PIL / pycocotools."""
    path = osp.join(REPO_ROOT, 'lbc_mmdet', 'datasets', 'demo_coco.py')
    code = (
        'import importlib.util, sys\n'
        f'spec = importlib.util.spec_from_file_location("demo_coco", {path!r})\n'
        'mod = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(mod)\n'
        'import tempfile\n'
        'mod.make_demo_coco(tempfile.mkdtemp(), 2, 1, 48)\n'
        'bad = [m for m in ("mmengine", "mmdet", "mmcv", "torch") '
        'if m in sys.modules]\n'
        'assert not bad, bad\n')
    assert importlib.util.find_spec('numpy') is not None
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def test_make_demo_data_tool(tmp_path):
    tool = osp.join(REPO_ROOT, 'tools', 'make_demo_data.py')
    out = subprocess.run([sys.executable, tool, '--help'], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    for flag in ('--out', '--num-train', '--num-val', '--img-size', '--seed'):
        assert flag in out
    assert 'data/demo_coco' in out
    root = str(tmp_path / 'd')
    cmd = [sys.executable, tool, '--out', root, '--num-train', '3',
           '--num-val', '2', '--img-size', '64', '--seed', '5']
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert 'generated' in out and '3 images' in out and '2 images' in out
    assert validate_coco(osp.join(root, 'annotations',
                                  'instances_train.json'))['images'] == 3
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert 'reused' in out
