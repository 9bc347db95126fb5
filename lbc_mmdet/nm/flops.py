"""Training-FLOPs accounting ("FLOPs (Train)" of the paper's Tables 2 and 3), plain torch.

What is counted
---------------
Only the multiply-adds (MACs) of convolutions and fully connected layers: every
``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d`` and ``nn.Linear`` of the model (the
sparse layers of every method are subclasses of these). Normalisation, activations,
pooling, RoIAlign, NMS, losses and the optimizer step are ignored: they are the same for
the dense and the sparse model and small next to the convolutions.

The dense multiply-adds of one call of a layer are measured from its output with a
forward hook (so they follow the real input sizes, the number of RoIs, ...):

- convolution: ``out_numel * in_channels / groups * kh * kw`` (:func:`conv_macs`);
- transposed convolution: ``in_numel * out_channels / groups * kh * kw``;
- linear: ``out_numel * in_features`` (:func:`linear_macs`).

A layer called several times in one iteration (the shared RPN conv on every FPN level)
adds up its calls.

Training cost of a layer in one iteration
-----------------------------------------
A training step runs three matrix products per layer, each as large as the forward:
the forward ``Y = X * W``, the input gradient ``dX = dY * W^T`` and the weight gradient
``dW = X^T * dY``. A sparse layer tells which fraction of the dense multiply-adds each
pass costs *now* through ``nm_train_densities()`` (the sparse-layer protocol,
:class:`~lbc_mmdet.layers.base.NMSparseMixin`), dense layers count ``(1, 1, 1)``::

    cost  = MACs * (forward + input_grad + weight_grad)     (:func:`train_cost`)
    dense = MACs * 3

so a layer whose mask keeps half its weights and whose gradient is masked (LBC after the
removal window, ASP after pruning) costs 1.5 MACs instead of 3; SR-STE, whose weight
gradient is dense, costs 0.5 + 0.5 + 1 = 2; an LBC layer early in training, whose alive
candidates still cover every weight, costs 3 (the density is that of the union of the
alive candidates). The densities are read at the start of every iteration, i.e. the state
the iteration's forward and backward ran with.

Simplifications (documented, on purpose):

- By default every layer counts its input gradient and its weight gradient, although the
  first layer's input gradient is never needed (its input is the image), nor are the
  gradients of frozen layers (``frozen_stages``). The sparse and the dense-equivalent
  totals are counted the same way, so the ratio stays comparable to the paper's.
  ``exact_backward=True`` counts the input gradient only when the layer's input requires a
  gradient and the weight gradient only when the weight does (checked at every call).
- The cost of computing the masks themselves (top-k, scores) is not counted.
- FLOPs are reported as ``2 * MACs``.

The totals accumulate over training: the reported ratio is the sum of the sparse costs
of all iterations over the sum of the dense-equivalent costs, i.e. the training FLOPs of
the sparse run relative to training the same model dense for the same iterations.

Nothing here imports mmengine; :class:`~lbc_mmdet.engine.hooks.TrainFlopsHook` is the
thin MMEngine glue.
"""
import math
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

#: the three matrix products of a training step, in the order of ``nm_train_densities``
PASSES: Tuple[str, str, str] = ('forward', 'input_grad', 'weight_grad')
#: densities of a dense layer
DENSE_DENSITIES: Dict[str, float] = dict(forward=1.0, input_grad=1.0, weight_grad=1.0)
#: the module types whose multiply-adds are counted
COUNTED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                 nn.ConvTranspose3d, nn.Linear)


