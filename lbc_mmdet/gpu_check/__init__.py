"""The prepared GPU check (``bash tools/gpu_check.sh``; ``docs/deployment.md``).

On a CUDA GPU with compute capability >= 8.0 it checks 2:4 semi-structured products on
every GEMM shape of the lowered ResNet-50 backbone, a lowered 2:4 backbone + FPN against
the dense model, loss-scaled fp16 training of every registered N:M method (and one
scaled against one unscaled step of each), and times dense against 2:4. It needs torch
and lbc_mmdet only (no ``mmdet.models``, no mmcv ops): its ResNet and FPN are
:mod:`.models`.
"""
from .cli import CheckConfig, main, run_all

__all__ = ['CheckConfig', 'main', 'run_all']
