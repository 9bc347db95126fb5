"""Bootstrap over validation images: how much of a run's COCO mAP is evaluation noise.

The run's detections (``<prefix>.bbox.json`` / ``<prefix>.segm.json``, written by mmdet's
``CocoMetric`` with ``outfile_prefix``; the suite runner sets it) are matched to the ground
truth once with pycocotools (``COCOeval.evaluate``: per image and category, which detection
matches which object at each IoU threshold). Each replicate then draws the validation images
with replacement (an image drawn twice counts twice) and recomputes COCO mAP@[.5:.95]
(``stats[0]``: area ``all``, 100 detections) from those per-image matches, exactly as
``COCOeval.accumulate`` does for the image list with its duplicates (pycocotools itself would
deduplicate ``params.imgIds``). The 95 % interval is the percentile interval of the
replicates (:func:`lbc_mmdet.utils.stats.percentile_interval`).
"""
import contextlib
import io
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..utils.stats import percentile_interval

#: metric name -> (pycocotools iouType, file suffix of mmdet's CocoMetric output)
IOU_TYPES = {'bbox_mAP': ('bbox', 'bbox'), 'segm_mAP': ('segm', 'segm')}
DEFAULT_REPLICATES = 200


@dataclass
class _Category:
    """The matched detections of one category over all images (in image order, each
    image's detections by descending score, at most ``maxDet``)."""
    image: np.ndarray       # (D,) image index of each detection
    score: np.ndarray       # (D,)
    tp: np.ndarray          # (T, D) matched and not ignored
    fp: np.ndarray          # (T, D) unmatched and not ignored
    npig: np.ndarray        # (I,) objects that count, per image


class MatchTable:
    """Per-image matches of one COCO evaluation, ready for re-accumulation over any
    multiset of images (see the module docstring)."""

    def __init__(self, coco_eval) -> None:
        p = coco_eval.params
        self.img_ids: List[int] = list(p.imgIds)
        self.rec_thrs = np.asarray(p.recThrs, dtype=np.float64)
        num_t = len(p.iouThrs)
        num_a, num_i = len(p.areaRng), len(self.img_ids)
        max_det = p.maxDets[-1]
        a = list(p.areaRngLbl).index('all')
        self.categories: List[_Category] = []
        for k in range(len(p.catIds) if p.useCats else 1):
            images, scores, tps, fps = [], [], [], []
            npig = np.zeros(num_i, dtype=np.float64)
            for i in range(num_i):
                e = coco_eval.evalImgs[k * num_a * num_i + a * num_i + i]
                if e is None:
                    continue
                s = np.asarray(e['dtScores'][:max_det], dtype=np.float64)
                dtm = np.asarray(e['dtMatches'])[:, :max_det]
                dtig = np.asarray(e['dtIgnore'])[:, :max_det].astype(bool)
                npig[i] = np.count_nonzero(np.asarray(e['gtIgnore']) == 0)
                images.append(np.full(len(s), i, dtype=np.int64))
                scores.append(s)
                tps.append(np.logical_and(dtm != 0, ~dtig))
                fps.append(np.logical_and(dtm == 0, ~dtig))
            if images:
                cat = _Category(np.concatenate(images), np.concatenate(scores),
                                np.concatenate(tps, axis=1), np.concatenate(fps, axis=1),
                                npig)
            else:
                cat = _Category(np.zeros(0, np.int64), np.zeros(0), np.zeros((num_t, 0), bool),
                                np.zeros((num_t, 0), bool), npig)
            self.categories.append(cat)

    @property
    def num_images(self) -> int:
        return len(self.img_ids)

    def mean_ap(self, counts: Optional[np.ndarray] = None) -> float:
        """COCO mAP@[.5:.95] (area all, 100 detections) of the images, image ``i`` counted
        ``counts[i]`` times (default: once each: the ordinary COCO figure). -1 when no
        category has an object."""
        if counts is None:
            counts = np.ones(self.num_images, dtype=np.int64)
        values = []
        for cat in self.categories:
            npig = float(np.dot(counts, cat.npig))
            if npig == 0:
                continue  # pycocotools: -1, left out of the mean
            reps = counts[cat.image]
            score = np.repeat(cat.score, reps)
            order = np.argsort(-score, kind='mergesort')
            tp = np.repeat(cat.tp, reps, axis=1)[:, order]
            fp = np.repeat(cat.fp, reps, axis=1)[:, order]
            tp_sum = np.cumsum(tp, axis=1, dtype=np.float64)
            fp_sum = np.cumsum(fp, axis=1, dtype=np.float64)
            for t in range(tp.shape[0]):
                values.append(self._ap(tp_sum[t], fp_sum[t], npig))
        return float(np.mean(np.concatenate(values))) if values else -1.0

    def _ap(self, tp: np.ndarray, fp: np.ndarray, npig: float) -> np.ndarray:
        """The precision at each recall threshold (pycocotools' interpolation)."""
        q = np.zeros(len(self.rec_thrs))
        if len(tp) == 0:
            return q
        rc = tp / npig
        pr = tp / (fp + tp + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        inds = np.searchsorted(rc, self.rec_thrs, side='left')
        ok = inds < len(pr)
        q[ok] = pr[inds[ok]]
        return q


def evaluate(gt_file: str, dt_file: str, iou_type: str = 'bbox'):
    """``COCOeval.evaluate`` of one result file on all images of ``gt_file`` (quiet);
    None when the file holds no detection."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with open(dt_file) as f:
        dets = json.load(f)
    if not dets:
        return None
    if iou_type == 'segm':
        for d in dets:  # as mmdet: the mask area, not the box's, decides the area range
            d.pop('bbox', None)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.imgIds = sorted(gt.getImgIds())
        ev.evaluate()
    return ev


def bootstrap_map(table: MatchTable, replicates: int = DEFAULT_REPLICATES, seed: int = 0
                  ) -> np.ndarray:
    """``replicates`` mAPs, each of the images resampled with replacement."""
    rng = np.random.default_rng(seed)
    n = table.num_images
    out = np.empty(replicates)
    for b in range(replicates):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        out[b] = table.mean_ap(counts)
    return out


def prediction_files(prefix: str) -> Dict[str, str]:
    """metric -> the result file of ``prefix`` that exists (``<prefix>.bbox.json``...)."""
    out = {}
    for metric, (_, suffix) in IOU_TYPES.items():
        path = f'{prefix}.{suffix}.json'
        if osp.isfile(path):
            out[metric] = path
    return out


def bootstrap_run(gt_file: str, prefix: str, replicates: int = DEFAULT_REPLICATES,
                  seed: int = 0, level: float = 0.95) -> Dict[str, dict]:
    """For each metric with a result file under ``prefix``: ``dict(full=<mAP on all
    images>, low=, high=, replicates=B, seed=)`` (fractions, as mmdet's metrics)."""
    out = {}
    for metric, path in prediction_files(prefix).items():
        ev = evaluate(gt_file, path, IOU_TYPES[metric][0])
        if ev is None:
            continue
        table = MatchTable(ev)
        reps = bootstrap_map(table, replicates, seed)
        low, high = percentile_interval(reps.tolist(), level)
        out[metric] = dict(full=table.mean_ap(), low=low, high=high,
                           replicates=int(replicates), seed=int(seed))
    return out


def resample_counts(n: int, replicates: int, seed: int = 0) -> Sequence[np.ndarray]:
    """The image counts :func:`bootstrap_map` draws (for tests and other statistics)."""
    rng = np.random.default_rng(seed)
    return [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(replicates)]
