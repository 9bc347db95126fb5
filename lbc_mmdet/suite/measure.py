"""What the suite runner adds to every (run, seed) so that the report can judge it:

- the paired design (:func:`paired_options`): the training sampler's seed is the run's seed
  (``train_dataloader.sampler.seed``; with ``randomness.seed`` it also seeds the data
  workers, hence the augmentation), so that the rows sharing a seed draw the same batches
  whatever their models consume from the random generators while they are built; and
  :class:`DataOrderHook` records the first :data:`PAIRING_BATCHES` batches to check it;
- the final evaluation's detections (``val_evaluator.outfile_prefix``, and the test
  evaluator's for rows that only evaluate), from which
  :func:`add_bootstrap` computes the bootstrap interval over validation images.
"""
import os.path as osp
from typing import Callable, Dict, Optional

from .bootstrap import DEFAULT_REPLICATES, bootstrap_run, prediction_files
from .results import PREDICTIONS_PREFIX, RunResult, load_data_order

#: training batches whose image ids each run records
PAIRING_BATCHES = 5


def paired_options(seed: int, work_dir: str,
                   num_batches: int = PAIRING_BATCHES) -> Dict[str, object]:
    """The ``--cfg-options`` of a (run, seed) that pair it and keep its predictions."""
    return {
        'train_dataloader.sampler.seed': int(seed),
        'default_hooks.data_order.type': 'DataOrderHook',
        'default_hooks.data_order.num_batches': int(num_batches),
        'val_evaluator.outfile_prefix': osp.join(work_dir, PREDICTIONS_PREFIX),
        # an evaluate-only row runs the test loop: the same files
        'test_evaluator.outfile_prefix': osp.join(work_dir, PREDICTIONS_PREFIX),
    }


def eval_ann_file(config: str, options: Dict[str, object]) -> Optional[str]:
    """The validation annotation file of ``config`` with ``options`` applied (None when
    the config has no single COCO evaluator with an ``ann_file``)."""
    from mmengine.config import Config
    try:
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(dict(options))
        evaluator = cfg.get('val_evaluator')
        ann = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
    except Exception:  # noqa: BLE001 - no annotation file: no bootstrap, not an error
        return None
    return ann if isinstance(ann, str) and osp.isfile(ann) else None


def add_bootstrap(result: RunResult, ann_file: Optional[str],
                  replicates: int = DEFAULT_REPLICATES, seed: int = 0) -> bool:
    """Fill ``result.bootstrap`` (and ``result.data_order``) from the run's work dir when
    missing; True when something was added."""
    changed = False
    if result.data_order is None:
        result.data_order = load_data_order(result.work_dir)
        changed = result.data_order is not None
    prefix = osp.join(result.work_dir, PREDICTIONS_PREFIX)
    if (result.status != 'done' or result.bootstrap or ann_file is None
            or not prediction_files(prefix)):
        return changed
    result.bootstrap = bootstrap_run(ann_file, prefix, replicates, seed)
    return bool(result.bootstrap) or changed


def add_statistics(result: RunResult, config: str, suite_path: Optional[str],
                   options: Dict[str, object], replicates: int = DEFAULT_REPLICATES,
                   say: Callable[[str], None] = print) -> bool:
    """:func:`add_bootstrap` for a suite's job (its config resolved as the runner does,
    the annotation file read from it with the job's options); a failure is reported with
    ``say`` and leaves the result without bootstrap. True when something was added."""
    if result.status != 'done' or (result.bootstrap and result.data_order):
        return False
    if result.bootstrap or not prediction_files(osp.join(result.work_dir,
                                                         PREDICTIONS_PREFIX)):
        return add_bootstrap(result, None, replicates)  # the data order only
    from .spec import SuiteError, resolve_config
    try:
        path = resolve_config(config, suite_path)
    except SuiteError:
        path = None
    ann = eval_ann_file(path, options) if path else None
    try:
        return add_bootstrap(result, ann, replicates)
    except Exception as err:  # noqa: BLE001 - the tables come out without it
        say(f'no bootstrap ({type(err).__name__}: {err})')
        return False
