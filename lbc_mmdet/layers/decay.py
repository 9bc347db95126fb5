"""The sparse-refined decay of pruned weights (Zhou et al., ICLR 2021, Eq. 5/6), shared by
the methods that give every weight the dense gradient of the masked weight and pull the
pruned ones towards zero: a helper, not a method -- it registers nothing and names none.

``decay`` is the method's ``lambda_w`` already multiplied by the layer's ``nm_grad_scale``
(the AMP loss scale over the accumulation loss factor, set by ``NMSparsityHook``): the
gradient it is added to carries the same factor, so after unscaling and summing over an
accumulation window the term contributes ``lambda_w * w`` once per optimizer step.
"""
import torch

from ..nm import decay_pruned_fused, fused_available


def decay_pruned(grad_w: torch.Tensor, weight: torch.Tensor, kept: torch.Tensor,
                 decay: float) -> torch.Tensor:
    """``grad_w`` on the kept weights, ``grad_w + decay * weight`` on the pruned ones
    (``kept``: bool, shaped like ``weight``); ``grad_w`` itself when ``decay`` is 0."""
    if not decay:
        return grad_w
    if (fused_available(grad_w.device) and grad_w.shape == weight.shape
            and grad_w.is_contiguous() and weight.is_contiguous()):
        return decay_pruned_fused(grad_w, weight, kept, decay)  # one compiled pass
    # one fused op: `addcmul` with the pruned entries as a 0/1 factor (measured ~3x faster
    # than `torch.where(kept, grad_w, grad_w + decay * weight)` on CPU)
    return torch.addcmul(grad_w, weight, (~kept).to(grad_w.dtype), value=decay)


class MaskedWeightWithDecay(torch.autograd.Function):
    """``weight * factor`` whose weight gradient is the incoming one unchanged (the
    straight-through estimator) plus :func:`decay_pruned` outside ``kept``. ``factor`` is
    the mask itself (bool) or a soft mask that is zero exactly outside ``kept``."""

    @staticmethod
    def forward(ctx, weight, factor, kept, decay):  # noqa: D102
        # `kept` is bool: saved as it is (a quarter of a float mask); the weight is the
        # parameter itself (saving it costs no memory)
        ctx.save_for_backward(weight, kept)
        ctx.decay = decay
        return weight * factor

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        weight, kept = ctx.saved_tensors
        grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_weight = decay_pruned(grad, weight, kept, ctx.decay)
        return grad_weight, None, None, None
