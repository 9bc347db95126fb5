"""Deterministic generator of a small synthetic COCO dataset (shapes).

Every image shows 1-4 non-overlapping shapes (circle, square, triangle) in
random colours on a noisy, coloured gradient background. Each object is
annotated COCO-style with a polygon, its bbox, its area and ``iscrowd=0``, so
the same files serve detection and instance segmentation.

Layout written under ``out_dir``::

    images/train/000001.png ...
    images/val/000001.png ...
    annotations/instances_train.json
    annotations/instances_val.json
    .demo_coco_stamp.json          # written last; makes generation idempotent

Only numpy, PIL and pycocotools are used (no mmengine / torch), so the module
is importable and runnable anywhere.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Category names, in category-id order (ids start at 1).
DEMO_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle')
#: Palette used by the demo configs (one RGB colour per class).
DEMO_PALETTE: Tuple[Tuple[int, int, int], ...] = ((220, 20, 60), (0, 130, 200),
                                                  (60, 180, 75))
SPLITS: Tuple[str, ...] = ('train', 'val')
VARIANTS: Tuple[str, ...] = ('easy', 'hard')
STAMP_NAME = '.demo_coco_stamp.json'
#: Bump when the generated content changes, so old stamps are invalidated.
GENERATOR_VERSION = 1

_CIRCLE_VERTICES = 32
_MIN_COLOUR_DIST = 90.0
_Polygon = List[Tuple[float, float]]


def ann_file_path(out_dir: str, split: str) -> str:
    """Returns the annotation file of ``split`` under ``out_dir``.

    Args:
        out_dir (str): Dataset root.
        split (str): ``'train'`` or ``'val'``.

    Returns:
        str: Path of ``annotations/instances_{split}.json``.
    """
    return osp.join(out_dir, 'annotations', f'instances_{split}.json')


def _shape_polygon(shape: str, cx: float, cy: float, radius: float,
                   angle: float) -> _Polygon:
    """Vertices of a shape inscribed in a circle of ``radius``.

    Args:
        shape (str): One of :data:`DEMO_CLASSES`.
        cx (float): Centre x (pixels).
        cy (float): Centre y (pixels).
        radius (float): Circumradius (pixels).
        angle (float): Rotation (radians); ignored for circles.

    Returns:
        _Polygon: List of ``(x, y)`` vertices.
    """
    if shape == 'circle':
        n, angle = _CIRCLE_VERTICES, 0.0
    elif shape == 'square':
        n = 4
    elif shape == 'triangle':
        n = 3
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return [(cx + radius * math.cos(angle + 2 * math.pi * k / n),
             cy + radius * math.sin(angle + 2 * math.pi * k / n))
            for k in range(n)]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A coloured linear gradient plus Gaussian noise: ``float32 (size, size, 3)`` in
    ``[0, 255]``."""
    c0 = rng.uniform(0, 255, 3)
    c1 = np.clip(c0 + rng.uniform(-80, 80, 3), 0, 255)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = (math.cos(theta) * xx + math.sin(theta) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    img += rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.float32)


def _object_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """A random RGB colour (``uint8`` range, float array) far enough from the background
    mean ``bg_mean``."""
    colour = rng.uniform(0, 255, 3)
    for _ in range(50):
        if np.linalg.norm(colour - bg_mean) >= _MIN_COLOUR_DIST:
            break
        colour = rng.uniform(0, 255, 3)
    else:  # fall back to the complementary colour
        colour = 255.0 - bg_mean
    return colour


def _place_objects(rng: np.random.Generator, size: int,
                   num: int) -> List[Tuple[str, _Polygon]]:
    """Places up to ``num`` non-overlapping shapes fully inside the image.

    Args:
        rng (np.random.Generator): Random generator.
        size (int): Image side length.
        num (int): Number of objects wanted.

    Returns:
        List[Tuple[str, _Polygon]]: ``(class_name, polygon)`` pairs; at least one.
    """
    placed: List[Tuple[float, float, float]] = []
    objects: List[Tuple[str, _Polygon]] = []
    r_min, r_max = 0.09 * size, 0.22 * size
    for _ in range(num):
        for _attempt in range(100):
            radius = float(rng.uniform(r_min, r_max))
            cx = float(rng.uniform(radius + 1, size - radius - 1))
            cy = float(rng.uniform(radius + 1, size - radius - 1))
            if all(math.hypot(cx - x, cy - y) > radius + r + 2
                   for x, y, r in placed):
                break
        else:
            continue
        shape = DEMO_CLASSES[int(rng.integers(len(DEMO_CLASSES)))]
        angle = float(rng.uniform(0, 2 * math.pi))
        placed.append((cx, cy, radius))
        objects.append((shape, _shape_polygon(shape, cx, cy, radius, angle)))
    return objects


