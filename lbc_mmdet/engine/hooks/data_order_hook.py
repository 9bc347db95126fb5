"""``DataOrderHook``: record which images (and flips) the first training batches held.

Runs that should see the same data (the rows of a benchmark suite at one seed: the same
sampler seed, the same worker seeds) can then be checked to have done so: the hook writes
``<work_dir>/data_order.json``::

    {"num_batches": K, "img_ids": [[12, 7, 250, 3], ...], "flips": [[false, true, ...], ...]}

after the K-th training iteration (or at the end of a shorter training). A run resumed
after its K-th iteration keeps the file its first attempt wrote. The suite runner enables
it for every run (``default_hooks.data_order``) and the suite report compares the files of
the rows that share a seed.
"""
import json
import os.path as osp
from typing import List, Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ...utils import atomic_write

DATA_ORDER_FILE = 'data_order.json'


def _sample_info(sample):
    meta = getattr(sample, 'metainfo', None) or {}
    img_id = meta.get('img_id')
    if img_id is None:
        img_id = meta.get('img_path')
    flip = meta.get('flip')
    return img_id, (None if flip is None else bool(flip))


@HOOKS.register_module()
class DataOrderHook(Hook):
    """Write the image ids and flips of the first ``num_batches`` training batches to
    ``<work_dir>/data_order.json`` (see the module docstring)."""
    priority = 'VERY_LOW'

    def __init__(self, num_batches: int = 5, filename: str = DATA_ORDER_FILE) -> None:
        if num_batches < 1:
            raise ValueError(f'DataOrderHook: num_batches must be >= 1, got {num_batches}')
        self.num_batches = int(num_batches)
        self.filename = filename
        self._ids: List[list] = []
        self._flips: List[list] = []
        self._active = False

    def before_train(self, runner) -> None:
        # a run resumed past the recorded batches keeps its first attempt's file
        self._active = runner.iter < self.num_batches
        self._ids, self._flips = [], []

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs=None) -> None:
        if not self._active or data_batch is None:
            return
        samples = data_batch.get('data_samples') or []
        info = [_sample_info(s) for s in samples]
        self._ids.append([i for i, _ in info])
        self._flips.append([f for _, f in info])
        if len(self._ids) >= self.num_batches:
            self._write(runner)

    def after_train(self, runner) -> None:
        if self._active and self._ids:
            self._write(runner)

    def _write(self, runner) -> None:
        self._active = False
        if getattr(runner, 'rank', 0) != 0:
            return
        atomic_write(osp.join(runner.work_dir, self.filename),
                     json.dumps(dict(num_batches=len(self._ids), img_ids=self._ids,
                                     flips=self._flips)))
