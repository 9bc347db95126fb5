"""FLOPs (Train) of a method's schedule for ImageNet ResNet-50, no training (``--help``)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli.train_flops import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