def _polygon_area(flat: List[float], height: int, width: int) -> float:
    """The pixels a polygon ``[x1, y1, x2, y2, ...]`` covers, rasterised the way
    pycocotools does it."""
    from pycocotools import mask as mask_utils
    rles = mask_utils.frPyObjects([flat], height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def _paint(rng: np.random.Generator, canvas: Image.Image, poly: _Polygon,
           colour: np.ndarray, noise: float) -> Image.Image:
    """``canvas`` with ``poly`` painted in ``colour`` plus pixel noise of std ``noise``."""
    layer = Image.new('L', canvas.size, 0)
    ImageDraw.Draw(layer).polygon(poly, fill=255)
    alpha = np.asarray(layer, dtype=np.float32)[..., None] / 255.0
    shade = colour[None, None] + rng.normal(0, noise, (*canvas.size[::-1], 3))
    arr = np.asarray(canvas, dtype=np.float32)
    arr = arr * (1 - alpha) + np.clip(shade, 0, 255) * alpha
    return Image.fromarray(arr.round().astype(np.uint8), 'RGB')


def _make_image(rng: np.random.Generator, size: int
                ) -> Tuple[Image.Image, List[Tuple[str, _Polygon]]]:
    """Renders one image and returns it with its objects.

    Args:
        rng (np.random.Generator): Random generator.
        size (int): Image side length.

    Returns:
        Tuple[Image.Image, List[Tuple[str, _Polygon]]]: The RGB image and its ``(class_name,
            polygon)`` objects.
    """
    bg = _background(rng, size)
    objects = _place_objects(rng, size, int(rng.integers(1, 5)))
    canvas = Image.fromarray(bg.round().astype(np.uint8), 'RGB')
    bg_mean = bg.reshape(-1, 3).mean(0)
    for _, poly in objects:
        canvas = _paint(rng, canvas, poly, _object_colour(rng, bg_mean), noise=6)
    return canvas, objects


def _variant(variant: str):
    """``(classes, image maker, description suffix)`` of ``'easy'`` or ``'hard'``."""
    if variant not in VARIANTS:
        raise ValueError(f'variant must be one of {VARIANTS}, got {variant!r}')
    if variant == 'easy':
        return DEMO_CLASSES, _make_image, ''
    from .demo_coco_hard import HARD_CLASSES, make_hard_image
    return HARD_CLASSES, make_hard_image, f', variant={variant}'


def _generate_split(out_dir: str, split: str, num_images: int, img_size: int,
                    seed: int, variant: str = 'easy') -> Dict[str, Any]:
    """Writes the images and the COCO json of one split.

    Args:
        out_dir (str): Dataset root.
        split (str): Split name.
        num_images (int): Number of images.
        img_size (int): Image side length.
        seed (int): Base seed.
        variant (str): ``'easy'`` or ``'hard'`` (:mod:`.demo_coco_hard`).

    Returns:
        Dict[str, Any]: The COCO dictionary written.
    """
    classes, make_image, desc = _variant(variant)
    rng = np.random.default_rng([seed, SPLITS.index(split)] + ([1] if desc else []))
    img_dir = osp.join(out_dir, 'images', split)
    if osp.isdir(img_dir):
        shutil.rmtree(img_dir)
    os.makedirs(img_dir)
    images: List[Dict[str, Any]] = []
    annotations: List[Dict[str, Any]] = []
    for img_id in range(1, num_images + 1):
        image, objects = make_image(rng, img_size)
        file_name = f'{img_id:06d}.png'
        image.save(osp.join(img_dir, file_name))
        images.append(dict(id=img_id, file_name=file_name, width=img_size,
                           height=img_size))
        for name, poly in objects:
            flat = [round(v, 2) for xy in poly for v in xy]
            xs, ys = flat[0::2], flat[1::2]
            x0, y0 = max(min(xs), 0.0), max(min(ys), 0.0)
            x1, y1 = min(max(xs), img_size), min(max(ys), img_size)
            annotations.append(dict(
                id=len(annotations) + 1,
                image_id=img_id,
                category_id=classes.index(name) + 1,
                segmentation=[flat],
                area=_polygon_area(flat, img_size, img_size),
                bbox=[round(x0, 2), round(y0, 2), round(x1 - x0, 2),
                      round(y1 - y0, 2)],
                iscrowd=0))
    coco = dict(
        info=dict(description=f'lbc_mmdet synthetic shapes{desc and ", " + variant} '
                              f'({split})',
                  version=str(GENERATOR_VERSION), year=2024),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=n, supercategory='shape')
                    for i, n in enumerate(classes)])
    ann_file = ann_file_path(out_dir, split)
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    return coco


