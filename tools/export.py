"""Export a trained N:M sparse checkpoint to a checkpoint of the stock *dense* model.

Builds the sparse model from CONFIG, loads CHECKPOINT into it, folds every sparse layer's
mask into its weight and drops the sparse method's state (LBC scores/alive, masks, ...).
OUT then loads with ``strict=True`` into the model of the *dense* config (the same config
without ``conv_cfg`` / ``NMSparsify``), e.g. with stock mmdet's ``tools/test.py`` or
``mmdet.apis.init_detector``, and predicts exactly what the sparse model predicts. OUT is
readable by ``torch.load(weights_only=True)``. A JSON report is written to ``OUT.json``.

Exit status: 0 exported; 1 refused (a layer is not exactly N:M, e.g. an unfinished LBC
run); 2 bad input (missing file, config/checkpoint mismatch).

Example:
    python tools/export.py configs/faster_rcnn_lbc_2of4.py \
        work_dirs/faster_rcnn_lbc_2of4/epoch_12.pth work_dirs/export/frcnn_lbc_2of4.pth
    python tools/test.py mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py \
        work_dirs/export/frcnn_lbc_2of4.pth
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

# Runnable as ``python tools/export.py`` from a source checkout.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger, print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner.checkpoint import (_load_checkpoint,  # noqa: E402
                                        load_state_dict)

import lbc_mmdet  # noqa: E402  (registers the sparse layers, safe checkpoint loading)
from lbc_mmdet.deploy.export import (NMExportError, compare_keys,  # noqa: E402
                                     export_sparse_state_dict, plain)
from lbc_mmdet.sparsify import sparse_layers  # noqa: E402

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
#: Fields of the source checkpoint's ``meta`` carried over (plain data only).
META_KEYS = ('dataset_meta', 'experiment_name', 'epoch', 'iter', 'seed', 'time',
             'mmdet_version', 'mmengine_version')


class ToolError(Exception):
    """A clear, user-facing failure with an exit status."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a trained N:M sparse checkpoint (LBC, SR-STE, ASP, BAME) to a '
        'checkpoint of the dense model: masks folded into the weights, the sparse '
        "method's state dropped. OUT loads with strict=True into the model of the dense "
        'config; a JSON report is written to OUT.json.',
        epilog='exit status: 0 exported, 1 refused (a layer is not exactly N:M), '
        '2 bad input (missing file, config/checkpoint mismatch)')
    parser.add_argument('config', help='the sparse config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='the trained checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint path (.pth)')
    parser.add_argument('--report', default=None,
                        help='JSON report path (default: OUT + ".json")')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value (as in tools/train.py)')
    return parser.parse_args(argv)


def build_model(config: str, cfg_options=None):
    """The model of ``config`` (no weights loaded, no init_weights: nothing downloaded)."""
    if not osp.isfile(config):
        raise ToolError(f'config not found: {config}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    from mmdet.registry import MODELS
    return cfg, MODELS.build(cfg.model)


def load_into(model, checkpoint_path: str, config: str, logger) -> dict:
    """Load ``checkpoint_path`` into ``model`` strictly, with clear mismatch errors."""
    if not osp.isfile(checkpoint_path):
        raise ToolError(f'checkpoint not found: {checkpoint_path}')
    try:
        checkpoint = _load_checkpoint(checkpoint_path, map_location='cpu', logger=logger)
    except Exception as err:  # unreadable / refused by the safe unpickler
        raise ToolError(f'cannot read checkpoint {checkpoint_path}: {err}') from err
    if not isinstance(checkpoint, dict):
        raise ToolError(f'{checkpoint_path} is not a checkpoint dict')
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    missing, unexpected = compare_keys(model, state)
    if missing or unexpected:
        lines = [f'checkpoint {checkpoint_path} does not match config {config}: '
                 f'{len(missing)} missing and {len(unexpected)} unexpected keys']
        for title, keys in (('missing', missing), ('unexpected', unexpected)):
            if keys:
                lines.append(f'  {title}: ' + ', '.join(keys[:8]) +
                             (f' ... (+{len(keys) - 8})' if len(keys) > 8 else ''))
        method_state = {f'{name}.{extra}' for name, layer in sparse_layers(model)
                        for extra in layer.nm_extra_state_names}
        if missing and set(missing) <= method_state and not unexpected:
            lines.append('  hint: only sparse-method state is missing: is the checkpoint '
                         'already exported (dense keys)? It needs no export.')
        else:
            lines.append('  hint: pass the config the checkpoint was trained with')
        raise ToolError('\n'.join(lines))
    try:
        load_state_dict(model, state, strict=True, logger=logger)
    except RuntimeError as err:
        raise ToolError(f'checkpoint {checkpoint_path} does not fit config {config}: '
                        f'{err}') from err
    return checkpoint


def export(args: argparse.Namespace) -> dict:
    logger = MMLogger.get_instance('lbc_mmdet_export', log_level='INFO')
    start = time.time()
    print_log(f'building the sparse model of {args.config}', logger=logger)
    _, model = build_model(args.config, args.cfg_options)
    model.eval()
    print_log(f'loading {args.checkpoint}', logger=logger)
    checkpoint = load_into(model, args.checkpoint, args.config, logger)
    print_log('folding masks and dropping the sparse-method state', logger=logger)
    try:
        state, report = export_sparse_state_dict(model)
    except NMExportError as err:
        raise ToolError(str(err), code=EXIT_REFUSED) from err

    src_meta = checkpoint.get('meta') or {}
    meta = {k: plain(src_meta[k]) for k in META_KEYS if k in src_meta}
    meta['lbc_mmdet_export'] = dict(
        version=lbc_mmdet.__version__, format=report['format'],
        pattern=report['pattern'], methods=report['methods'],
        source_checkpoint=osp.abspath(args.checkpoint), source_config=args.config,
        exported_at=time.strftime('%Y-%m-%d %H:%M:%S'), summary=report['summary'])
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in state.items()}
    torch.save(dict(state_dict=state, meta=meta), args.out)
    # the output must load with torch's safe unpickler (stock tools, torch >= 2.6)
    torch.load(args.out, map_location='cpu', weights_only=True)

    report = dict(report, output=osp.abspath(args.out),
                  source_checkpoint=osp.abspath(args.checkpoint),
                  source_config=args.config)
    report_path = args.report or args.out + '.json'
    with open(report_path, 'w') as f:
        json.dump(report, f, indent=2)
    s = report['summary']
    print_log(
        f"exported {s['sparse_layers']} {report['pattern']} layers "
        f"({report['methods']}; sparsity {s['sparsity_of_sparse_layers']:.4f}, "
        f"{s['sparsity_of_conv_linear_weights']:.4f} of all conv/linear weights), "
        f"{s['dense_layers']} layers left dense, dropped {len(report['dropped_keys'])} "
        f'sparse-state keys in {time.time() - start:.1f}s', logger=logger)
    print_log(f'wrote {args.out}', logger=logger)
    print_log(f'wrote {report_path}', logger=logger)
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        export(args)
    except ToolError as err:
        print(f'error: {err}', file=sys.stderr)
        return err.code
    return 0


if __name__ == '__main__':
    sys.exit(main())
