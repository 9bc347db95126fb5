"""Part (c) of the GPU check: loss-scaled mixed-precision training of every registered N:M
method.

Generic over the method registry (:func:`~lbc_mmdet.layers.method_names`): each method is
built through :func:`~lbc_mmdet.sparsify.sparsify` with its layers' default options and
driven only through the public layer protocol, so a new method is checked without a line
here. For every method:

- :func:`train_check` trains a 2:4 ResNet (+ pooled linear head) on random data with
  ``torch.autocast`` and a ``torch.amp.GradScaler``, setting the layers' ``nm_grad_scale``
  to the scaler's scale before each step as ``NMSparsityHook`` does, and calling
  ``nm_update`` with an ``NMScheduleState`` before the first step and after every step (as
  the hook does), through a window that ends before the last step; it checks that every
  loss was finite and every eligible layer ends exactly N:M;
- :func:`scale_invariance_check` makes one plain SGD step (no momentum, no weight decay)
  from identical copies of the model, once unscaled and once with the loss multiplied by a
  loss scale ``S`` and the gradients divided by ``S`` before the step, each sparse layer's
  ``nm_grad_scale`` set to ``S``; in fp32 (no TF32, deterministic cuDNN) both must give
  the same weights and the same method state (``nm_state_tensors``) up to float rounding.
  A method whose backward adds a term to the gradient, or accumulates the gradient,
  without accounting for ``nm_grad_scale`` (the term multiplied by it, the accumulated
  gradient divided by it) fails it.
"""
import contextlib
import copy
from typing import Callable, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import (
    NMScheduleState,
    get_method,
    method_names,
    set_nm_grad_scale,
    sparse_layers,
)
from ..sparsify import sparsify
from .kernels import exact_fp32
from .models import Classifier, ResNet, resnet50

#: Which convs are made sparse (the backbone's stages; the stem cannot be grouped by 4).
INCLUDE = ('backbone.layer*', )
#: The loss scale of :func:`scale_invariance_check` (``GradScaler``'s initial scale).
INVARIANCE_SCALE = 2.0**16
#: Largest relative difference :func:`scale_invariance_check` accepts, per tensor, between
#: the scaled and the unscaled step (relative to the unscaled step's change of the tensor):
#: fp32 rounding is far below it; a term left multiplied or divided by the scale is far
#: above.
INVARIANCE_TOL = 1e-4


def methods() -> List[str]:
    """The methods part (c) checks: every registered one."""
    return method_names()


def sparse_classifier(method: str, backbone_factory: Callable[[], ResNet] = resnet50,
                      **method_kwargs) -> nn.Module:
    """A :class:`Classifier` whose backbone stages are ``method``'s 2:4 layers."""
    model = Classifier(backbone_factory())
    get_method(method)  # an unknown method fails here, with the known ones listed
    sparsify(model, method, 2, 4, include=INCLUDE, **method_kwargs)
    return model


def _data(batch: int, size: int, device: torch.device, classes: int = 10, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=gen)
    y = torch.randint(0, classes, (batch, ), generator=gen)
    return x.to(device), y.to(device)


def _eligible(model: nn.Module) -> list:
    return [(name, lay) for name, lay in sparse_layers(model) if lay.nm_eligible]


def _update(layers, it: int, tf: float) -> None:
    """``nm_update`` of every layer at iteration ``it`` of the window ``[0, tf)``."""
    state = NMScheduleState(t=float(it), ti=0.0, tf=float(tf), iteration=it)
    for _, layer in layers:
        layer.nm_update(state)


def train_check(method: str, device: torch.device, steps: int = 30, batch: int = 8,
                size: int = 128, amp_dtype: torch.dtype = torch.float16,
                init_scale: float = 2.0**16,
                backbone_factory: Callable[[], ResNet] = resnet50) -> Dict:
    """Train ``method``'s 2:4 layers for ``steps`` loss-scaled AMP steps on ``device``
    (see module docstring) and report losses, skipped steps and exactness."""
    torch.manual_seed(0)
    model = sparse_classifier(method, backbone_factory).to(device).train()
    layers = _eligible(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, init_scale=init_scale)
    x, y = _data(batch, size, device)
    tf = max(1, (2 * steps) // 3)  # the window [0, tf) ends before the last step
    losses: List[float] = []
    scales: List[float] = []
    _update(layers, 0, tf)  # what NMSparsityHook does before training
    for it in range(steps):
        scales.append(scaler.get_scale())
        set_nm_grad_scale(model, scales[-1])  # what NMSparsityHook does
        with torch.autocast(device.type, dtype=amp_dtype):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))
        _update(layers, it + 1, tf)
    set_nm_grad_scale(model, 1.0)
    exact = sum(bool(layer.nm_is_exact()) for _, layer in layers)
    finite = all(torch.isfinite(torch.tensor(v)).item() for v in losses)
    skipped = sum(1 for a, b in zip(scales, scales[1:]) if b < a)  # a halving: inf grads
    return dict(method=method, display_name=get_method(method).display_name, steps=steps,
                batch=batch, size=size, amp_dtype=str(amp_dtype).replace('torch.', ''),
                tf=tf, first_loss=losses[0], last_loss=losses[-1], losses=losses,
                finite_losses=finite, skipped_steps=skipped, scales=sorted(set(scales)),
                eligible_layers=len(layers), exact_layers=exact,
                ok=finite and exact == len(layers) > 0 and skipped < steps)