def validate_coco(ann_file: str, img_dir: Optional[str] = None) -> Dict[str, int]:
    """Loads ``ann_file`` with pycocotools and checks every annotation.

    Checks: the file loads with ``COCO()``; each annotation's ``annToMask`` is
    non-empty, lies inside its bbox and its pixel count equals ``area``;
    images referenced exist (when ``img_dir`` is given).

    Args:
        ann_file (str): COCO annotation json.
        img_dir (str, optional): Image folder the ``file_name`` entries are relative to.

    Returns:
        Dict[str, int]: ``{'images': n, 'annotations': n, 'categories': n}``.

    Raises:
        ValueError: If a check fails.
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann_file)
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann)
        if mask.sum() == 0:
            raise ValueError(f'annotation {ann["id"]} has an empty mask')
        if int(mask.sum()) != int(round(ann['area'])):
            raise ValueError(f'annotation {ann["id"]}: mask has {mask.sum()} '
                             f'pixels but area is {ann["area"]}')
        x, y, w, h = ann['bbox']
        ys, xs = np.nonzero(mask)
        if (xs.min() < math.floor(x) - 1 or ys.min() < math.floor(y) - 1
                or xs.max() > math.ceil(x + w) or ys.max() > math.ceil(y + h)):
            raise ValueError(f'annotation {ann["id"]}: mask outside its bbox')
    if img_dir is not None:
        for img in coco.loadImgs(coco.getImgIds()):
            if not osp.isfile(osp.join(img_dir, img['file_name'])):
                raise ValueError(f'missing image {img["file_name"]}')
    return dict(images=len(coco.getImgIds()), annotations=len(coco.getAnnIds()),
                categories=len(coco.getCatIds()))


def _read_stamp(out_dir: str) -> Optional[Dict[str, Any]]:
    """Returns the stamp of a completed generation, or ``None``."""
    path = osp.join(out_dir, STAMP_NAME)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def make_demo_coco(out_dir: str,
                   num_train: int = 300,
                   num_val: int = 200,
                   img_size: int = 128,
                   seed: int = 0,
                   force: bool = False,
                   validate: bool = True,
                   variant: str = 'easy') -> Dict[str, Any]:
    """Generates (or reuses) the synthetic shapes dataset under ``out_dir``.

    Generation is deterministic in ``(num_train, num_val, img_size, seed)``
    and idempotent: when a stamp of a completed run with the same parameters
    exists and its annotation files are present, nothing is rewritten.

    Args:
        out_dir (str): Dataset root to write.
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        img_size (int): Side length of the square images (pixels).
        seed (int): Random seed.
        force (bool): Regenerate even when a matching stamp exists.
        validate (bool): Check the written annotations with pycocotools.
        variant (str): ``'easy'`` (the README demo's) or ``'hard'`` (:mod:`.demo_coco_hard`).

    Returns:
        Dict[str, Any]: Summary with keys ``out_dir``, ``params``, ``skipped`` (bool),
        ``ann_files`` (split -> path), ``img_dirs`` (split -> path) and
        ``counts`` (split -> ``{'images', 'annotations', 'categories'}``).
    """
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be >= 1')
    if img_size < 32:
        raise ValueError('img_size must be >= 32')
    params = dict(num_train=int(num_train), num_val=int(num_val),
                  img_size=int(img_size), seed=int(seed),
                  version=GENERATOR_VERSION)
    if _variant(variant)[2]:  # the default's stamp stays as it was
        params['variant'] = variant
    ann_files = {s: ann_file_path(out_dir, s) for s in SPLITS}
    img_dirs = {s: osp.join(out_dir, 'images', s) for s in SPLITS}
    stamp = _read_stamp(out_dir)
    skipped = (not force and stamp is not None
               and stamp.get('params') == params
               and all(osp.isfile(p) for p in ann_files.values()))
    if skipped:
        counts = stamp['counts']
    else:
        os.makedirs(out_dir, exist_ok=True)
        stamp_path = osp.join(out_dir, STAMP_NAME)
        if osp.exists(stamp_path):
            os.remove(stamp_path)
        sizes = dict(train=num_train, val=num_val)
        counts = {}
        for split in SPLITS:
            coco = _generate_split(out_dir, split, sizes[split], img_size, seed, variant)
            counts[split] = dict(images=len(coco['images']),
                                 annotations=len(coco['annotations']),
                                 categories=len(coco['categories']))
            if validate:
                got = validate_coco(ann_files[split], img_dirs[split])
                if got != counts[split]:
                    raise ValueError(f'{split}: validation counted {got}, '
                                     f'generated {counts[split]}')
        with open(stamp_path, 'w') as f:
            json.dump(dict(params=params, counts=counts), f, indent=2)
    return dict(out_dir=out_dir, params=params, skipped=skipped,
                ann_files=ann_files, img_dirs=img_dirs, counts=counts)


def format_summary(summary: Dict[str, Any],
                   splits: Sequence[str] = SPLITS) -> str:
    """Human-readable summary of :func:`make_demo_coco`'s result.

    Args:
        summary (Dict[str, Any]): Return value of :func:`make_demo_coco`.
        splits (Sequence[str]): Splits to list.

    Returns:
        str: Multi-line string.
    """
    p = summary['params']
    verb = 'reused (stamp matches)' if summary['skipped'] else 'generated'
    classes, _, desc = _variant(p.get('variant', 'easy'))
    lines = [f'demo COCO dataset {verb} at {summary["out_dir"]} '
             f'(img_size={p["img_size"]}, seed={p["seed"]}{desc}, '
             f'classes={", ".join(classes)})']
    for s in splits:
        c = summary['counts'][s]
        lines.append(f'  {s:5s}: {c["images"]:4d} images, '
                     f'{c["annotations"]:4d} instances -> '
                     f'{summary["ann_files"][s]}')
    return '\n'.join(lines)
