"""Which 2:4 semi-structured backend runs on which GPU, in which call order, tuned how.

PyTorch has two backends behind ``torch.sparse.to_sparse_semi_structured``:

- **cuSPARSELt** (``SparseSemiStructuredTensorCUSPARSELT``, the default when PyTorch was
  built with it, ``torch.backends.cusparselt.is_available()``): fp16/bf16 2:4 kernels on
  compute capability >= 8.0, Hopper included. Without tuning every product uses algorithm
  0; ``torch._cslt_sparse_mm_search`` picks the fastest for one problem and the
  tensor's ``alg_id_cusparselt`` makes later products use it (:func:`tune_cusparselt`).
- **CUTLASS** (``SparseSemiStructuredTensorCUTLASS``, forced with
  ``SparseSemiStructuredTensor._FORCE_CUTLASS``): its kernels are compiled for compute
  capability 8.x only, so on Hopper (9.0) only cuSPARSELt serves 2:4.

Neither has an fp32 2:4 kernel (CUTLASS fp32 is 1:2, TF32; cuSPARSELt's fp32 is not
exposed for 2:4 in PyTorch). :func:`choose_backend` is a pure function of the device's
capability, the availability flag, the dtype and the requested backend, so its rules are
tested without a GPU; :func:`probe_device` reads them on the machine.

Call order (:func:`default_gemm_order`): a lowered conv computes ``Y = X @ W^T``. With the
dense operand first (``F.linear(X, W_sparse)``) cuSPARSELt writes the result transposed in
the same kernel, but CUTLASS computes ``W @ X^T`` and copies it into ``[N, O]`` (one output
transpose per layer); with the sparse operand first (``W_sparse @ X^T``) no backend
copies the output, which is then channel-major (``[O, B * H * W]``).
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..errors import LBCError

#: dtypes whose semi-structured kernels are 2:4 (fp32 CUTLASS kernels are 1:2 TF32, and
#: cuSPARSELt has no fp32 kernel in PyTorch).
ACCELERATED_DTYPES = (torch.float16, torch.bfloat16)
BACKENDS = ('cusparselt', 'cutlass')
#: Minimum compute capability of the sparse tensor cores (Ampere).
MIN_CAPABILITY = (8, 0)
#: Fallback shape constraints (sparse operand rows, cols) if PyTorch's tables move.
_FALLBACK_CONSTRAINTS = {
    'cusparselt': {torch.float16: (16, 16), torch.bfloat16: (16, 16)},
    'cutlass': {torch.float16: (32, 64), torch.bfloat16: (32, 64)},
}
#: GEMM call orders of :class:`~lbc_mmdet.deploy.lowering.LoweredConv2d`.
GEMM_ORDERS = ('dense_first', 'sparse_first')


def semi_structured_constraints(dtype: torch.dtype,
                                backend: str = 'cusparselt') -> Optional[Tuple[int, int]]:
    """``(row_multiple, col_multiple)`` the sparse operand of ``backend``'s 2:4 kernel must
    have for ``dtype`` (PyTorch's ``_DTYPE_SHAPE_CONSTRAINTS``), or None when the backend
    has no 2:4 kernel for that dtype.

    Args:
        dtype (torch.dtype): The compute dtype.
        backend (str): One of :data:`BACKENDS`. Defaults to ``'cusparselt'``.

    Returns:
        tuple[int, int] or None: The row and column multiples, or None.
    """
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}; choose from {BACKENDS}')
    if dtype not in ACCELERATED_DTYPES:
        return None
    cls_name = ('SparseSemiStructuredTensorCUSPARSELT' if backend == 'cusparselt' else
                'SparseSemiStructuredTensorCUTLASS')
    cls = getattr(torch.sparse, cls_name, None)
    table = getattr(cls, '_DTYPE_SHAPE_CONSTRAINTS', None) or {}
    if dtype in table:
        c = table[dtype]
        return int(c.sparse_min_rows), int(c.sparse_min_cols)
    return _FALLBACK_CONSTRAINTS[backend].get(dtype)


def semi_structured_support(device: Optional[torch.device] = None) -> Tuple[bool, str]:
    """Whether this process can run 2:4 semi-structured kernels, and a one-line why.

    Args:
        device (torch.device, optional): The CUDA device. Defaults to None (the current one).

    Returns:
        tuple[bool, str]: Whether it can, and the GPU's name or why not.
    """
    if not torch.cuda.is_available():
        return False, 'no CUDA GPU available'
    idx = (torch.device(device).index if device is not None else None)
    idx = torch.cuda.current_device() if idx is None else idx
    cap = torch.cuda.get_device_capability(idx)
    name = torch.cuda.get_device_name(idx)
    if tuple(cap) < MIN_CAPABILITY:
        return False, (f'{name} has compute capability {cap[0]}.{cap[1]} < '
                       f'{MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} (no sparse tensor cores)')
    return True, f'{name} (compute capability {cap[0]}.{cap[1]})'


def default_backend() -> str:
    """``'cusparselt'`` when PyTorch was built with cuSPARSELt, else ``'cutlass'``."""
    cusparselt = getattr(torch.backends, 'cusparselt', None)
    if cusparselt is not None and cusparselt.is_available():
        return 'cusparselt'
    return 'cutlass'


def to_semi_structured(matrix: torch.Tensor, backend: str = 'cusparselt') -> torch.Tensor:
    """``torch.sparse.to_sparse_semi_structured`` of a 2:4 CUDA ``matrix`` (already padded
    to the backend's constraints), with ``backend`` forced."""
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}; choose from {BACKENDS}')
    if not matrix.is_cuda:
        raise RuntimeError('semi-structured sparse tensors need a CUDA tensor')
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured
    previous = SparseSemiStructuredTensor._FORCE_CUTLASS
    SparseSemiStructuredTensor._FORCE_CUTLASS = backend == 'cutlass'
    try:
        return to_sparse_semi_structured(matrix.contiguous())
    finally:
        SparseSemiStructuredTensor._FORCE_CUTLASS = previous


class BackendUnavailableError(LBCError):
    """The requested 2:4 backend cannot run on this device (the message says why)."""


@dataclass(frozen=True)
class BackendChoice:
    """The backend that runs (None: no 2:4 kernel here) and a one-line why."""
    backend: Optional[str]
    reason: str


def _cap(capability: Tuple[int, int]) -> str:
    return f'{capability[0]}.{capability[1]}'


def backend_problem(backend: str, capability: Tuple[int, int],
                    cusparselt_available: bool) -> Optional[str]:
    """Why ``backend`` cannot run 2:4 on a GPU of ``capability`` (None: it can)."""
    if backend == 'cusparselt':
        if not cusparselt_available:
            return ('this PyTorch build has no cuSPARSELt '
                    '(torch.backends.cusparselt.is_available() is False)')
        return None
    if backend == 'cutlass':
        if capability[0] != 8:
            return ("PyTorch's CUTLASS semi-structured kernels are compiled for compute "
                    f'capability 8.x only; this GPU is {_cap(capability)}')
        return None
    raise ValueError(f'unknown backend {backend!r}; choose from {BACKENDS}')


def choose_backend(capability: Optional[Tuple[int, int]],
                   cusparselt_available: bool,
                   dtype: torch.dtype,
                   requested: str = 'auto') -> BackendChoice:
    """The 2:4 backend for a device, as a pure function (see module docstring).

    Args:
        capability (tuple, optional): The GPU's compute capability; None without CUDA.
        cusparselt_available (bool): ``torch.backends.cusparselt.is_available()``.
        dtype (torch.dtype): Compute dtype.
        requested (str): ``'auto'`` (cuSPARSELt where available, CUTLASS only on 8.x),
            ``'cusparselt'`` or ``'cutlass'``.

    Returns:
        BackendChoice: ``backend`` None when ``'auto'`` finds no 2:4 kernel.

    Raises:
        BackendUnavailableError: ``requested`` names a backend that cannot run here.
    """
    if requested != 'auto' and requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose from {('auto',) + BACKENDS}")
    why = None
    if capability is None:
        why = 'no CUDA GPU available'
    elif tuple(capability) < MIN_CAPABILITY:
        why = (f'compute capability {_cap(capability)} < {_cap(MIN_CAPABILITY)} '
               '(no sparse tensor cores)')
    elif dtype not in ACCELERATED_DTYPES:
        why = (f'{str(dtype).replace("torch.", "")} has no 2:4 kernel (fp16/bf16 only: '
               "CUTLASS's fp32 kernels are 1:2 TF32 and cuSPARSELt has no fp32 2:4 kernel "
               'in PyTorch)')
    if why is not None:
        if requested == 'auto':
            return BackendChoice(None, why)
        raise BackendUnavailableError(f'backend {requested} cannot run here: {why}')
    capability = (int(capability[0]), int(capability[1]))
    problems = {b: backend_problem(b, capability, cusparselt_available) for b in BACKENDS}
    if requested != 'auto':
        if problems[requested]:
            others = [b for b in BACKENDS if b != requested and not problems[b]]
            hint = f' (use --backend {others[0]})' if others else ''
            raise BackendUnavailableError(
                f'backend {requested} cannot run on this device: {problems[requested]}'
                f'{hint}')
        return BackendChoice(requested, f'{requested} as requested, compute capability '
                             f'{_cap(capability)}')
    for backend in ('cusparselt', 'cutlass'):
        if problems[backend] is None:
            rest = '' if backend == 'cusparselt' else f' ({problems["cusparselt"]})'
            return BackendChoice(backend, f'{backend}: the default on compute capability '
                                 f'{_cap(capability)}{rest}')
    return BackendChoice(None, 'no 2:4 backend here: ' + '; '.join(problems.values()))


def default_gemm_order(backend: Optional[str]) -> str:
    """``'dense_first'`` for cuSPARSELt (its result is transposed in the kernel),
    ``'sparse_first'`` for CUTLASS (no output transpose copy)."""
    return 'sparse_first' if backend == 'cutlass' else 'dense_first'


def probe_device(device: Optional[torch.device] = None) -> Dict:
    """What :func:`choose_backend` and the reports need to know about this process:
    ``capability`` (None without CUDA), ``device_name``, ``cusparselt_available`` and the
    versions (``torch``, ``cuda``, ``cudnn``, ``cusparselt`` as
    ``torch.backends.cusparselt.version()`` gives it, e.g. 602 for 0.6.2)."""
    cusparselt = getattr(torch.backends, 'cusparselt', None)
    available = bool(cusparselt is not None and cusparselt.is_available())
    info = dict(torch=torch.__version__, cuda=torch.version.cuda, cudnn=None,
                cusparselt=None, cusparselt_available=available, capability=None,
                device_name='CPU')
    if available:
        try:
            info['cusparselt'] = cusparselt.version()
        except Exception:  # noqa: BLE001  (reporting only)
            info['cusparselt'] = None
    if torch.backends.cudnn.is_available():
        info['cudnn'] = torch.backends.cudnn.version()
    if torch.cuda.is_available():
        idx = torch.device(device).index if device is not None else None
        idx = torch.cuda.current_device() if idx is None else idx
        info['capability'] = list(torch.cuda.get_device_capability(idx))
        info['device_name'] = torch.cuda.get_device_name(idx)
    return info


def _cslt_dense_operand(weight: torch.Tensor, dense: torch.Tensor,
                        transpose: bool) -> torch.Tensor:
    """The dense matrix PyTorch's ``semi_structured::cusparselt_mm`` hands cuSPARSELt
    (padded to the dense minimum shape as it does)."""
    c = type(weight)._DTYPE_SHAPE_CONSTRAINTS[dense.dtype]
    rows, cols = dense.shape
    pad_r, pad_c = (-rows) % c.dense_min_rows, (-cols) % c.dense_min_cols
    if pad_r or pad_c:
        dense = F.pad(dense, (0, pad_c, 0, pad_r))
    return dense.t() if transpose else dense


def tune_cusparselt(weight: torch.Tensor, operand: torch.Tensor, order: str) -> int:
    """Pick cuSPARSELt's algorithm for ``weight`` (a cuSPARSELt semi-structured tensor)
    times ``operand`` in ``order`` (``torch._cslt_sparse_mm_search`` on the very problem
    the layer runs) and make the tensor use it; returns the algorithm id.

    ``operand`` is the layer's dense GEMM input: ``X`` ``[N, K]`` for ``'dense_first'``
    (``F.linear(X, W)``), ``X^T`` ``[K, N]`` for ``'sparse_first'`` (``W @ X^T``).
    """
    if order not in GEMM_ORDERS:
        raise ValueError(f'unknown GEMM order {order!r}; choose from {GEMM_ORDERS}')
    if order == 'dense_first':
        dense, fuse = _cslt_dense_operand(weight, operand, transpose=True), True
    else:
        dense, fuse = _cslt_dense_operand(weight, operand, transpose=False), False
    alg = int(torch._cslt_sparse_mm_search(weight.packed, dense, transpose_result=fuse))
    weight.alg_id_cusparselt = alg
    return alg


__all__ = [
    'ACCELERATED_DTYPES', 'BACKENDS', 'MIN_CAPABILITY', 'GEMM_ORDERS',
    'semi_structured_constraints', 'semi_structured_support', 'default_backend',
    'to_semi_structured', 'BackendUnavailableError', 'BackendChoice', 'backend_problem',
    'choose_backend', 'default_gemm_order', 'probe_device', 'tune_cusparselt'
]
