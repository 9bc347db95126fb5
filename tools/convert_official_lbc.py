"""Convert a checkpoint of the official LBC code (zyxxmu/LBC, ResNet-50) into a backbone
checkpoint for this project's LBC layers (``--help``).

Example::

    python tools/convert_official_lbc.py lbc_resnet50_2of4.pth \\
        checkpoints/lbc_r50_2of4_backbone.pth --n 2 --m 4
    # then, in a config:
    # model = dict(backbone=dict(init_cfg=dict(
    #     type='Pretrained', checkpoint='checkpoints/lbc_r50_2of4_backbone.pth')))
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli._common import ToolError, add_debug_arg, run_tool  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official LBC checkpoint (.pth / .pth.tar)')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--n', type=int, default=None, help='expected N (checked)')
    parser.add_argument('--m', type=int, default=None, help='expected M (checked)')
    parser.add_argument('--prefix', default='',
                        help="prepend to every key, e.g. 'backbone.' for `load_from`")
    parser.add_argument('--unsafe-load', action='store_true',
                        help='load the source with weights_only=False (only for a file '
                        'you trust: a pickle can run code)')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from lbc_mmdet.engine.checkpoint import allow_unsafe_load, load_from_local
    from lbc_mmdet.layers.lbc_official import convert_official_lbc
    from lbc_mmdet.utils import atomic_torch_save, atomic_write
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise ToolError(f'no such checkpoint: {args.src}')
    if args.unsafe_load:
        allow_unsafe_load()
    # the project's loader: safe unless --unsafe-load; a truncated file or one that needs
    # the unsafe unpickler is one clear error
    ckpt = load_from_local(args.src, map_location='cpu')
    try:
        state_dict, report = convert_official_lbc(ckpt, args.n, args.m, args.prefix)
    except ValueError as e:
        raise ToolError(str(e)) from e
    meta = dict(converted_from=osp.basename(args.src), pattern=report['pattern'])
    atomic_torch_save(dict(state_dict=state_dict, meta=meta), args.dst)
    atomic_write(args.dst + '.json', json.dumps(report, indent=2))
    print(f'{len(report["sparse_layers"])} LBC layers ({report["pattern"]}), '
          f'{len(report["dropped"])} keys dropped -> {args.dst} (report: {args.dst}.json)')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
