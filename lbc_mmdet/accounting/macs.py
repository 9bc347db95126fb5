"""Dense multiply-adds (MACs) of one call of a convolution or linear layer."""
import math
from typing import Iterable, Tuple

import torch
import torch.nn as nn

#: the module types whose multiply-adds are counted
COUNTED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                 nn.ConvTranspose3d, nn.Linear)


def conv_macs(out_numel: int, in_channels: int, groups: int,
              kernel_size: Iterable[int]) -> int:
    """Dense multiply-adds of a convolution: ``out_numel * in_channels/groups * prod(k)``.

    Args:
        out_numel (int): Number of output elements (batch included).
        in_channels (int): Input channels of the layer.
        groups (int): Convolution groups.
        kernel_size (Iterable[int]): The kernel's spatial size, e.g. ``(3, 3)``.
    """
    if in_channels % groups:
        raise ValueError(f'in_channels={in_channels} is not divisible by groups={groups}')
    return int(out_numel) * (in_channels // groups) * math.prod(int(k) for k in kernel_size)


def transposed_conv_macs(in_numel: int, out_channels: int, groups: int,
                         kernel_size: Iterable[int]) -> int:
    """Dense multiply-adds of a transposed convolution: every input element is multiplied
    by ``out_channels/groups * prod(k)`` weights.

    Args:
        in_numel (int): Elements of the input.
        out_channels (int): Output channels.
        groups (int): Convolution groups.
        kernel_size (Iterable[int]): The kernel's spatial size.

    Returns:
        int: The multiply-adds.
    """
    if out_channels % groups:
        raise ValueError(
            f'out_channels={out_channels} is not divisible by groups={groups}')
    return int(in_numel) * (out_channels // groups) * math.prod(int(k) for k in kernel_size)


def linear_macs(out_numel: int, in_features: int) -> int:
    """Dense multiply-adds of a linear layer: ``out_numel * in_features``.

    Args:
        out_numel (int): Elements of the output.
        in_features (int): Input features.

    Returns:
        int: The multiply-adds.
    """
    return int(out_numel) * int(in_features)


def is_counted(module: nn.Module) -> bool:
    """Whether :func:`layer_macs` counts ``module`` (a conv / transposed conv / linear).

    Args:
        module (nn.Module): The module.

    Returns:
        bool: Whether it is counted.
    """
    return isinstance(module, COUNTED_TYPES)


def layer_macs(module: nn.Module, inputs: Tuple, output) -> int:
    """Dense multiply-adds of one call of ``module`` (its forward hook's arguments).

    Returns 0 for modules that are not counted or whose output is not a tensor.

    Args:
        module (nn.Module): The module.
        inputs (tuple): Its positional inputs.
        output (Any): Its output.

    Returns:
        int: The multiply-adds.
    """
    if isinstance(module, nn.Linear):
        if not torch.is_tensor(output):
            return 0
        return linear_macs(output.numel(), module.in_features)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        x = inputs[0] if inputs else None
        if not torch.is_tensor(x):
            return 0
        return transposed_conv_macs(x.numel(), module.out_channels, module.groups,
                                    module.kernel_size)
    if isinstance(module, nn.modules.conv._ConvNd):
        if not torch.is_tensor(output):
            return 0
        return conv_macs(output.numel(), module.in_channels, module.groups,
                         module.kernel_size)
    return 0


