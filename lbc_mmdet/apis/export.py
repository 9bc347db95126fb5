"""Export a trained N:M sparse checkpoint to a checkpoint of the stock *dense* model."""
import json
import os.path as osp
import time
from typing import Optional

from mmengine.logging import print_log

from ..deploy.export import (
    NMExportError,
    NonFiniteWeightsError,
    export_sparse_state_dict,
    plain,
)
from ..errors import LBCError
from ..utils import atomic_torch_save, atomic_write
from ..version import __version__
from .models import build_model, load_checkpoint_strict

#: Exit status of ``tools/export.py`` when the model is not exactly N:M.
EXIT_REFUSED = 1
#: Fields of the source checkpoint's ``meta`` carried over (plain data only).
META_KEYS = ('dataset_meta', 'experiment_name', 'epoch', 'iter', 'seed', 'time',
             'mmdet_version', 'mmengine_version')


class ExportRefusedError(LBCError):
    """A layer is not exactly N:M (e.g. an unfinished LBC run)."""
    exit_code = EXIT_REFUSED


def export_checkpoint(config: str, checkpoint: str, out: str,
                      report_path: Optional[str] = None,
                      cfg_options: Optional[dict] = None, logger='current') -> dict:
    """Build the sparse model of ``config``, load ``checkpoint``, fold the masks, drop the
    method state and write ``out`` (loadable with ``weights_only=True`` into the dense
    config's model) and its JSON report (``out + '.json'`` by default). Both files are
    written atomically.

    Args:
        config (str): The sparse training config (a file or ``mmdet::...``).
        checkpoint (str): The trained sparse checkpoint.
        out (str): Where to write the dense checkpoint.
        report_path (str, optional): Where to write the JSON report. Defaults to
            ``out + '.json'``.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.
        logger (str or Logger): Where progress is logged (``print_log``). Defaults to
            ``'current'``.

    Returns:
        dict: The export report (layers, sparsity summary, dropped keys, output paths).

    Raises:
        ExportRefusedError: A layer is not exactly N:M.
        LBCError: Missing files, a config/checkpoint mismatch, non-finite weights.
    """
    import torch

    start = time.time()
    print_log(f'building the sparse model of {config}', logger=logger)
    _, model = build_model(config, cfg_options)
    model.eval()
    print_log(f'loading {checkpoint}', logger=logger)
    ckpt = load_checkpoint_strict(model, checkpoint, config)
    print_log('folding masks and dropping the sparse-method state', logger=logger)
    try:
        state, report = export_sparse_state_dict(model)
    except NonFiniteWeightsError as err:  # the checkpoint's fault: a user error (2)
        raise LBCError(str(err)) from err
    except NMExportError as err:
        raise ExportRefusedError(str(err)) from err

    src_meta = ckpt.get('meta') or {}
    meta = {k: plain(src_meta[k]) for k in META_KEYS if k in src_meta}
    meta['lbc_mmdet_export'] = dict(
        version=__version__, format=report['format'], pattern=report['pattern'],
        methods=report['methods'], source_checkpoint=osp.abspath(checkpoint),
        source_config=config, exported_at=time.strftime('%Y-%m-%d %H:%M:%S'),
        summary=report['summary'])
    state = {k: v.detach().cpu() for k, v in state.items()}
    atomic_torch_save(dict(state_dict=state, meta=meta), out)
    # the output must load with torch's safe unpickler (stock tools, torch >= 2.6)
    torch.load(out, map_location='cpu', weights_only=True)

    report = dict(report, output=osp.abspath(out), source_checkpoint=osp.abspath(checkpoint),
                  source_config=config)
    report_path = report_path or out + '.json'
    atomic_write(report_path, json.dumps(report, indent=2))
    s = report['summary']
    print_log(
        f"exported {s['sparse_layers']} {report['pattern']} layers "
        f"({report['methods']}; sparsity {s['sparsity_of_sparse_layers']:.4f}, "
        f"{s['sparsity_of_conv_linear_weights']:.4f} of all conv/linear weights), "
        f"{s['dense_layers']} layers left dense, dropped {len(report['dropped_keys'])} "
        f'sparse-state keys in {time.time() - start:.1f}s', logger=logger)
    print_log(f'wrote {out}', logger=logger)
    print_log(f'wrote {report_path}', logger=logger)
    return report
