"""The two ways of counting a training step ("FLOPs (Train)"), per layer.

A training step runs three products per conv/linear layer, each as large as the forward:
the forward ``Y = X W``, the input gradient ``dX = dY W^T`` and the weight gradient
``dW = X^T dY``. A sparse layer reports the fraction of the dense multiply-adds each pass
performs now (``nm_train_densities()``, the sparse-layer protocol). The conventions:

- ``hardware``: those fractions as they are, for every counted layer (dense layers and
  sparse layers left dense count 1, 1, 1): the multiply-adds the step really performs.
- ``paper``: the rule the LBC paper's FLOPs (Train) figures (its Tables 1 and 5) follow,
  derived in ``docs/benchmark.md``: only the N:M layers are counted; the forward follows
  the mask, the input gradient is counted dense (the transposed weight is not N:M along
  that product's reduction axis, so it gains nothing from the sparse kernels) unless the
  layer says it is (``nm_sparse_input_grad``: a method with a second, output-dim N:M mask
  for the backward), the weight gradient follows the weights that receive a gradient.
"""
from typing import Dict, Mapping, Optional, Tuple

import torch.nn as nn

#: the three matrix products of a training step, in the order of ``nm_train_densities``
PASSES: Tuple[str, str, str] = ('forward', 'input_grad', 'weight_grad')
#: densities of a dense layer
DENSE_DENSITIES: Dict[str, float] = dict(forward=1.0, input_grad=1.0, weight_grad=1.0)
CONVENTIONS: Tuple[str, ...] = ('hardware', 'paper')


def check_convention(convention: str) -> str:
    """``convention`` if it is one of :data:`CONVENTIONS` (else ``ValueError``).

    Args:
        convention (str): The convention's name.

    Returns:
        str: ``convention``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f'unknown FLOPs convention {convention!r}; choose from '
                         f'{list(CONVENTIONS)}')
    return convention


def check_densities(densities: Mapping[str, float], name: str = 'layer') -> Dict[str, float]:
    """Validate what ``nm_train_densities()`` returned: the three passes, each in
    ``[0, 1]``. Returns a plain ``dict`` of floats.

    Args:
        densities (Mapping[str, float]): The returned densities.
        name (str): The layer, named in the errors. Defaults to ``'layer'``.

    Returns:
        dict[str, float]: pass -> density.
    """
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


def layer_densities(module: nn.Module, name: str = 'layer',
                    convention: str = 'hardware') -> Optional[Dict[str, float]]:
    """The module's densities under ``convention`` (see the module docstring), or None
    when the convention does not count the layer (``paper``: anything but an eligible
    sparse layer).

    Args:
        module (nn.Module): A counted layer.
        name (str): The layer, named in the errors. Defaults to ``'layer'``.
        convention (str): One of :data:`CONVENTIONS`. Defaults to ``'hardware'``.

    Returns:
        dict[str, float] or None: pass -> density, or None.
    """
    eligible = bool(getattr(module, 'nm_eligible', False))
    if convention == 'paper' and not eligible:
        return None
    fn = getattr(module, 'nm_train_densities', None)
    densities = dict(DENSE_DENSITIES) if fn is None else check_densities(fn(), name)
    if convention == 'paper' and not getattr(module, 'nm_sparse_input_grad', False):
        densities['input_grad'] = 1.0
    return densities


def layer_group(module: nn.Module) -> str:
    """Group name of a layer for the per-method breakdown: ``'<method> <N>:<M>'`` for an
    eligible sparse layer (``'lbc 2:4'``), ``'dense'`` otherwise (plain layers and sparse
    layers left dense).

    Args:
        module (nn.Module): A counted layer.

    Returns:
        str: The group name.
    """
    if getattr(module, 'nm_eligible', False):
        return f'{module.nm_method} {module.nm_n}:{module.nm_m}'
    return 'dense'


def train_cost(macs: float,
               densities: Mapping[str, float],
               input_grad: bool = True,
               weight_grad: bool = True) -> float:
    """Training multiply-adds of a layer: ``macs * (forward + input_grad + weight_grad)``.

    Args:
        macs (float): Dense forward multiply-adds.
        densities (Mapping[str, float]): Fractions of the dense cost of each pass
            (``nm_train_densities()``).
        input_grad (bool): Count the input-gradient pass.
        weight_grad (bool): Count the weight-gradient pass.
    """
    return macs * (densities['forward'] + (densities['input_grad'] if input_grad else 0.0)
                   + (densities['weight_grad'] if weight_grad else 0.0))


def dense_train_cost(macs: float, input_grad: bool = True, weight_grad: bool = True) -> float:
    """Training multiply-adds of the same layer dense: ``macs * 3`` by default.

    Args:
        macs (float): Dense forward multiply-adds.
        input_grad (bool): Count the input-gradient pass. Defaults to True.
        weight_grad (bool): Count the weight-gradient pass. Defaults to True.

    Returns:
        float: The multiply-adds.
    """
    return train_cost(macs, DENSE_DENSITIES, input_grad, weight_grad)


