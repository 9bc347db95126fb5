"""What bounds a sparse method's extra training-step cost: its weight-side work, timed
alone over the backbone's sparse layers (:func:`weight_side_ms`), against the unit of that
work, one elementwise pass over the weights. Used by :mod:`.training`
(``tools/benchmark_training.py``); knows the methods only through the layer protocol."""
import statistics
import time
from typing import Dict

import torch

from ..layers import NMSparseMixin


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def weight_side_ms(model, reps: int = 5) -> Dict[str, float]:
    """What bounds a method's extra step cost, timed alone over the backbone's sparse
    layers (medians of ``reps``):

    - ``weight_pass_ms``: one elementwise pass over every sparse layer's weight
      (``weight * mask`` with a bool mask): the unit of weight-side work;
    - ``forward_weight_ms``: every layer's ``forward_weight()`` with autograd, plus its
      backward for a fixed upstream gradient: the method's whole weight-side work of one
      step (the dense model's equivalent is nothing);
    - ``extra_optimizer_ms``: the SGD step (momentum 0.9, weight decay 1e-4, as in the
      step benchmark) over the method's own trainable parameters
      (``nm_extra_state_names``), gradients of ones; 0 when it has none;
    - ``weights`` / ``extra_params``: how many numbers those passes touch."""
    layers = [mod for mod in model.backbone.modules()
              if isinstance(mod, NMSparseMixin) and mod.nm_eligible]
    weights = [layer.weight for layer in layers]
    masks = [torch.ones_like(w, dtype=torch.bool) for w in weights]
    for layer in layers:
        layer.nm_refresh()

    def weight_pass():
        with torch.no_grad():
            for w, mk in zip(weights, masks):
                w * mk

    grads = [torch.randn_like(w) for w in weights]

    def forward_backward():
        outs = [layer.forward_weight() for layer in layers]
        torch.autograd.backward([o for o in outs if o.requires_grad],
                                [g for o, g in zip(outs, grads) if o.requires_grad])
        for layer in layers:
            for p in layer.parameters():
                p.grad = None

    extra = []
    for layer in layers:
        for name in layer.nm_extra_state_names:
            t = getattr(layer, name, None)
            if isinstance(t, torch.nn.Parameter) and t.requires_grad:
                extra.append(t)
    result = dict(weight_pass_ms=_median_ms(weight_pass, reps),
                  forward_weight_ms=_median_ms(forward_backward, reps),
                  weights=int(sum(w.numel() for w in weights)),
                  extra_params=int(sum(p.numel() for p in extra)),
                  extra_optimizer_ms=0.0)
    if extra:
        copies = [torch.nn.Parameter(p.detach().clone()) for p in extra]
        opt = torch.optim.SGD(copies, lr=1e-4, momentum=0.9, weight_decay=1e-4)

        def sgd():
            for p in copies:
                p.grad = torch.ones_like(p)
            opt.step()

        sgd()  # the momentum buffers exist from the first step on
        result['extra_optimizer_ms'] = _median_ms(sgd, reps)
    return result
