"""Parts (a) and (b) of the GPU check: 2:4 semi-structured products against the dense
product on every GEMM shape of the lowered backbone, and a whole lowered 2:4 backbone +
FPN against the dense one.

Errors are relative Frobenius errors against an fp32 reference of the same maths
(``||y - ref|| / ||ref||``); a result passes when it is finite and its error is within
the dtype's tolerance or at most twice that of the dense kernel in the same dtype (both
round to fp16/bf16; only the accumulation order differs).
"""
import contextlib
import copy
from typing import Callable, Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..deploy.backends import semi_structured_constraints
from ..deploy.latency import build_variants
from ..deploy.lowering import plan_model
from ..nm import from_groups, to_groups, topn_magnitude_mask

#: Relative-error tolerances: one GEMM, and a whole network.
GEMM_TOL = {torch.float16: 5e-3, torch.bfloat16: 3e-2, torch.float32: 1e-5}
MODEL_TOL = {torch.float16: 2e-2, torch.bfloat16: 8e-2, torch.float32: 1e-4}

Converter = Callable[[torch.Tensor, str], torch.Tensor]


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace('torch.', '')


def rel_err(y, ref) -> float:
    """``||y - ref|| / ||ref||`` over a tensor or a tuple of tensors (inf if not finite)."""
    if isinstance(y, (tuple, list)):
        return max(rel_err(a, b) for a, b in zip(y, ref))
    y = y.float()
    if not torch.isfinite(y).all():
        return float('inf')
    ref = ref.float()
    return float((y - ref).norm() / ref.norm().clamp_min(1e-30))


@contextlib.contextmanager
def exact_fp32():
    """fp32 references without TF32 (cuDNN allows TF32 convolutions by default)."""
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def _passes(err: float, err_dense: float, tol: float) -> bool:
    return err <= max(tol, 2.0 * err_dense)


def random_2to4(rows: int, cols: int, dtype: torch.dtype, device: torch.device,
                gen: torch.Generator) -> torch.Tensor:
    """A ``[rows, cols]`` matrix keeping the 2 largest of every 4 along each row."""
    w = torch.randn(rows, cols, generator=gen, device=device) / cols**0.5
    return (w * from_groups(topn_magnitude_mask(to_groups(w, 4), 2), w.shape)).to(dtype)


def check_gemm(M: int, K: int, N: int, dtype: torch.dtype, backend: str, order: str,
               device: torch.device, converter: Converter, seed: int = 0) -> Dict:
    """One 2:4 product ``Y = X @ W^T`` (``W`` 2:4 ``[M, K]``, ``X`` ``[N, K]``) in
    ``order`` (``dense_first``: ``F.linear(X, W_sparse)``; ``sparse_first``:
    ``(W_sparse @ X^T)^T``) against the fp32 and the dense product."""
    out = dict(M=M, K=K, N=N, dtype=_name(dtype), backend=backend, order=order)
    try:
        gen = torch.Generator(device=device).manual_seed(seed)
        limits = semi_structured_constraints(dtype, backend) or (1, 1)
        mp, kp = M + (-M) % limits[0], K + (-K) % limits[1]
        w = F.pad(random_2to4(M, K, dtype, device, gen), (0, kp - K, 0, mp - M))
        x = F.pad(torch.randn(N, K, generator=gen, device=device).to(dtype), (0, kp - K))
        with torch.no_grad(), exact_fp32():
            ref = F.linear(x.float(), w.float())
        with torch.no_grad():
            dense = F.linear(x, w)
            ws = converter(w.contiguous(), backend)
            y = F.linear(x, ws) if order == 'dense_first' else torch.mm(ws, x.t()).t()
        err, err_dense = rel_err(y, ref), rel_err(dense, ref)
        out.update(rel_err=err, rel_err_dense=err_dense,
                   max_abs_err=float((y.float() - ref).abs().max()),
                   ok=_passes(err, err_dense, GEMM_TOL[dtype]), error=None)
    except Exception as err:  # noqa: BLE001  (reported, the check goes on)
        out.update(rel_err=None, rel_err_dense=None, max_abs_err=None, ok=False,
                   error=f'{type(err).__name__}: {err}'.splitlines()[0])
    return out


def run_gemm_checks(shapes: Sequence[Dict], dtypes: Sequence[torch.dtype],
                    backends: Sequence[str], orders: Sequence[str], device: torch.device,
                    converter: Converter, log: Callable[[str], None] = print) -> List[Dict]:
    """:func:`check_gemm` for every shape x dtype x backend x order."""
    results = []
    for s in shapes:
        for dtype in dtypes:
            for backend in backends:
                for order in orders:
                    r = check_gemm(s['M'], s['K'], s['N'], dtype, backend, order, device,
                                   converter)
                    r['layers'] = list(s.get('layers', []))
                    results.append(r)
                    if not r['ok']:
                        log(f'(a) FAIL {r}')
    return results


def check_model(model: nn.Module, x: torch.Tensor, dtype: torch.dtype, backend: str,
                order: str, converter: Converter) -> Dict:
    """A 2:4 ``model`` (e.g. backbone + FPN) with its eligible convs lowered to 2:4 GEMMs
    against the dense model, both in ``dtype``, and an fp32 reference. ``model`` and
    ``x`` are on the device, fp32; ``model`` is left as it was."""
    out = dict(dtype=_name(dtype), backend=backend, order=order)
    try:
        with torch.no_grad(), exact_fp32():
            ref = copy.deepcopy(model).eval()(x)
        with torch.no_grad():
            dense = copy.deepcopy(model).to(dtype).to(memory_format=torch.channels_last)
            dense.eval()
            xd = x.to(dtype).contiguous(memory_format=torch.channels_last)
            plans = plan_model(dense, dtype=dtype, backend=backend)
            _, sparse, execution = build_variants(
                dense, plans, order, lambda w: converter(w, backend))
            y_dense, y_sparse = dense(xd), sparse(xd)
        ran = {k: sorted(n for n, (e, _) in execution.items() if e == k)
               for k in ('2:4', 'dense')}
        outputs = []
        for i, (a, b, r) in enumerate(zip(y_sparse, y_dense, ref)):
            outputs.append(dict(index=i, shape=list(r.shape), rel_err=rel_err(a, r),
                                rel_err_dense=rel_err(b, r),
                                max_abs_diff_vs_dense=float((a.float() - b.float())
                                                            .abs().max())))
        failed = {n: r for n, (e, r) in execution.items()
                  if e == 'dense' and r and r.startswith('conversion failed')}
        ok = bool(ran['2:4']) and not failed and all(
            _passes(o['rel_err'], o['rel_err_dense'], MODEL_TOL[dtype]) for o in outputs)
        out.update(layers_2to4=len(ran['2:4']), layers_dense=ran['dense'],
                   conversion_failures=failed, outputs=outputs, ok=ok, error=None)
    except Exception as err:  # noqa: BLE001
        out.update(ok=False, error=f'{type(err).__name__}: {err}'.splitlines()[0])
    return out
