"""Check that the weights of a checkpoint are N:M sparse, as stored.

Every eligible weight (``*.weight``, 4-D with input channels divisible by M, or 2-D with
in-features divisible by M) whose key matches ``--include`` (default: the backbone,
``backbone.*``; ``--all-layers``: every eligible weight) is grouped with the standard N:M
grouping and must hold at most N non-zeros per group of M. The raw stored weights are
checked (no stored mask is applied): export a training checkpoint first
(``tools/export.py``).

Exit status: 0 every checked weight is N:M; 1 some are not (they are listed) or nothing
matched; 2 bad input (missing or unreadable file).

Example:
    python tools/verify_nm.py work_dirs/export/frcnn_lbc_2of4.pth --n 2 --m 4
    python tools/verify_nm.py model.pth --n 2 --m 4 --include 'backbone.layer4.*' \
        'roi_head.*'
"""
import argparse
import json
import os.path as osp
import pickle
import sys

# Runnable as ``python tools/verify_nm.py`` from a source checkout.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402

from lbc_mmdet.deploy.verify import DEFAULT_INCLUDE, verify_nm  # noqa: E402

EXIT_NOT_NM = 1
EXIT_BAD_INPUT = 2


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check that the weights of a checkpoint are N:M sparse (at most N '
        'non-zeros in every group of M consecutive input channels).',
        epilog='exit status: 0 all checked weights are N:M, 1 some are not (listed) or '
        'none matched, 2 bad input')
    parser.add_argument('checkpoint', help='checkpoint (.pth): exported or not')
    parser.add_argument('--n', type=int, required=True, help='non-zeros per group (N)')
    parser.add_argument('--m', type=int, required=True, help='group size (M)')
    parser.add_argument(
        '--include', nargs='+', default=None, metavar='PATTERN',
        help='fnmatch patterns on state-dict keys to check (default: '
        f"{' '.join(DEFAULT_INCLUDE)})")
    parser.add_argument('--all-layers', action='store_true',
                        help='check every eligible weight (overrides --include)')
    parser.add_argument('--json', default=None, metavar='PATH',
                        help='also write the full result as JSON')
    parser.add_argument('--max-list', type=int, default=20,
                        help='offending layers listed at most (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not 0 < args.n < args.m:
        print(f'error: need 0 < n < m, got --n {args.n} --m {args.m}', file=sys.stderr)
        return EXIT_BAD_INPUT
    if not osp.isfile(args.checkpoint):
        print(f'error: checkpoint not found: {args.checkpoint}', file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        checkpoint = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        print(f'error: cannot read {args.checkpoint} with torch.load(weights_only=True): '
              f'{str(err).splitlines()[0]}', file=sys.stderr)
        return EXIT_BAD_INPUT
    if not isinstance(checkpoint, dict):
        print(f'error: {args.checkpoint} is not a state dict / checkpoint dict',
              file=sys.stderr)
        return EXIT_BAD_INPUT
    result = verify_nm(checkpoint, args.n, args.m, include=args.include,
                       all_layers=args.all_layers)
    print(f'{args.checkpoint}: checking {args.n}:{args.m} on keys matching '
          f'{result.include}')
    print(result.summary(max_list=args.max_list))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(result.to_dict(), checkpoint=osp.abspath(args.checkpoint)), f,
                      indent=2)
        print(f'wrote {args.json}')
    return 0 if result.ok else EXIT_NOT_NM


if __name__ == '__main__':
    sys.exit(main())
