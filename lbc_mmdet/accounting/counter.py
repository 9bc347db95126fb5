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
from typing import Callable, Dict, List, Mapping, Optional

import torch
import torch.nn as nn

from .conventions import DENSE_DENSITIES, check_convention, layer_densities, layer_group
from .macs import is_counted, layer_macs


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
        self.densities: Optional[Dict[str, float]] = dict(DENSE_DENSITIES)
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
        model (nn.Module): The model (unwrapped).
        exact_backward (bool): Count the input gradient only when the layer's input requires a
            gradient and the weight gradient only when the weight does (see the module
            docstring). Defaults to False: every layer counts the three passes.
        density_interval (int): Re-read the sparse layers' densities every this many
            iterations (in between, the last values are reused). Defaults to 1.
        backbone_prefix (str): Name prefix of the backbone's layers for :meth:`ratio`
            ``('backbone')``. Defaults to ``'backbone.'``.
        module_filter (Callable[[str, nn.Module], bool], optional): Optional ``(name,
            module) -> bool`` restricting the counted layers.
        convention (str): ``'hardware'`` (default) or ``'paper'``
            (:mod:`lbc_mmdet.accounting.conventions`).
    """

    def __init__(self,
                 model: nn.Module,
                 exact_backward: bool = False,
                 density_interval: int = 1,
                 backbone_prefix: str = 'backbone.',
                 module_filter: Optional[Callable[[str, nn.Module], bool]] = None,
                 convention: str = 'hardware') -> None:
        self.convention = check_convention(convention)
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
            layer.densities = layer_densities(layer.module, layer.name, self.convention)
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
            if not layer.it_forward or layer.densities is None:
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
        (``'dense'``, ``'lbc 2:4'``, ...).

        Args:
            scope (str): The layers summed. Defaults to ``'total'``.

        Returns:
            _Totals: Their forward, training and dense-equivalent multiply-adds.
        """
        out = _Totals()
        for layer in self.layers:
            if (scope == 'total' or
                    (scope == 'backbone' and layer.name.startswith(self.backbone_prefix))
                    or layer.group == scope):
                out.add(layer.totals)
        return out

    def ratio(self, scope: str = 'total') -> float:
        """Cumulative sparse / dense-equivalent training multiply-adds (1.0 before any
        iteration).

        Args:
            scope (str): The layers (as :meth:`totals`). Defaults to ``'total'``.

        Returns:
            float: The ratio.
        """
        return self.totals(scope).ratio

    def summary(self, with_layers: bool = True) -> dict:
        """Everything as plain, JSON-serialisable values.

        Args:
            with_layers (bool): Include one entry per counted layer. Defaults to True.

        Returns:
            dict: Iterations, convention, the groups present, totals of ``total``, ``backbone``
            and each group, and (``with_layers``) the layers.
        """
        groups = sorted({layer.group for layer in self.layers})
        methods = {}
        for g in groups:
            s = self.totals(g).summary(self.iterations)
            s['layers'] = sum(1 for layer in self.layers if layer.group == g)
            methods[g] = s
        sparse = [g for g in groups if g != 'dense']
        out = dict(
            iterations=self.iterations,
            convention=self.convention,
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
                     ratio=layer.totals.ratio, last_densities=dict(layer.densities or {}))
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
        """Restore the totals of :meth:`state_dict` (layers unknown here are ignored).

        Args:
            state (Mapping): A :meth:`state_dict`.
        """
        self.iterations = int(state.get('iterations', 0))
        saved = state.get('layers', {})
        for layer in self.layers:
            values = saved.get(layer.name)
            t = layer.totals = _Totals()
            if values is not None:
                t.forward_macs, t.train_macs, t.dense_train_macs = (float(v) for v in values)
