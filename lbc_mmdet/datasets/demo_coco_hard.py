"""The ``hard`` variant of the synthetic shapes (``tools/make_demo_data.py --variant hard``,
written to ``data/demo_coco_hard`` by default): harder than the default so that a
benchmark suite can separate dense from 1:16 and 2:4 from 1:16 (on the default shapes a
detector comes close to its ceiling and the differences are compressed).

What makes it hard:

- seven classes, in groups of similar shapes: circle, ellipse (aspect 1.35-1.6), pentagon
  and hexagon (all round at small scale); square and rectangle (aspect 1.4-1.8);
  triangle;
- a wider spread of scales: circumradius 4 % - 30 % of the image side (default 9 % - 22 %);
- 2 - 6 objects an image, which may overlap: a later object partly occludes an earlier one
  (centres at least 0.55 x the sum of the radii apart, so no object is hidden whole); the
  annotations are amodal (the whole polygon and its box, occluded parts included);
- clutter: 3 - 8 unannotated strokes and blobs in random colours, some drawn over the
  objects;
- lower contrast: objects only 50 colour units from the background mean (default 90),
  noisier shading.
"""
import math
from typing import List, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Category names of the hard variant, in category-id order (ids start at 1).
HARD_CLASSES: Tuple[str, ...] = ('circle', 'ellipse', 'pentagon', 'hexagon', 'square',
                                 'rectangle', 'triangle')
#: One RGB colour per class (the configs' palette).
HARD_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (220, 20, 60), (255, 128, 0), (200, 180, 0), (60, 180, 75), (0, 130, 200),
    (145, 30, 180), (70, 240, 240))

_Polygon = List[Tuple[float, float]]
_SIDES = dict(pentagon=5, hexagon=6, square=4, rectangle=4, triangle=3)
_MIN_COLOUR_DIST = 50.0


def hard_polygon(shape: str, cx: float, cy: float, radius: float, angle: float,
                 aspect: float = 1.0) -> _Polygon:
    """The vertices of a hard-variant shape (circumradius ``radius``, rotated by
    ``angle``; ``aspect`` stretches ellipses and rectangles along their first axis)."""
    if shape in ('circle', 'ellipse'):
        pts = [(math.cos(2 * math.pi * k / 32), math.sin(2 * math.pi * k / 32))
               for k in range(32)]
    elif shape == 'rectangle':
        half = math.atan(1.0 / aspect)
        pts = [(math.cos(a), math.sin(a)) for a in (half, math.pi - half, math.pi + half,
                                                   2 * math.pi - half)]
        aspect = 1.0  # the corner angles already give the aspect
    elif shape in _SIDES:
        n = _SIDES[shape]
        pts = [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n))
               for k in range(n)]
    else:
        raise ValueError(f'unknown shape {shape!r}')
    if shape == 'ellipse':
        pts = [(x, y / aspect) for x, y in pts]
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + radius * (x * ca - y * sa), cy + radius * (x * sa + y * ca))
            for x, y in pts]


def _place(rng: np.random.Generator, size: int, num: int) -> List[Tuple[str, _Polygon]]:
    placed: List[Tuple[float, float, float]] = []
    objects: List[Tuple[str, _Polygon]] = []
    r_min, r_max = 0.04 * size, 0.30 * size
    for _ in range(num):
        for _attempt in range(100):
            # log-uniform: as many small as large objects
            radius = float(math.exp(rng.uniform(math.log(r_min), math.log(r_max))))
            cx = float(rng.uniform(radius + 1, size - radius - 1))
            cy = float(rng.uniform(radius + 1, size - radius - 1))
            if all(math.hypot(cx - x, cy - y) > 0.55 * (radius + r) for x, y, r in placed):
                break
        else:
            continue
        shape = HARD_CLASSES[int(rng.integers(len(HARD_CLASSES)))]
        angle = float(rng.uniform(0, 2 * math.pi))
        aspect = float(rng.uniform(1.35, 1.6) if shape == 'ellipse' else
                       rng.uniform(1.4, 1.8) if shape == 'rectangle' else 1.0)
        placed.append((cx, cy, radius))
        objects.append((shape, hard_polygon(shape, cx, cy, radius, angle, aspect)))
    return objects


def _colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    colour = rng.uniform(0, 255, 3)
    for _ in range(50):
        if np.linalg.norm(colour - bg_mean) >= _MIN_COLOUR_DIST:
            return colour
        colour = rng.uniform(0, 255, 3)
    return 255.0 - bg_mean


def _clutter(rng: np.random.Generator, canvas: Image.Image, size: int) -> None:
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, 5))):
        if rng.random() < 0.6:  # a stroke
            pts = [tuple(float(v) for v in rng.uniform(0, size, 2)) for _ in range(2)]
            draw.line(pts, fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                      width=int(rng.integers(1, max(2, size // 32))))
        else:  # a small irregular blob
            c = rng.uniform(0, size, 2)
            r = rng.uniform(0.02, 0.06) * size
            k = int(rng.integers(5, 9))
            pts = [(float(c[0] + r * rng.uniform(0.5, 1.2) * math.cos(2 * math.pi * i / k)),
                    float(c[1] + r * rng.uniform(0.5, 1.2) * math.sin(2 * math.pi * i / k)))
                   for i in range(k)]
            draw.polygon(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))


def make_hard_image(rng: np.random.Generator, size: int
                    ) -> Tuple[Image.Image, List[Tuple[str, _Polygon]]]:
    """Render one hard-variant image; its ``(class_name, polygon)`` objects (amodal)."""
    from .demo_coco import _background, _paint
    bg = _background(rng, size)
    objects = _place(rng, size, int(rng.integers(2, 7)))
    canvas = Image.fromarray(bg.round().astype(np.uint8), 'RGB')
    _clutter(rng, canvas, size)  # under the objects
    bg_mean = bg.reshape(-1, 3).mean(0)
    for _, poly in objects:
        canvas = _paint(rng, canvas, poly, _colour(rng, bg_mean), noise=14)
    _clutter(rng, canvas, size)  # over the objects: occluders
    return canvas, objects