@contextlib.contextmanager
def _deterministic():
    """fp32 without TF32 and deterministic cuDNN algorithms chosen by shape alone: the
    scaled and the unscaled step then run the same kernels (scaling by a power of two
    commutes with their rounding)."""
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with exact_fp32():
            yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags


def _tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Every parameter and every eligible layer's method state, detached copies."""
    out = {name: p.detach().clone() for name, p in model.named_parameters()}
    for name, layer in _eligible(model):
        for key, value in layer.nm_state_tensors().items():
            out.setdefault(f'{name}.{key}', value.detach().clone())
    return out


def _sgd_step(model: nn.Module, x, y, scale: float, lr: float) -> float:
    """One plain SGD step with the loss multiplied by ``scale`` and the gradients divided
    by it before the step, the layers told ``nm_grad_scale = scale``; returns the loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # no momentum, no weight decay
    set_nm_grad_scale(model, scale)
    try:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        (loss * scale).backward()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.div_(scale)
        opt.step()
    finally:
        set_nm_grad_scale(model, 1.0)
    return float(loss.detach())


def relative_difference(got: torch.Tensor, ref: torch.Tensor,
                        before: torch.Tensor) -> float:
    """``|got - ref| / |ref - before|`` (Frobenius norms, in float64): how far the scaled
    step's tensor is from the unscaled one, relative to what the unscaled step changed
    (at least ``1e-6 |before|``). Non-float tensors: 0 when equal, else infinity. Non-finite
    entries (a state's "not measured yet" NaN) must be the same in both, else the
    difference is infinite; the finite entries are compared."""
    if not ref.is_floating_point():
        return 0.0 if torch.equal(got, ref) else float('inf')
    got, ref, before = (t.detach().double() for t in (got, ref, before))
    for kind in (torch.isnan, torch.isposinf, torch.isneginf):
        if not torch.equal(kind(got), kind(ref)):
            return float('inf')
    got, ref, before = (torch.where(torch.isfinite(t), t, torch.zeros_like(t))
                        for t in (got, ref, before))
    diff = float((got - ref).norm())
    if diff == 0.0:
        return 0.0
    if diff != diff or diff == float('inf'):
        return float('inf')
    change = max(float((ref - before).norm()), 1e-6 * float(before.norm()), 1e-30)
    return diff / change


def scale_invariance_check(method: str, device: torch.device,
                           scale: float = INVARIANCE_SCALE, batch: int = 2,
                           size: int = 64, lr: float = 1.0, tol: float = INVARIANCE_TOL,
                           backbone_factory: Callable[[], ResNet] = resnet50) -> Dict:
    """One SGD step of ``method``'s 2:4 model at loss scale ``scale`` against the same
    step unscaled (module docstring), in fp32. Both copies are first put where training
    starts (``nm_update`` at iteration 0 of a window ``[0, 1)``, as ``NMSparsityHook``
    does before training); BatchNorm is in training mode. A large learning rate keeps the
    step clear of the weights' rounding. Reports the largest :func:`relative_difference`
    over every parameter and method state tensor, and which tensor it is."""
    x, y = _data(batch, size, device)
    with _deterministic():
        torch.manual_seed(0)
        base = sparse_classifier(method, backbone_factory).to(device).train()
        _update(_eligible(base), 0, 1.0)
        before = _tensors(base)
        ref, scaled = copy.deepcopy(base), copy.deepcopy(base)
        losses = [_sgd_step(ref, x, y, 1.0, lr), _sgd_step(scaled, x, y, scale, lr)]
    after_ref, after_scaled = _tensors(ref), _tensors(scaled)
    errors = {name: relative_difference(after_scaled[name], after_ref[name], before[name])
              for name in after_ref}
    worst = max(errors, key=errors.get) if errors else None
    max_err = errors[worst] if worst else None
    worst = worst if max_err else None  # every tensor equal: no worst one
    state = sum(len(layer.nm_state_tensors()) for _, layer in _eligible(ref))
    finite = all(v == v and abs(v) != float('inf') for v in losses)
    return dict(method=method, display_name=get_method(method).display_name, scale=scale,
                lr=lr, batch=batch, size=size, dtype='float32', loss=losses[0],
                tensors=len(errors), state_tensors=state,
                eligible_layers=len(_eligible(base)), worst_tensor=worst,
                max_rel_err=max_err, tol=tol,
                ok=finite and max_err is not None and max_err <= tol)
