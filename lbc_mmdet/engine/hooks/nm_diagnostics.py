"""Mask-health diagnostics of the sparse layers, for ``NMSparsityHook``.

Every eligible layer answers :meth:`~lbc_mmdet.layers.NMSparseMixin.nm_diagnostics`
(``flip_rate`` for every method, and each method's own values); this module averages them
over the layers and appends one JSON line per call to ``<log_dir>/nm_diagnostics.jsonl``
(:data:`DIAG_FILE`), which ``tools/analyze_masks.py`` and the suite report read::

    {"iter": 10, "t": 0.5, "methods": ["..."], "start": false, "final": false,
     "mean": {"flip_rate": 0.01, ...}, "layers": {"backbone.conv1": {"flip_rate": 0.02}}}

``iter`` counts the training iterations done, ``t`` is the schedule's time; ``start`` marks
the record of ``before_train`` (flip rate 0 by definition; it also holds ``layer_info``,
:func:`layer_info`), ``final`` that of ``after_train``. The mean of a value is over the
layers that report it.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

#: The file name of the diagnostics in a run's log directory (``work_dir/<timestamp>``).
DIAG_FILE = 'nm_diagnostics.jsonl'


def collect_diagnostics(layers: Sequence[Tuple[str, object]], start: bool = False
                        ) -> Tuple[Dict[str, float], Dict[str, Dict[str, float]]]:
    """``(mean over layers, per layer)`` of the diagnostics of the eligible ``layers``
    (``(name, layer)`` pairs); ``start``: the start of a run
    (``nm_diagnostics_start``)."""
    per_layer: Dict[str, Dict[str, float]] = {}
    sums: Dict[str, List[float]] = {}
    for name, layer in layers:
        if not layer.nm_eligible:
            continue
        values = layer.nm_diagnostics_start() if start else layer.nm_diagnostics()
        per_layer[name] = {k: float(v) for k, v in values.items()}
        for key, value in per_layer[name].items():
            sums.setdefault(key, []).append(value)
    mean = {k: sum(v) / len(v) for k, v in sums.items()}
    return mean, per_layer


def layer_info(layers: Sequence[Tuple[str, object]]) -> Dict[str, dict]:
    """What rebuilds each eligible layer's mask from a checkpoint (``tools/
    analyze_masks.py``: distances to the final mask): its method, ``n``, ``m`` and the
    method's options that are plain values; in the start record."""
    info = {}
    for name, layer in layers:
        if not layer.nm_eligible:
            continue
        options = {k: getattr(layer, k) for k in type(layer).nm_option_names()
                   if isinstance(getattr(layer, k, None), (bool, int, float, str))}
        info[name] = dict(method=layer.nm_method, n=layer.nm_n, m=layer.nm_m,
                          options=options)
    return info


def append_record(log_dir: str, record: dict) -> str:
    """Append ``record`` as one JSON line to ``log_dir``/:data:`DIAG_FILE`; returns the
    path."""
    os.makedirs(log_dir, exist_ok=True)
    path = osp.join(log_dir, DIAG_FILE)
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')  # layers in model order
    return path
