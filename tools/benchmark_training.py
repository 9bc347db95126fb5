"""Time a training step of each N:M method against the dense detector (``--help``)."""
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, _ROOT)  # a source checkout

from lbc_mmdet.cli.benchmark_training import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli(default_config=osp.join(
        _ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_dense_demo.py')))