# --------------------------------------------------------------------------- MACs
def conv_macs(out_numel: int, in_channels: int, groups: int,
              kernel_size: Iterable[int]) -> int:
    """Dense multiply-adds of a convolution: ``out_numel * in_channels/groups * prod(k)``.

    Args:
        out_numel: Number of output elements (batch included).
        in_channels: Input channels of the layer.
        groups: Convolution groups.
        kernel_size: The kernel's spatial size, e.g. ``(3, 3)``.
    """
    if in_channels % groups:
        raise ValueError(f'in_channels={in_channels} is not divisible by groups={groups}')
    return int(out_numel) * (in_channels // groups) * math.prod(int(k) for k in kernel_size)


def transposed_conv_macs(in_numel: int, out_channels: int, groups: int,
                         kernel_size: Iterable[int]) -> int:
    """Dense multiply-adds of a transposed convolution: every input element is multiplied
    by ``out_channels/groups * prod(k)`` weights."""
    if out_channels % groups:
        raise ValueError(
            f'out_channels={out_channels} is not divisible by groups={groups}')
    return int(in_numel) * (out_channels // groups) * math.prod(int(k) for k in kernel_size)


def linear_macs(out_numel: int, in_features: int) -> int:
    """Dense multiply-adds of a linear layer: ``out_numel * in_features``."""
    return int(out_numel) * int(in_features)


def is_counted(module: nn.Module) -> bool:
    """Whether :func:`layer_macs` counts ``module`` (a conv / transposed conv / linear)."""
    return isinstance(module, COUNTED_TYPES)


def layer_macs(module: nn.Module, inputs: Tuple, output) -> int:
    """Dense multiply-adds of one call of ``module`` (its forward hook's arguments).

    Returns 0 for modules that are not counted or whose output is not a tensor.
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


# --------------------------------------------------------------------------- cost
def check_densities(densities: Mapping[str, float], name: str = 'layer') -> Dict[str, float]:
    """Validate what ``nm_train_densities()`` returned: the three passes, each in
    ``[0, 1]``. Returns a plain ``dict`` of floats."""
    missing = [p for p in PASSES if p not in densities]
    if missing:
        raise ValueError(f'{name}: nm_train_densities() must return the keys {PASSES}, '
                         f'missing {missing} (got {dict(densities)})')
    out = {p: float(densities[p]) for p in PASSES}
    for p, v in out.items():
        if not 0.0 <= v <= 1.0:  # also refuses NaN
            raise ValueError(f'{name}: nm_train_densities()[{p!r}] must be in [0, 1], '
                             f'got {v}')
    return out


def layer_densities(module: nn.Module, name: str = 'layer') -> Dict[str, float]:
    """The module's densities: ``nm_train_densities()`` for a sparse layer, dense
    ``(1, 1, 1)`` otherwise."""
    fn = getattr(module, 'nm_train_densities', None)
    if fn is None:
        return dict(DENSE_DENSITIES)
    return check_densities(fn(), name)


def layer_group(module: nn.Module) -> str:
    """Group name of a layer for the per-method breakdown: ``'<method> <N>:<M>'`` for an
    eligible sparse layer (``'lbc 2:4'``), ``'dense'`` otherwise (plain layers and sparse
    layers left dense)."""
    if getattr(module, 'nm_eligible', False):
        return f'{module.nm_method} {module.nm_n}:{module.nm_m}'
    return 'dense'


def train_cost(macs: float,
               densities: Mapping[str, float],
               input_grad: bool = True,
               weight_grad: bool = True) -> float:
    """Training multiply-adds of a layer: ``macs * (forward + input_grad + weight_grad)``.

    Args:
        macs: Dense forward multiply-adds.
        densities: Fractions of the dense cost of each pass (``nm_train_densities()``).
        input_grad: Count the input-gradient pass.
        weight_grad: Count the weight-gradient pass.
    """
    return macs * (densities['forward'] + (densities['input_grad'] if input_grad else 0.0)
                   + (densities['weight_grad'] if weight_grad else 0.0))


def dense_train_cost(macs: float, input_grad: bool = True, weight_grad: bool = True) -> float:
    """Training multiply-adds of the same layer dense: ``macs * 3`` by default."""
    return train_cost(macs, DENSE_DENSITIES, input_grad, weight_grad)


# --------------------------------------------------------------------------- totals
class _Totals:
    """Cumulative multiply-adds of a set of layers."""
    __slots__ = ('forward_macs', 'train_macs', 'dense_train_macs')

    def __init__(self) -> None:
        self.forward_macs = 0.0
        self.train_macs = 0.0
        self.dense_train_macs = 0.0

    def add(self, other: '_Totals') -> None:
        self.forward_macs += other.forward_macs
        self.train_macs += other.train_macs
        self.dense_train_macs += other.dense_train_macs

    @property
    def ratio(self) -> float:
        return self.train_macs / self.dense_train_macs if self.dense_train_macs else 1.0

    def summary(self, iterations: int) -> Dict[str, float]:
        it = max(iterations, 1)
        return dict(ratio=self.ratio,
                    train_flops=2.0 * self.train_macs,
                    dense_train_flops=2.0 * self.dense_train_macs,
                    train_macs=self.train_macs,
                    dense_train_macs=self.dense_train_macs,
                    forward_macs_per_iter=self.forward_macs / it)


class _Layer:
    """One counted layer: its identity, this iteration's MACs and its totals."""
    __slots__ = ('name', 'module', 'type', 'group', 'densities', 'it_forward', 'it_input',
                 'it_weight', 'totals')

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.type = type(module).__name__
        self.group = layer_group(module)
        self.densities = dict(DENSE_DENSITIES)
        self.it_forward = 0.0  # this iteration: dense forward MACs
        self.it_input = 0.0  # ... of the calls whose input gradient is counted
        self.it_weight = 0.0  # ... of the calls whose weight gradient is counted
        self.totals = _Totals()


class TrainFlopsCounter:
    """Count the training multiply-adds of a model, iteration by iteration.

    Usage::

        counter = TrainFlopsCounter(model)
        counter.attach()                      # forward hooks on every conv / linear
        for batch in data:
            counter.start_iter()              # read the densities, start counting
            loss = model(batch); loss.backward(); optimizer.step()
            counter.end_iter()                # accumulate
        counter.detach()
        counter.ratio(), counter.summary()

    Forward calls outside ``start_iter()``/``end_iter()`` (validation) are not counted.

    Args:
        model: The model (unwrapped).
        exact_backward: Count the input gradient only when the layer's input requires a
            gradient and the weight gradient only when the weight does (see the module
            docstring). Defaults to False: every layer counts the three passes.
        density_interval: Re-read the sparse layers' densities every this many
            iterations (in between, the last values are reused). Defaults to 1.
        backbone_prefix: Name prefix of the backbone's layers for :meth:`ratio`
            ``('backbone')``. Defaults to ``'backbone.'``.
        module_filter: Optional ``(name, module) -> bool`` restricting the counted layers.
    """

    def __init__(self,
                 model: nn.Module,
                 exact_backward: bool = False,
                 density_interval: int = 1,
                 backbone_prefix: str = 'backbone.',
                 module_filter: Optional[Callable[[str, nn.Module], bool]] = None) -> None:
        if int(density_interval) < 1:
            raise ValueError(f'density_interval must be >= 1, got {density_interval}')
        self.exact_backward = bool(exact_backward)
        self.density_interval = int(density_interval)
        self.backbone_prefix = backbone_prefix
        self.layers: List[_Layer] = [
            _Layer(name, mod) for name, mod in model.named_modules()
            if is_counted(mod) and (module_filter is None or module_filter(name, mod))
        ]
        self.iterations = 0
        self._counting = False
        self._densities_read = False
        self._handles: list = []

    # ------------------------------------------------------------------ hooks
    def _make_hook(self, layer: _Layer):
        exact = self.exact_backward

        def hook(module, inputs, output):
            if not self._counting:
                return
            macs = layer_macs(module, inputs, output)
            if not macs:
                return
            layer.it_forward += macs
            if not exact:
                layer.it_input += macs
                layer.it_weight += macs
                return
            if not torch.is_grad_enabled():
                return
            x = inputs[0] if inputs else None
            if torch.is_tensor(x) and x.requires_grad:
                layer.it_input += macs
            if module.weight is not None and module.weight.requires_grad:
                layer.it_weight += macs

        return hook

    def attach(self) -> 'TrainFlopsCounter':
        """Register the forward hooks (idempotent)."""
        if not self._handles:
            self._handles = [layer.module.register_forward_hook(self._make_hook(layer))
                             for layer in self.layers]
        return self

    def detach(self) -> None:
        """Remove the forward hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._counting = False

    # ------------------------------------------------------------------ iterations
    def refresh_densities(self) -> None:
        """Read every layer's current ``nm_train_densities()``."""
        for layer in self.layers:
            layer.densities = layer_densities(layer.module, layer.name)
            layer.group = layer_group(layer.module)
        self._densities_read = True

    def start_iter(self) -> None:
        """Start counting one training iteration (reads the densities first)."""
        if not self._densities_read or self.iterations % self.density_interval == 0:
            self.refresh_densities()
        for layer in self.layers:
            layer.it_forward = layer.it_input = layer.it_weight = 0.0
        self._counting = True

    def end_iter(self) -> _Totals:
        """Stop counting; add the iteration to the totals and return its own totals."""
        self._counting = False
        it = _Totals()
        for layer in self.layers:
            if not layer.it_forward:
                continue
            d = layer.densities
            t = layer.totals
            cost = (layer.it_forward * d['forward'] + layer.it_input * d['input_grad'] +
                    layer.it_weight * d['weight_grad'])
            dense = layer.it_forward + layer.it_input + layer.it_weight
            t.forward_macs += layer.it_forward
            t.train_macs += cost
            t.dense_train_macs += dense
            it.forward_macs += layer.it_forward
            it.train_macs += cost
            it.dense_train_macs += dense
        self.iterations += 1
        return it

    # ------------------------------------------------------------------ results
    def totals(self, scope: str = 'total') -> _Totals:
        """Cumulative totals of ``'total'`` (every layer), ``'backbone'`` or a group
        (``'dense'``, ``'lbc 2:4'``, ...)."""
        out = _Totals()
        for layer in self.layers:
            if (scope == 'total' or
                    (scope == 'backbone' and layer.name.startswith(self.backbone_prefix))
                    or layer.group == scope):
                out.add(layer.totals)
        return out

    def ratio(self, scope: str = 'total') -> float:
        """Cumulative sparse / dense-equivalent training multiply-adds (1.0 before any
        iteration)."""
        return self.totals(scope).ratio

    def summary(self, with_layers: bool = True) -> dict:
        """Everything as plain, JSON-serialisable values."""
        groups = sorted({layer.group for layer in self.layers})
        methods = {}
        for g in groups:
            s = self.totals(g).summary(self.iterations)
            s['layers'] = sum(1 for layer in self.layers if layer.group == g)
            methods[g] = s
        sparse = [g for g in groups if g != 'dense']
        out = dict(
            iterations=self.iterations,
            exact_backward=self.exact_backward,
            methods_present=sorted({g.split(' ')[0] for g in sparse}),
            patterns_present=sorted({g.split(' ')[1] for g in sparse}),
            total=self.totals('total').summary(self.iterations),
            backbone=self.totals('backbone').summary(self.iterations),
            methods=methods,
        )
        if with_layers:
            it = max(self.iterations, 1)
            out['layers'] = [
                dict(name=layer.name, type=layer.type, group=layer.group,
                     forward_macs_per_iter=layer.totals.forward_macs / it,
                     ratio=layer.totals.ratio, last_densities=dict(layer.densities))
                for layer in self.layers if layer.totals.dense_train_macs
            ]
        return out

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        """The totals (plain numbers, keyed by layer name) to resume from."""
        return dict(iterations=self.iterations,
                    layers={layer.name: [layer.totals.forward_macs, layer.totals.train_macs,
                                         layer.totals.dense_train_macs]
                            for layer in self.layers if layer.totals.dense_train_macs})

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the totals of :meth:`state_dict` (layers unknown here are ignored)."""
        self.iterations = int(state.get('iterations', 0))
        saved = state.get('layers', {})
        for layer in self.layers:
            values = saved.get(layer.name)
            t = layer.totals = _Totals()
            if values is not None:
                t.forward_macs, t.train_macs, t.dense_train_macs = (float(v) for v in values)
