"""Training FLOPs of an N:M method relative to dense training, for ImageNet ResNet-50 at
224 px, computed from the schedule (epoch e runs with the state at t = e; no training).

``tools/train_flops.py`` (the paragraph above is its ``--help``; see ``docs/benchmark.md``):
the FLOPs (Train) ratio of a method, pattern and schedule.
"""
import argparse
import json
from typing import List, Optional

from ..accounting import CONVENTIONS
from ..accounting.analytic import resnet50_layers, schedule_flops, schedule_options
from ..layers import get_method, method_names
from ..utils import atomic_write
from ._common import (
    ToolError,
    add_pattern_args,
    check_pattern_args,
    parse_tool_args,
    tool_cli,
    tool_parser,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = tool_parser(__doc__, example='python tools/train_flops.py --method KEY --n 2 '
                         '--m 4 --epochs 120 --ti 0 --tf 0 --convention paper '
                         "(docs/benchmark.md compares the results with the paper's figures)")
    parser.add_argument('--method', required=True,
                        help=f'N:M method (registered: {", ".join(method_names())})')
    add_pattern_args(parser)
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
    parser.add_argument('--method-opt', action='append', default=[], metavar='KEY=VALUE',
                        help="an option of the method's schedule (a Python literal, e.g. "
                        'gradual=False; repeatable; docs/benchmark.md)')
    parser.add_argument('--json', metavar='PATH', help='also write the result as JSON')
    return parse_tool_args(parser, argv)


def parse_method_opts(items: List[str], known: List[str], method: str) -> dict:
    """``--method-opt KEY=VALUE`` items as a dict, values as Python literals (a bare word
    stays a string); a key the method's schedule does not take is a :class:`ToolError`."""
    import ast
    options = {}
    for item in items:
        key, sep, value = item.partition('=')
        key = key.strip()
        if not sep or not key:
            raise ToolError(f'--method-opt wants KEY=VALUE, got {item!r}')
        if key not in known:
            raise ToolError(f'--method-opt {key}: {method} has no such schedule option '
                            f'(its options: {", ".join(known) or "none"})')
        try:
            options[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            options[key] = value.strip()
    return options


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        method = get_method(args.method)
    except ValueError as err:
        raise ToolError(str(err)) from err
    check_pattern_args(args)
    if args.epochs < 1 or args.ti < 0:
        raise ToolError('need --epochs >= 1 and --ti >= 0')
    tf = args.epochs / 2.0 if args.tf is None else args.tf
    if tf < args.ti:
        raise ToolError(f'--tf ({tf}) must not be below --ti ({args.ti})')
    layer_cls = next(iter(method.layers.values()))
    options = parse_method_opts(args.method_opt, schedule_options(layer_cls),
                                method.display_name)
    res = schedule_flops(layer_cls, args.n, args.m, args.epochs, args.ti, tf,
                         convention=args.convention, baseline_epochs=args.baseline_epochs,
                         layers=resnet50_layers(args.img_size), options=options)
    opts = ''.join(f', {k}={v!r}' for k, v in options.items())
    print(f'{method.display_name} {args.n}:{args.m}{opts}, {args.epochs} epochs (dense '
          f'baseline: {args.baseline_epochs or args.epochs}), ti={args.ti:g}, tf={tf:g}, '
          f'ResNet-50 at {args.img_size} px, convention {args.convention}: {res.note}')
    if args.json:
        atomic_write(args.json, json.dumps(dict(
            method=method.name, n=args.n, m=args.m, epochs=args.epochs,
            baseline_epochs=args.baseline_epochs or args.epochs, ti=args.ti, tf=tf,
            convention=args.convention, options=options, ratio=res.ratio, low=res.low,
            high=res.high,
            determined=res.determined, per_epoch=res.per_epoch), indent=2))
    if res.determined:
        print(f'FLOPs (Train): {res.ratio:.2f}x')
    else:
        print(f'FLOPs (Train): not determined by the schedule alone: between '
              f'{res.low:.2f}x and {res.high:.2f}x (measure it with TrainFlopsHook)')
    return 0


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
