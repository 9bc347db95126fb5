"""Export a trained N:M sparse checkpoint to a checkpoint of the dense model: masks folded
into the weights, the sparse method's state dropped. OUT loads with strict=True into the
model of the dense config (stock mmdet tools and init_detector); a JSON report is written to
OUT.json.

``tools/export.py`` (the paragraph above is its ``--help``).
"""
import argparse
from typing import List, Optional

from ..apis.export import EXIT_REFUSED, export_checkpoint
from ._common import add_model_args, parse_tool_args, tool_cli, tool_logger, tool_parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = tool_parser(
        __doc__, exit_status={0: 'exported', EXIT_REFUSED: 'refused (a layer is not exactly N:M)'},
        user_error='bad input (missing file, config/checkpoint mismatch)',
        example='python tools/export.py configs/SPARSE_CONFIG.py '
        'work_dirs/SPARSE_CONFIG/epoch_12.pth work_dirs/export/SPARSE_CONFIG.pth')
    add_model_args(parser, 'the sparse config the checkpoint was trained with',
                   'the trained checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint path (.pth)')
    parser.add_argument('--report', default=None,
                        help='JSON report path (default: OUT + ".json")')
    return parse_tool_args(parser, argv, cfg_options=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logger = tool_logger('lbc_mmdet_export')
    export_checkpoint(args.config, args.checkpoint, args.out, args.report,
                      args.cfg_options, logger=logger)
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
