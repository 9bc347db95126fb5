"""The N:M grouping used by Ampere/Hopper sparse tensor cores, NVIDIA ASP, SR-STE and LBC.

A Conv2d weight ``[O, I, kh, kw]`` is grouped as the rows of
``weight.permute(0, 2, 3, 1).reshape(-1, M)``: M consecutive input channels at a fixed
output channel and kernel position. A Linear weight ``[O, I]`` (or any 2-D weight) as the
rows of ``weight.reshape(-1, M)``.
"""
from typing import Optional, Sequence

import torch


def group_size_error(shape: Sequence[int], m: int, groups: int = 1) -> Optional[str]:
    """Why a weight of ``shape`` cannot be grouped by ``m``, or None if it can.

    Args:
        shape (Sequence[int]): The weight's shape, ``[O, I]`` or ``[O, I/groups, kh, kw]``.
        m (int): Group size.
        groups (int): Convolution groups (the input channels per group are ``shape[1]``).
    """
    if len(shape) not in (2, 4):
        return f'weight of rank {len(shape)} (only 2-D Linear and 4-D Conv2d weights)'
    if shape[1] % m != 0:
        return (f'{shape[1]} input channels per group are not divisible by M={m}')
    return None


def num_groups(shape: Sequence[int], m: int) -> int:
    """Number of N:M groups of a weight of ``shape``.

    Args:
        shape (Sequence[int]): The weight's shape.
        m (int): Group size.

    Returns:
        int: ``numel // m``.
    """
    numel = 1
    for s in shape:
        numel *= int(s)
    return numel // m


def to_groups(weight: torch.Tensor, m: int) -> torch.Tensor:
    """View/copy of ``weight`` as ``[G, M]`` rows (see module docstring).

    Args:
        weight (Tensor): ``[O, I, kh, kw]`` or 2-D weight, ``I % m == 0``.
        m (int): Group size.

    Returns:
        Tensor: ``[G, M]`` groups.
    """
    if weight.dim() == 4:
        return weight.permute(0, 2, 3, 1).reshape(-1, m)
    return weight.reshape(-1, m)


def from_groups(groups: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`to_groups`: ``[G, M]`` rows back to a weight of ``shape``.

    Args:
        groups (Tensor): ``[G, M]`` groups.
        shape (Sequence[int]): The weight's shape.

    Returns:
        Tensor: A (contiguous, for 4-D) tensor of ``shape``.
    """
    if len(shape) == 4:
        o, i, kh, kw = shape
        return groups.reshape(o, kh, kw, i).permute(0, 3, 1, 2).contiguous()
    return groups.reshape(tuple(shape))


def assign_groups(weight: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """In place ``weight[...] = from_groups(groups, weight.shape)`` in one strided pass
    (no intermediate copy); returns ``weight``.

    Args:
        weight (Tensor): The weight written in place, ``[O, I, kh, kw]`` or 2-D.
        groups (Tensor): ``[G, M]`` groups of the weight's shape.

    Returns:
        Tensor: ``weight``.
    """
    m = groups.shape[-1]
    if weight.dim() == 4:
        o, i, kh, kw = weight.shape
        weight.permute(0, 2, 3, 1).copy_(groups.view(o, kh, kw, i))
    else:
        weight.view(-1, m).copy_(groups)
    return weight


def grouped_product(a: torch.Tensor, b: torch.Tensor, m: int) -> torch.Tensor:
    """``to_groups(a * b, m)`` in one pass (the product is written in grouped order).

    Args:
        a (Tensor): ``[O, I, kh, kw]`` or 2-D tensor.
        b (Tensor): A tensor of ``a``'s shape.
        m (int): Group size.

    Returns:
        Tensor: ``[G, M]`` groups of the product.
    """
    if a.dim() == 4:
        o, i, kh, kw = a.shape
        out = torch.empty((o, kh, kw, i), dtype=torch.result_type(a, b), device=a.device)
        torch.mul(a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1), out=out)
        return out.view(-1, m)
    return (a * b).reshape(-1, m)
