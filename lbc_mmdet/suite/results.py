"""Collect the results of training runs and lay them out like the paper's Tables 2 and 3.

Everything here reads files that MMEngine, mmdet and :class:`TrainFlopsHook` wrote into a
run's work dir:

- ``<work_dir>/<timestamp>/vis_data/scalars.json`` (or ``<timestamp>.json`` next to it),
  JSON lines; the validation lines hold mmdet's COCO metrics (``coco/bbox_mAP``,
  ``coco/segm_mAP``, ... as fractions), the training lines the logged scalars (e.g.
  ``flops_ratio``). The last value of every metric wins (the final evaluation; runs
  resumed into a new timestamp are read in order).
- ``<work_dir>/<timestamp>/train_flops.json`` (:class:`TrainFlopsHook`, end of training).
- ``<work_dir>/results.json``: a run's collected result, written by the suite runner.
- ``<work_dir>/data_order.json`` (:class:`DataOrderHook`): the first training batches.
- ``<work_dir>/predictions/val.bbox.json`` (and ``.segm.json``): the final evaluation's
  detections (mmdet's ``CocoMetric`` with ``outfile_prefix``), for the bootstrap.

:mod:`lbc_mmdet.suite.report` turns a list of :class:`RunResult` into ``results.md``,
``results.csv`` and ``results.png``.
"""
import json
import os
import os.path as osp
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional

from ..layers import DENSE
from ..utils import atomic_write

RESULTS_FILE = 'results.json'
FLOPS_FILE = 'train_flops.json'
DATA_ORDER_FILE = 'data_order.json'
#: where the suite runner has mmdet's CocoMetric write the final predictions
#: (``<work_dir>/predictions/val.bbox.json``, ``.segm.json``)
PREDICTIONS_PREFIX = osp.join('predictions', 'val')
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')



@dataclass
class RunResult:
    """The collected result of one run of a suite.

    ``status`` is ``'done'`` (trained and evaluated), ``'failed'`` (the training command
    failed or no metric was found), or ``'missing'`` (not run yet). ``metrics`` maps
    mmdet's metric names (``'coco/bbox_mAP'``) to fractions.
    """
    label: str
    model: str = ''
    method: str = DENSE
    pattern: str = '-'
    config: str = ''
    work_dir: str = ''
    status: str = 'missing'
    metrics: Dict[str, float] = field(default_factory=dict)
    flops_ratio: Optional[float] = None
    backbone_flops_ratio: Optional[float] = None
    iterations: Optional[int] = None
    wall_time_s: Optional[float] = None
    train_time_s: Optional[float] = None
    returncode: Optional[int] = None
    log_file: str = ''
    seed: Optional[int] = None
    paper_flops_ratio: Optional[float] = None
    paper: Dict[str, float] = field(default_factory=dict)
    #: the first training batches' image ids and flips (``data_order.json``, the pairing
    #: check of :mod:`.pairing`)
    data_order: Optional[dict] = None
    #: metric -> ``dict(full, low, high, replicates, seed)``: the bootstrap over
    #: validation images (:mod:`.bootstrap`), fractions
    bootstrap: Dict[str, dict] = field(default_factory=dict)

    def metric(self, name: str) -> Optional[float]:
        """A COCO metric by short name (``'bbox_mAP'``); looks up ``coco/<name>`` first,
        then any ``<prefix>/<name>``.

        Args:
            name (str): The metric's short name.

        Returns:
            float or None: The metric, or None when it was not logged.
        """
        if f'coco/{name}' in self.metrics:
            return self.metrics[f'coco/{name}']
        for key, value in self.metrics.items():
            if key.split('/', 1)[-1] == name:
                return value
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'RunResult':
        """A result from its :meth:`to_dict` (unknown keys ignored).

        Args:
            data (dict): The fields, e.g. a ``results.json``.

        Returns:
            RunResult: The result.
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- reading
def log_dirs(work_dir: str) -> List[str]:
    """The ``<timestamp>`` log dirs MMEngine made in ``work_dir``, oldest first."""
    if not osp.isdir(work_dir):
        return []
    return [osp.join(work_dir, d) for d in sorted(os.listdir(work_dir))
            if _TIMESTAMP.match(d) and osp.isdir(osp.join(work_dir, d))]


def read_json_lines(path: str) -> List[dict]:
    """The dicts of a JSON-lines file; malformed lines (a run killed mid-write) are
    skipped."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def scalar_files(log_dir: str) -> List[str]:
    """The scalar log of a log dir: ``vis_data/scalars.json``, else the LoggerHook's
    ``vis_data/<timestamp>.json``; then the metrics of a test run (``tools/test.py``:
    ``<timestamp>.json`` in the log dir itself, an ``evaluate_only`` row)."""
    vis = osp.join(log_dir, 'vis_data')
    main = osp.join(vis, 'scalars.json')
    alt = osp.join(vis, osp.basename(log_dir) + '.json')
    test = osp.join(log_dir, osp.basename(log_dir) + '.json')
    files = [main] if osp.isfile(main) else ([alt] if osp.isfile(alt) else [])
    return files + ([test] if osp.isfile(test) else [])


