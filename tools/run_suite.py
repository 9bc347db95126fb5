"""Train a benchmark suite run after run and tabulate the results (``--help``)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli.run_suite import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
