"""The FLOPs (Train) ratio of a method, pattern and schedule for ImageNet ResNet-50 at
224 px, without training (``tools/train_flops.py``; see ``docs/benchmark.md``)."""
import argparse
import json
from typing import List, Optional

from ..accounting import CONVENTIONS
from ..accounting.analytic import resnet50_layers, schedule_flops
from ..layers import get_method, method_names
from ._common import ToolError, add_debug_arg, run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Training FLOPs of an N:M method relative to dense training, for '
        'ImageNet ResNet-50 at 224 px, computed from the schedule (epoch e runs with '
        'the state at t = e; no training).',
        epilog='example: python tools/train_flops.py --method KEY --n 2 --m 4 '
        '--epochs 120 --ti 0 --tf 0 --convention paper (docs/benchmark.md compares the '
        "results with the paper's figures)")
    parser.add_argument('--method', required=True,
                        help=f'N:M method (registered: {", ".join(method_names())})')
    parser.add_argument('--n', type=int, default=2, help='N (default: %(default)s)')
    parser.add_argument('--m', type=int, default=4, help='M (default: %(default)s)')
    parser.add_argument('--epochs', type=int, default=120,
                        help='training epochs of the method (default: %(default)s)')
    parser.add_argument('--baseline-epochs', type=int, default=None,
                        help='epochs of the dense training it is compared with (default: '
                        '--epochs)')
    parser.add_argument('--ti', type=float, default=0.0, help='window start (epochs)')
    parser.add_argument('--tf', type=float, default=None,
                        help='window end (epochs; default: half of --epochs; --tf equal to '
                        '--ti: everything happens at ti)')
    parser.add_argument('--convention', choices=CONVENTIONS, default='paper',
                        help="'paper': the rule of the LBC paper's figures (N:M layers "
                        "only, input gradient dense); 'hardware': the multiply-adds every "
                        'conv/linear layer really performs (default: %(default)s)')
    parser.add_argument('--img-size', type=int, default=224, help='input size (224)')
    parser.add_argument('--json', metavar='PATH', help='also write the result as JSON')
    add_debug_arg(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        method = get_method(args.method)
    except ValueError as err:
        raise ToolError(str(err)) from err
    if not 0 < args.n < args.m:
        raise ToolError(f'need 0 < n < m, got --n {args.n} --m {args.m}')
    if args.epochs < 1 or args.ti < 0:
        raise ToolError('need --epochs >= 1 and --ti >= 0')
    tf = args.epochs / 2.0 if args.tf is None else args.tf
    if tf < args.ti:
        raise ToolError(f'--tf ({tf}) must not be below --ti ({args.ti})')
    layer_cls = next(iter(method.layers.values()))
    res = schedule_flops(layer_cls, args.n, args.m, args.epochs, args.ti, tf,
                         convention=args.convention, baseline_epochs=args.baseline_epochs,
                         layers=resnet50_layers(args.img_size))
    print(f'{method.display_name} {args.n}:{args.m}, {args.epochs} epochs (dense baseline: '
          f'{args.baseline_epochs or args.epochs}), ti={args.ti:g}, tf={tf:g}, ResNet-50 '
          f'at {args.img_size} px, convention {args.convention}: {res.note}')
    if args.json:
        from ..engine.checkpoint import atomic_write
        atomic_write(args.json, json.dumps(dict(
            method=method.name, n=args.n, m=args.m, epochs=args.epochs,
            baseline_epochs=args.baseline_epochs or args.epochs, ti=args.ti, tf=tf,
            convention=args.convention, ratio=res.ratio, low=res.low, high=res.high,
            determined=res.determined, per_epoch=res.per_epoch), indent=2))
    if res.determined:
        print(f'FLOPs (Train): {res.ratio:.2f}x')
    else:
        print(f'FLOPs (Train): not determined by the schedule alone: between '
              f'{res.low:.2f}x and {res.high:.2f}x (measure it with TrainFlopsHook)')
    return 0


def cli(argv: Optional[List[str]] = None) -> int:
    """``main`` with the tools' error handling."""
    return run_tool(main, argv)


if __name__ == '__main__':
    raise SystemExit(cli())
