"""Prune a trained dense detector to N:M in one shot (``--help``)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli.prune import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
