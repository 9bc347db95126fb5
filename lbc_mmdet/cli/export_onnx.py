"""Export the backbone and neck of a trained detector (masks folded: the exported dense
model) to ONNX with torch.onnx.export(dynamo=False), then check the file: its feature maps
against PyTorch on onnxruntime (CPU), and every N:M layer still N:M in the ONNX weights along
the input channels (the axis TensorRT's sparse kernels use). The report (OUT.json) also lists
which convs TensorRT could run 2:4 sparse and why the others cannot.

``tools/export_onnx.py`` (the paragraph above is its ``--help``).
"""
import argparse
from typing import List, Optional

from ..apis.onnx_export import EXIT_CHECK_FAILED, export_onnx
from ..deploy.verify import DEFAULT_INCLUDE
from ._common import (
    add_model_args,
    add_pattern_args,
    check_pattern_args,
    parse_size,
    parse_tool_args,
    tool_cli,
    tool_parser,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = tool_parser(__doc__, exit_status={
        0: 'exported and checked', EXIT_CHECK_FAILED: 'a check failed (the layers are named)'},
        note='Then, on a GPU machine: trtexec --onnx=OUT --sparsity=enable --fp16.',
        example='python tools/export_onnx.py SPARSE_CONFIG work_dirs/x/iter_400.pth '
        'work_dirs/onnx/model.onnx')
    add_model_args(parser, 'the sparse config the checkpoint was trained with (or the dense '
                   'config of an exported checkpoint)',
                   'exported or finished training checkpoint')
    parser.add_argument('out', help='output .onnx path (the report goes to OUT.json)')
    parser.add_argument('--input-size', type=parse_size, default=(320, 320),
                        metavar='HxW', help='export/check input size (default: 320x320)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (default: 17)')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='absolute tolerance of the comparison (default: 1e-4)')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='tolerance relative to the largest |feature| (default: 1e-4)')
    add_pattern_args(parser, what='of the expected pattern for a dense config')
    parser.add_argument('--include', nargs='+', default=None, metavar='PATTERN',
                        help='with a dense config: fnmatch patterns on module names of '
                        f"the layers expected N:M (default: {' '.join(DEFAULT_INCLUDE)})")
    parser.add_argument('--check-only', action='store_true',
                        help='check an existing OUT without exporting it again')
    parser.add_argument('--report', default=None, help='report path (default: OUT.json)')
    return parse_tool_args(parser, argv, cfg_options=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = check_pattern_args(parse_args(argv))
    export_onnx(args.config, args.checkpoint, args.out, input_size=args.input_size,
                opset=args.opset, atol=args.atol, rtol=args.rtol, n=args.n, m=args.m,
                include=args.include, check_only=args.check_only, report_path=args.report,
                cfg_options=args.cfg_options)
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
