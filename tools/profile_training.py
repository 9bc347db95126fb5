"""Where a training run's time goes: forward, weight side, backward, optimizer, hooks,
evaluation, data loading (``--help``)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli.profile_training import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
