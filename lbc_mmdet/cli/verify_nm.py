"""Check that the weights of a checkpoint are N:M sparse, as stored
(``tools/verify_nm.py``)."""
import argparse
import json
import os.path as osp
from typing import List, Optional

from ..deploy.verify import DEFAULT_INCLUDE, verify_nm
from ..utils import atomic_write
from ._common import ToolError, add_pattern_args, check_pattern_args, parse_tool_args, tool_cli

EXIT_NOT_NM = 1


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check that the weights of a checkpoint are N:M sparse (at most N '
        'non-zeros in every group of M consecutive input channels). The raw stored '
        'weights are checked: export a training checkpoint first (tools/export.py).',
        epilog=f'exit status: 0 all checked weights are N:M, {EXIT_NOT_NM} some are not '
        '(listed) or none matched, 2 bad input. example: python tools/verify_nm.py '
        'work_dirs/export/SPARSE_CONFIG.pth --n 2 --m 4')
    parser.add_argument('checkpoint', help='checkpoint (.pth): exported or not')
    add_pattern_args(parser, n=None, m=None)
    parser.add_argument('--include', nargs='+', default=None, metavar='PATTERN',
                        help='fnmatch patterns on state-dict keys to check (default: '
                        f"{' '.join(DEFAULT_INCLUDE)})")
    parser.add_argument('--all-layers', action='store_true',
                        help='check every eligible weight (overrides --include)')
    parser.add_argument('--json', default=None, metavar='PATH',
                        help='also write the full result as JSON')
    parser.add_argument('--max-list', type=int, default=20,
                        help='offending layers listed at most (default: %(default)s)')
    return parse_tool_args(parser, argv)


def main(argv: Optional[List[str]] = None) -> int:
    from ..engine.checkpoint import load_from_local
    args = check_pattern_args(parse_args(argv))
    if not osp.isfile(args.checkpoint):
        raise ToolError(f'checkpoint not found: {args.checkpoint}')
    # the project's safe loader: a corrupt or unsafe file is one clear error
    checkpoint = load_from_local(args.checkpoint, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise ToolError(f'{args.checkpoint} is not a state dict / checkpoint dict')
    result = verify_nm(checkpoint, args.n, args.m, include=args.include,
                       all_layers=args.all_layers)
    print(f'{args.checkpoint}: checking {args.n}:{args.m} on keys matching '
          f'{result.include}')
    print(result.summary(max_list=args.max_list))
    if args.json:
        atomic_write(args.json, json.dumps(dict(result.to_dict(),
                                                checkpoint=osp.abspath(args.checkpoint)),
                                           indent=2))
        print(f'wrote {args.json}')
    return 0 if result.ok else EXIT_NOT_NM


cli = tool_cli(main)


if __name__ == '__main__':
    raise SystemExit(cli())
