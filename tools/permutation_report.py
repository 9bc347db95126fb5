"""Kept magnitude of N:M pruning with and without channel permutation (``--help``)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli.permutation_report import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
