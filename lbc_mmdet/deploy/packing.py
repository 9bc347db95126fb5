"""2:4 compression of a weight into the values + metadata layout of PyTorch's
semi-structured sparse (CUTLASS) kernels, and back.

The matrix that is compressed is the layer's GEMM matrix (:func:`gemm_matrix`): a Linear
weight ``[O, I]`` as it is, a Conv2d weight ``[O, I, kh, kw]`` as
``weight.permute(0, 2, 3, 1).reshape(O, kh * kw * I)`` (channels-last order), whose rows'
consecutive groups of 4 are exactly the project's N:M groups (:mod:`lbc_mmdet.nm.grouping`). Any N:M
pattern with ``N <= 2`` and ``M`` a multiple of 4 (2:4, 1:4, 2:8, 1:16, ...) keeps at most 2
non-zeros in every such group of 4, so it packs too.

Layout (``LAYOUT``), for a padded ``[R, C]`` matrix:

- ``values``: ``[R, C // 2]``, the weight's dtype. Every group of 4 contributes 2 values in
  increasing column order; a group with fewer than 2 non-zeros contributes a zero (taken
  from a pruned position) as filler.
- ``meta``: ``[R, C // 16]`` ``int16``: the two 2-bit column indices of each group (4 bits
  a group, 4 groups an ``int16``), reordered into CUTLASS' interleaved column-major tile
  layout. It is what ``torch.sparse._semi_structured_conversions.
  sparse_semi_structured_from_dense_cutlass`` returns, i.e. the ``packed``/``meta`` pair of a
  ``SparseSemiStructuredTensorCUTLASS``.

fp16 and bf16 are packed by PyTorch's own converter (pure torch, runs on CPU; on a CUDA GPU
``torch.sparse.to_sparse_semi_structured`` uses the same converter for its CUTLASS backend).
PyTorch's converter treats fp32 as 1:2 sparse (TF32 sparse tensor cores, pairs of fp32
values) which a 2:4 weight generally is not, so fp32 is packed here with the *same*
metadata as fp16/bf16 and fp32 values in the same order (PyTorch's converter packs the
position of each non-zero, which says which fp32 value goes to which slot): casting
``values`` to fp16/bf16 gives that dtype's kernel operand. The fp16/bf16 kernels need the
matrix padded; padding is added with zeros and
recorded (``padding``) so that :func:`unpack_2to4` returns the original weight.

Round trip: :func:`unpack_2to4` returns every kept value bit-exactly; pruned positions come
back as ``+0.0`` (a ``-0.0`` produced by ``weight * mask`` is a zero like any other; the
exporter writes ``+0.0``).
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch.sparse._semi_structured_conversions import (
    sparse_semi_structured_from_dense_cutlass,
    sparse_semi_structured_to_dense_cutlass,
)

#: Name (and version) of the packed layout.
LAYOUT = 'cutlass_2to4_v1'
#: dtypes :func:`pack_2to4` accepts.
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
#: Row multiple: the converter's int16 metadata tiles (32 rows) and the CUTLASS
#: fp16/bf16 kernel's ``sparse_min_rows``.
ROW_MULTIPLE = 32
#: Column multiple: the CUTLASS fp16/bf16 kernel's ``sparse_min_cols`` (the converter
#: itself needs 16; cuSPARSELt needs 16).
COL_MULTIPLE = 64

_INT_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16,
             torch.float32: torch.int32}


def gemm_matrix(weight: torch.Tensor) -> torch.Tensor:
    """The layer's GEMM matrix ``[O, K]``: ``weight`` itself for 2-D, the channels-last
    ``weight.permute(0, 2, 3, 1).reshape(O, -1)`` for a 4-D conv weight."""
    if weight.dim() == 4:
        return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    if weight.dim() == 2:
        return weight
    raise ValueError(f'expected a 2-D (Linear) or 4-D (Conv2d) weight, got shape '
                     f'{tuple(weight.shape)}')


def from_gemm_matrix(matrix: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`gemm_matrix` for a weight of ``shape``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        o, i, kh, kw = shape
        return matrix.reshape(o, kh, kw, i).permute(0, 3, 1, 2).contiguous()
    return matrix.reshape(shape).contiguous()


def count_2to4_violations(matrix: torch.Tensor) -> int:
    """Groups of 4 consecutive columns holding more than 2 non-zeros (``matrix``'s
    columns must be a multiple of 4)."""
    if matrix.shape[-1] % 4:
        raise ValueError(f'{matrix.shape[-1]} columns are not a multiple of 4')
    return int(((matrix.reshape(-1, 4) != 0).sum(dim=1) > 2).sum())


def padding_for(rows: int, cols: int, row_multiple: int = ROW_MULTIPLE,
                col_multiple: int = COL_MULTIPLE) -> Tuple[int, int]:
    """Zero rows and columns to append so the shape is a positive multiple of
    ``(row_multiple, col_multiple)``."""
    pad_r = (-rows) % row_multiple if rows else row_multiple
    pad_c = (-cols) % col_multiple if cols else col_multiple
    return pad_r, pad_c


@dataclass
class Packed2to4:
    """A 2:4-compressed weight (see the module docstring for the layout).

    Attributes:
        values (Tensor): ``[R, C // 2]`` kept values (the weight's dtype).
        meta (Tensor): ``[R, C // 16]`` int16 CUTLASS metadata.
        shape (tuple): The original weight's shape.
        padding (tuple): ``(rows, cols)`` of zeros appended to the GEMM matrix.
        layout (str): :data:`LAYOUT`.
    """
    values: torch.Tensor
    meta: torch.Tensor
    shape: Tuple[int, ...]
    padding: Tuple[int, int]
    layout: str = LAYOUT

    @property
    def gemm_shape(self) -> Tuple[int, int]:
        """``(O, K)`` of the unpadded GEMM matrix."""
        return (self.values.shape[0] - self.padding[0],
                2 * self.values.shape[1] - self.padding[1])

    @property
    def padded_shape(self) -> Tuple[int, int]:
        """``(R, C)``: the padded GEMM matrix the kernels take."""
        return (self.values.shape[0], 2 * self.values.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    def nbytes(self) -> int:
        """Bytes of ``values`` + ``meta``."""
        return (self.values.numel() * self.values.element_size() +
                self.meta.numel() * self.meta.element_size())

    def to_dict(self) -> Dict[str, Any]:
        """Plain data (tensors, ints, str) that ``torch.load(weights_only=True)`` reads."""
        return dict(layout=self.layout, values=self.values, meta=self.meta,
                    shape=list(self.shape), padding=list(self.padding))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'Packed2to4':
        if data.get('layout') != LAYOUT:
            raise ValueError(f'unknown packed layout {data.get("layout")!r} '
                             f'(expected {LAYOUT!r})')
        return cls(values=data['values'], meta=data['meta'],
                   shape=tuple(int(s) for s in data['shape']),
                   padding=tuple(int(p) for p in data['padding']))


def _pack_by_positions(padded: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Values and metadata of any dtype in the fp16 layout: PyTorch's converter packs the
    1-based position of every non-zero within its group (fp16 codes 1..4, 0 for zeros),
    which gives the metadata and, for every value slot, the column to gather."""
    rows, cols = padded.shape
    nonzero = padded != 0
    position = (torch.arange(cols, device=padded.device) % 4 + 1).to(torch.float16)
    codes = torch.where(nonzero, position, torch.zeros((), dtype=torch.float16,
                                                       device=padded.device))
    slot_codes, meta = sparse_semi_structured_from_dense_cutlass(codes)
    # value slot j of a row belongs to group j // 2, whose first column is 4 * (j // 2)
    group_start = torch.arange(cols // 2, device=padded.device) // 2 * 4
    index = group_start + (slot_codes.long() - 1).clamp(min=0)
    values = padded.gather(1, index)
    # a filler slot (code 0: a group with fewer than 2 non-zeros) holds +0.0
    values = torch.where(slot_codes > 0, values, torch.zeros((), dtype=padded.dtype,
                                                             device=padded.device))
    return values, meta


def pack_2to4(weight: torch.Tensor) -> Packed2to4:
    """Compress a 2:4-sparse ``weight`` (Linear ``[O, I]`` or Conv2d ``[O, I, kh, kw]``).

    Args:
        weight (Tensor): fp16, bf16 or fp32; every group of 4 consecutive elements of a
            GEMM-matrix row (:func:`gemm_matrix`) holds at most 2 non-zeros.

    Returns:
        Packed2to4: values, metadata, the weight's shape and the padding added.

    Raises:
        ValueError: A dtype or shape that cannot be packed, or groups with more than 2
            non-zeros (their number is given).
    """
    if weight.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f'cannot pack a {weight.dtype} weight; supported dtypes: '
                         f'{[str(d) for d in SUPPORTED_DTYPES]}')
    matrix = gemm_matrix(weight.detach())
    rows, cols = matrix.shape
    if cols % 4:
        raise ValueError(f'weight of shape {tuple(weight.shape)}: its GEMM matrix has '
                         f'{cols} columns, not a multiple of 4 (the input channels must '
                         'be divisible by 4)')
    bad = count_2to4_violations(matrix)
    if bad:
        raise ValueError(f'weight of shape {tuple(weight.shape)} is not 2:4 sparse: {bad} '
                         f'of {rows * cols // 4} groups of 4 hold more than 2 non-zeros')
    pad_r, pad_c = padding_for(rows, cols)
    padded = torch.nn.functional.pad(matrix, (0, pad_c, 0, pad_r)).contiguous()
    if weight.dtype in (torch.float16, torch.bfloat16):
        values, meta = sparse_semi_structured_from_dense_cutlass(padded)
    else:
        values, meta = _pack_by_positions(padded)
    return Packed2to4(values=values.contiguous(), meta=meta.contiguous(),
                      shape=tuple(int(s) for s in weight.shape), padding=(pad_r, pad_c))


def unpack_2to4(packed: Packed2to4, device: Optional[torch.device] = None) -> torch.Tensor:
    """Rebuild the dense weight from :func:`pack_2to4`'s output (kept values bit-exact,
    pruned positions ``+0.0``)."""
    values, meta = packed.values, packed.meta
    if device is not None:
        values, meta = values.to(device), meta.to(device)
    if values.dtype not in _INT_VIEW:
        raise ValueError(f'cannot unpack {values.dtype} values')
    # scatter the raw bits (an integer view) so that no float semantics can alter them
    bits = sparse_semi_structured_to_dense_cutlass(
        values.contiguous().view(_INT_VIEW[values.dtype]), meta)
    dense = bits.view(values.dtype)
    rows, cols = packed.gemm_shape
    return from_gemm_matrix(dense[:rows, :cols], packed.shape)


__all__ = [
    'LAYOUT', 'SUPPORTED_DTYPES', 'ROW_MULTIPLE', 'COL_MULTIPLE', 'Packed2to4',
    'gemm_matrix', 'from_gemm_matrix', 'count_2to4_violations', 'padding_for',
    'pack_2to4', 'unpack_2to4'
]
