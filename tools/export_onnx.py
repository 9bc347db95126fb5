"""Export a detector's backbone and neck to ONNX and check its N:M layers (``--help``)."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a source checkout

from lbc_mmdet.cli.export_onnx import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
