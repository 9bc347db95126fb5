"""Training FLOPs of a method's schedule computed without training ("FLOPs (Train)" of the
paper's Tables 1 and 5 for ImageNet ResNet-50 at 224 px), ``tools/train_flops.py``.

A method tells how dense each pass of its layers is at epoch ``t`` of a schedule through
the classmethod ``nm_schedule_densities(n, m, t, ti, tf)`` of its layers (the sparse-layer
protocol, :class:`~lbc_mmdet.layers.base.NMSparseMixin`); ``None`` means the densities
depend on what training learns (e.g. the union of the alive 2:4 candidates of LBC), and then
only bounds (``nm_schedule_density_bounds``) are known. Epoch ``e`` of training runs with
the state at ``t = e`` (the paper's schedules step once per epoch). The model's layers and
their multiply-adds are those of torchvision's ResNet-50 (no weights needed).
"""
import inspect
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

from .conventions import PASSES, check_convention


@dataclass(frozen=True)
class LayerMacs:
    """One conv/linear layer of the model: its name, input channels and forward MACs."""
    name: str
    in_channels: int
    macs: int
    out_channels: int = 0  # 0: unknown (taken as divisible by any M)


def resnet50_layers(img_size: int = 224, num_classes: int = 1000) -> List[LayerMacs]:
    """Every conv and the classifier of ResNet-50 (torchvision's, v1.5: the stride on the
    3x3 conv) with their forward multiply-adds for one ``img_size`` image."""
    def out(size: int, stride: int) -> int:
        return (size + stride - 1) // stride

    layers = []
    size = out(img_size, 2)  # stem, 7x7/2
    layers.append(LayerMacs('conv1', 3, size * size * 64 * 3 * 49, 64))
    size = out(size, 2)  # max pool
    in_ch = 64
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), 1):
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 1) else 1
            prefix = f'layer{stage}.{b}'
            new = out(size, stride)
            layers.append(LayerMacs(f'{prefix}.conv1', in_ch, size * size * width * in_ch,
                                    width))
            layers.append(LayerMacs(f'{prefix}.conv2', width,
                                    new * new * width * width * 9, width))
            layers.append(LayerMacs(f'{prefix}.conv3', width,
                                    new * new * 4 * width * width, 4 * width))
            if b == 0:
                layers.append(LayerMacs(f'{prefix}.downsample.0', in_ch,
                                        new * new * 4 * width * in_ch, 4 * width))
            in_ch, size = 4 * width, new
    layers.append(LayerMacs('fc', in_ch, in_ch * num_classes, num_classes))
    return layers


def _convention_cost(d: Dict[str, float], convention: str,
                     sparse_input_grad: bool = False) -> float:
    """The cost of one step of a layer relative to dense (``sum(passes) / 3``);
    ``sparse_input_grad``: the layer's input gradient is N:M along its reduction axis
    (``nm_sparse_input_grad``), so the paper convention counts it at its density."""
    if convention == 'paper' and not sparse_input_grad:
        d = dict(d, input_grad=1.0)
    return sum(d[p] for p in PASSES) / 3.0


@dataclass
class ScheduleFlops:
    """The result of :func:`schedule_flops`."""
    ratio: Optional[float]  # None: not determined by the schedule alone
    low: float  # bounds on the ratio
    high: float
    determined: bool
    note: str
    per_epoch: List[Optional[float]]


def _epochs(epochs: int) -> Iterator[int]:
    return iter(range(int(epochs)))


def schedule_options(layer_cls: type) -> List[str]:
    """The method options ``layer_cls.nm_schedule_densities`` takes beyond ``(n, m, t,
    ti, tf)`` (e.g. a schedule variant), which :func:`schedule_flops` passes on."""
    params = list(inspect.signature(layer_cls.nm_schedule_densities).parameters)
    return [p for p in params if p not in ('n', 'm', 't', 'ti', 'tf')]


def _accepted(fn, options: Dict[str, Any]) -> Dict[str, Any]:
    names = inspect.signature(fn).parameters
    return {k: v for k, v in options.items() if k in names}


def schedule_flops(layer_cls: type, n: int, m: int, epochs: int, ti: float, tf: float,
                   convention: str = 'paper', baseline_epochs: Optional[int] = None,
                   layers: Optional[List[LayerMacs]] = None,
                   options: Optional[Dict[str, Any]] = None) -> ScheduleFlops:
    """Training FLOPs of ``epochs`` epochs of ``layer_cls``'s method at ``n:m`` with the
    window ``[ti, tf]`` (epochs), relative to ``baseline_epochs`` (default ``epochs``)
    dense epochs of the same model.

    ``paper``: only the layers that can be grouped by ``m`` count (the paper's figures
    leave the dense stem out); ``hardware``: every layer, those that cannot be grouped at
    dense cost. ``options``: the method's options (:func:`schedule_options`) passed to
    its ``nm_schedule_densities`` (and to ``nm_schedule_density_bounds`` where it takes
    them).
    """
    check_convention(convention)
    options = dict(options or {})
    unknown = sorted(set(options) - set(schedule_options(layer_cls)))
    if unknown:
        raise ValueError(f'{layer_cls.__name__} takes no schedule option {unknown} '
                         f'(its options: {schedule_options(layer_cls) or "none"})')
    bound_options = _accepted(layer_cls.nm_schedule_density_bounds, options)
    layers = layers or resnet50_layers()
    sparse = [x for x in layers if x.in_channels % m == 0]
    dense = [] if convention == 'paper' else [x for x in layers if x.in_channels % m]
    total_sparse = float(sum(x.macs for x in sparse))
    # the share of those whose input gradient is N:M too (a method with an output-dim
    # backward mask, on layers whose output channels divide by M)
    sig = float(sum(x.macs for x in sparse if x.out_channels % m == 0)) if getattr(
        layer_cls, 'nm_sparse_input_grad', False) else 0.0
    total_dense = float(sum(x.macs for x in dense))
    total = total_sparse + total_dense
    cost = low = high = 0.0
    determined = True
    per_epoch: List[Optional[float]] = []
    for e in _epochs(epochs):
        d = layer_cls.nm_schedule_densities(n, m, float(e), float(ti), float(tf),
                                            **options)
        lo_d, hi_d = (d, d) if d is not None else layer_cls.nm_schedule_density_bounds(
            n, m, float(e), float(ti), float(tf), **bound_options)
        lo = ((total_sparse - sig) * _convention_cost(lo_d, convention) + total_dense
              + sig * _convention_cost(lo_d, convention, True)) / total
        hi = ((total_sparse - sig) * _convention_cost(hi_d, convention) + total_dense
              + sig * _convention_cost(hi_d, convention, True)) / total
        low, high = low + lo, high + hi
        if d is None:
            determined = False
            per_epoch.append(None)
        else:
            cost += lo
            per_epoch.append(lo)
    base = float(baseline_epochs or epochs)
    note = ('determined by the schedule' if determined else
            'depends on what training learns (the densities between ti and tf are not '
            'fixed by the schedule); the bounds hold for any outcome')
    return ScheduleFlops(cost / base if determined else None, low / base, high / base,
                         determined, note, per_epoch)


__all__ = ['LayerMacs', 'resnet50_layers', 'ScheduleFlops', 'schedule_flops',
           'schedule_options']
