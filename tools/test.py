"""Test and evaluate a detector, mmdet 3.x conventions (``--help``)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli.test import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
