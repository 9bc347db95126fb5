"""Part (c) of the GPU check: loss-scaled mixed-precision training of LBC 2:4 and SR-STE
2:4 layers.

This is a check script, so it names the two methods (through the registry and
``sparsify``; it uses only their public protocol and SR-STE's ``lambda_w`` option).
Each trains a ResNet (+ pooled linear head) on random data with ``torch.autocast`` and a
``torch.amp.GradScaler``, setting the layers' ``nm_grad_scale`` to the scaler's scale
before each step as ``NMSparsityHook`` does, and driving the layers through an
``NMScheduleState`` schedule whose window ends before the last step; it then checks that
every loss was finite and every eligible layer is exactly N:M (LBC: one candidate left).
:func:`srste_decay_check` checks that SR-STE's decay reaches ``weight.grad`` as
``lambda_w * (1 - mask) * w`` after unscaling, whatever the loss scale.
"""
from typing import Callable, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import NMScheduleState, get_method, set_nm_grad_scale, sparse_layers
from ..sparsify import sparsify
from .models import Classifier, ResNet, resnet50

#: The methods part (c) trains.
METHODS = ('lbc', 'srste')
#: Which convs are made sparse (the backbone's stages; the stem cannot be grouped by 4).
INCLUDE = ('backbone.layer*', )


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


def train_check(method: str, device: torch.device, steps: int = 30, batch: int = 8,
                size: int = 128, amp_dtype: torch.dtype = torch.float16,
                init_scale: float = 2.0**16,
                backbone_factory: Callable[[], ResNet] = resnet50) -> Dict:
    """Train ``method``'s 2:4 layers for ``steps`` loss-scaled AMP steps on ``device``
    (see module docstring) and report losses, skipped steps and exactness."""
    torch.manual_seed(0)
    model = sparse_classifier(method, backbone_factory).to(device).train()
    layers = [lay for _, lay in sparse_layers(model) if lay.nm_eligible]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, init_scale=init_scale)
    x, y = _data(batch, size, device)
    tf = max(1, (2 * steps) // 3)  # the window [0, tf) ends before the last step
    losses: List[float] = []
    scales: List[float] = []
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
        state = NMScheduleState(t=float(it + 1), ti=0.0, tf=float(tf), iteration=it + 1)
        for layer in layers:
            layer.nm_update(state)
    set_nm_grad_scale(model, 1.0)
    exact = sum(bool(layer.nm_is_exact()) for layer in layers)
    finite = all(torch.isfinite(torch.tensor(v)).item() for v in losses)
    skipped = sum(1 for a, b in zip(scales, scales[1:]) if b < a)  # a halving: inf grads
    return dict(method=method, steps=steps, batch=batch, size=size,
                amp_dtype=str(amp_dtype).replace('torch.', ''), tf=tf,
                first_loss=losses[0], last_loss=losses[-1], losses=losses,
                finite_losses=finite, skipped_steps=skipped, scales=sorted(set(scales)),
                eligible_layers=len(layers), exact_layers=exact,
                ok=finite and exact == len(layers) > 0 and skipped < steps)


def _weight_grads(model: nn.Module, x, y, scale: float, amp_dtype: torch.dtype,
                  device: torch.device) -> Dict[str, torch.Tensor]:
    """The unscaled ``weight.grad`` of every eligible sparse layer after one
    ``GradScaler`` backward at ``scale`` (layers told ``nm_grad_scale = scale``)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler(device.type, init_scale=scale)
    set_nm_grad_scale(model, scaler.get_scale())
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=amp_dtype):
        loss = F.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    set_nm_grad_scale(model, 1.0)
    return {n: lay.weight.grad.detach().clone() for n, lay in sparse_layers(model)
            if lay.nm_eligible}


def _srste_model(lambda_w: float, backbone_factory, x, device) -> nn.Module:
    torch.manual_seed(0)  # the same weights for every lambda_w
    model = sparse_classifier('srste', backbone_factory, lambda_w=lambda_w).to(device)
    with torch.no_grad():
        model.backbone.train()
        model(x)  # BatchNorm statistics of this batch: normalised activations
    return model.eval()


def srste_decay_check(device: torch.device, scales=(2.0**16, 2.0**12, 2.0**8),
                      amp_dtype: torch.dtype = torch.float16, lambda_w: float = 0.1,
                      batch: int = 4, size: int = 64,
                      backbone_factory: Callable[[], ResNet] = resnet50) -> Dict:
    """SR-STE's decay after unscaling: ``grad(lambda_w) - grad(0)`` at a loss scale
    against ``lambda_w * (1 - mask) * w`` for every layer (BatchNorm in eval mode, cuDNN
    deterministic, so both backwards agree up to rounding; a large ``lambda_w`` keeps the
    decay clear of that rounding). The first of ``scales`` whose gradients are finite is
    used (as a GradScaler backs off). Without ``nm_grad_scale`` the decay would arrive
    divided by the scale."""
    x, y = _data(batch, size, device)
    models = {lam: _srste_model(lam, backbone_factory, x, device) for lam in (lambda_w, 0.0)}
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    grads, used = {}, None
    try:
        for scale in scales:
            grads = {lam: _weight_grads(models[lam], x, y, scale, amp_dtype, device)
                     for lam in models}
            if all(torch.isfinite(g).all() for gs in grads.values() for g in gs.values()):
                used = scale
                break
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags
    out = dict(scale=used, scales_tried=list(scales), lambda_w=lambda_w,
               amp_dtype=str(amp_dtype).replace('torch.', ''), layers=len(grads[0.0]))
    if used is None:
        return dict(out, max_rel_err=None, ok=False,
                    error='the gradients overflowed at every loss scale tried')
    worst = 0.0
    for name, layer in sparse_layers(models[lambda_w]):
        if not layer.nm_eligible:
            continue
        w = layer.weight.detach()
        expected = lambda_w * (1 - layer.nm_mask().to(w.dtype)) * w
        got = grads[lambda_w][name] - grads[0.0][name]
        worst = max(worst, float((got - expected).norm() / expected.norm().clamp_min(1e-30)))
    return dict(out, max_rel_err=worst, ok=worst <= 1e-2)
