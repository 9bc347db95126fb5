"""Export a trained N:M sparse checkpoint to a checkpoint of the stock *dense* model
(``tools/export.py``)."""
import argparse
from typing import List, Optional

from ..apis.export import EXIT_REFUSED, export_checkpoint
from ._common import EXIT_USER_ERROR, add_cfg_options_arg, parse_tool_args, tool_cli, tool_logger


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a trained N:M sparse checkpoint to a checkpoint of the dense '
        "model: masks folded into the weights, the sparse method's state dropped. OUT "
        'loads with strict=True into the model of the dense config (stock mmdet tools '
        'and init_detector); a JSON report is written to OUT.json.',
        epilog=f'exit status: 0 exported, {EXIT_REFUSED} refused (a layer is not exactly '
        f'N:M), {EXIT_USER_ERROR} bad input (missing file, config/checkpoint mismatch). '
        'example: python tools/export.py configs/SPARSE_CONFIG.py '
        'work_dirs/SPARSE_CONFIG/epoch_12.pth work_dirs/export/SPARSE_CONFIG.pth')
    parser.add_argument('config', help='the sparse config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='the trained checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint path (.pth)')
    parser.add_argument('--report', default=None,
                        help='JSON report path (default: OUT + ".json")')
    add_cfg_options_arg(parser)
    return parse_tool_args(parser, argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logger = tool_logger('lbc_mmdet_export')
    export_checkpoint(args.config, args.checkpoint, args.out, args.report,
                      args.cfg_options, logger=logger)
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