def collect_scalars(work_dir: str) -> Dict[str, float]:
    """The last logged value of every scalar of the run (all log dirs, oldest first).
    Metric keys keep their prefix (``coco/bbox_mAP``)."""
    last: Dict[str, float] = {}
    for d in log_dirs(work_dir):
        for path in scalar_files(d):
            for row in read_json_lines(path):
                for key, value in row.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        last[key] = float(value)
    return last


def collect_metrics(work_dir: str) -> Dict[str, float]:
    """The final evaluation metrics of the run: every logged key with a ``/``
    (``coco/bbox_mAP``, ``coco/segm_mAP_50``, ...). Empty if it was never evaluated.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        dict[str, float]: metric key -> its last logged value.
    """
    return {k: v for k, v in collect_scalars(work_dir).items() if '/' in k}


def load_train_flops(work_dir: str) -> Optional[dict]:
    """The newest ``train_flops.json`` of the run (written when training ends), or None.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        dict or None: The file's content, or None.
    """
    for d in reversed(log_dirs(work_dir)):
        path = osp.join(d, FLOPS_FILE)
        if osp.isfile(path):
            return _read_json(path)
    return None


def _read_json(path: str):
    """The JSON content of ``path``, or None when it is missing or unreadable."""
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def collect_run(label: str, work_dir: str, model: str = '', method: str = DENSE,
                pattern: str = '-', config: str = '') -> RunResult:
    """Build a run's :class:`RunResult` from what its work dir holds (without
    ``results.json``): ``'done'`` when COCO metrics were found, ``'missing'`` otherwise.

    A dense run without ``train_flops.json`` gets the ratio 1 (it *is* the dense
    equivalent); a sparse one falls back on the last logged ``flops_ratio``.

    Args:
        label (str): The run's label.
        work_dir (str): The run's work dir.
        model (str): The model's name in the tables. Defaults to ``''``.
        method (str): The method key. Defaults to the dense key (:data:`DENSE`).
        pattern (str): The N:M pattern shown. Defaults to ``'-'``.
        config (str): The run's config. Defaults to ``''``.

    Returns:
        RunResult: The result, status ``'done'`` or ``'missing'``.
    """
    result = RunResult(label=label, model=model, method=method, pattern=pattern,
                       config=config, work_dir=work_dir)
    scalars = collect_scalars(work_dir)
    result.metrics = {k: v for k, v in scalars.items() if '/' in k}
    flops = load_train_flops(work_dir)
    if flops is not None:
        result.flops_ratio = _float(flops.get('ratio'))
        result.paper_flops_ratio = _float(flops.get('paper_ratio'))
        result.backbone_flops_ratio = _float(flops.get('backbone_ratio'))
        result.iterations = flops.get('iterations')
        result.train_time_s = _float(flops.get('train_time_s'))
    elif method == DENSE:
        result.flops_ratio = result.backbone_flops_ratio = result.paper_flops_ratio = 1.0
    elif 'flops_ratio' in scalars:
        result.flops_ratio = scalars['flops_ratio']
        result.paper_flops_ratio = scalars.get('flops_ratio_paper')
    if result.iterations is None and 'iter' in scalars:
        result.iterations = int(scalars['iter'])
    result.data_order = load_data_order(work_dir)
    result.status = 'done' if result.metrics else 'missing'
    return result


def load_data_order(work_dir: str) -> Optional[dict]:
    """The run's ``data_order.json`` (:class:`DataOrderHook`), or None."""
    data = _read_json(osp.join(work_dir, DATA_ORDER_FILE))
    return data if isinstance(data, dict) else None


def _float(value) -> Optional[float]:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def training_finished(work_dir: str) -> bool:
    """True when a run trained outside the suite is complete: ``train_flops.json``
    (written by :class:`TrainFlopsHook` when training ends) and COCO metrics exist."""
    return load_train_flops(work_dir) is not None and bool(collect_metrics(work_dir))


def read_result(work_dir: str) -> Optional[RunResult]:
    """The run's ``results.json``, or None if absent or unreadable.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        RunResult or None: The saved result, or None.
    """
    data = _read_json(osp.join(work_dir, RESULTS_FILE))
    if data is None:
        return None
    try:
        return RunResult.from_dict(data)
    except TypeError:
        return None


def write_result(result: RunResult, work_dir: Optional[str] = None) -> str:
    """Write ``results.json`` into the run's work dir; returns its path.

    Args:
        result (RunResult): The result.
        work_dir (str, optional): Where to write. Defaults to ``result.work_dir``.

    Returns:
        str: The path of ``results.json``.
    """
    work_dir = work_dir or result.work_dir
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, RESULTS_FILE)
    atomic_write(path, json.dumps(result.to_dict(), indent=2))
    return path
