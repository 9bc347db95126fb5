"""Helpers of the deployment tests (configs, model building, running the tools)."""
import importlib
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import lbc_mmdet  # noqa: F401  (registers the sparse layers)
from lbc_mmdet.layers import sparse_layers

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STOCK_CONFIG = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
LBC_CONV = "dict(type='LBCConv2d', n=2, m=4)"

# the stock config, with no pretrained weights and every box kept (random weights give
# scores far below the stock 0.05 threshold), fewer proposals for speed
_TEST_CFG = """test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50),
                  rcnn=dict(score_thr=0.0, max_per_img=30))"""
# a tiny R18-style detector with 16 base channels: for the tool tests that only need a
# model that builds, loads and exports in a second
_TINY = """neck=dict(in_channels=[16, 32, 64, 128], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=16),
        bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes=3)),"""


def config_text(sparse: bool, tiny: bool = False) -> str:
    """A config file's text: the stock Faster R-CNN R50-FPN (or the tiny one), with an LBC
    2:4 backbone when ``sparse``."""
    backbone = 'init_cfg=None'
    if tiny:
        backbone += ', depth=18, base_channels=16'
    if sparse:
        backbone += f', conv_cfg={LBC_CONV}'
    imports = ("custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)\n"
               if sparse else '')
    return (f"_base_ = '{STOCK_CONFIG}'\n{imports}"
            f"model = dict(\n    backbone=dict({backbone}),\n"
            f"    {_TINY if tiny else ''}\n    {_TEST_CFG})\n")


def run_tool(script, *args, timeout=300):
    """Run ``tools/<script>`` in a subprocess from the repository root."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', script), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)


def load_tool(name):
    """The package module behind ``tools/<name>.py`` (``cli(argv)`` returns the exit
    status, ``main(argv)`` raises)."""
    return importlib.import_module(f'lbc_mmdet.cli.{name}')


def build(config_path):
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    return MODELS.build(Config.fromfile(config_path).model)


def finish_lbc(model, seed=0):
    """Perturb the LBC scores and remove all candidates but one in every group."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in sparse_layers(model):
            if layer.nm_eligible:
                layer.scores.add_(torch.rand(layer.scores.shape, generator=gen))
                layer.remove_to(layer.num_candidates - 1)
    return model


def sd_checkpoint(model, **meta):
    return dict(state_dict=model.state_dict(), meta=meta)
