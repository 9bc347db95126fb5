"""Make the ``nn.Conv2d`` / ``nn.Linear`` layers of any model N:M sparse.

mmdet's ResNet, FPN and every ``ConvModule`` take ``conv_cfg=dict(type='LBCConv2d', ...)``;
layers built without a cfg (RPN/RoI heads, ``nn.Linear``) are converted here by module-name
patterns. The conversion reuses the Parameters, so state_dict keys, pretrained loading and
optimizers are unaffected. It must run before MMEngine builds the optimizer and wraps the
model for distributed training: the ``NMSparsify`` model builder does it at build time::

    model = dict(type='NMSparsify', model={{_base_.model}},
                 layer=dict(method='lbc', n=2, m=4),
                 include=['roi_head.*'], exclude=[])
"""
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn

from mmdet.registry import MODELS

from .layers import SPARSE_LAYERS, NMSparseMixin


def sparse_layer_class(method: str, kind: str) -> type:
    """The sparse class of ``method`` for a dense module kind (``'Conv2d'``/``'Linear'``).

    Raises:
        ValueError: Unknown method (the message lists the known ones).
    """
    key = str(method).lower()
    if key not in SPARSE_LAYERS:
        raise ValueError(f'unknown N:M method {method!r}; known methods: '
                         f'{sorted(SPARSE_LAYERS)}')
    return SPARSE_LAYERS[key][kind]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def sparsify(model: nn.Module,
             method: str = 'lbc',
             n: int = 2,
             m: int = 4,
             include: Sequence[str] = ('*', ),
             exclude: Sequence[str] = (),
             **method_kwargs) -> List[str]:
    """Replace, in place, every dense ``nn.Conv2d``/``nn.Linear`` whose qualified name
    matches ``include`` and not ``exclude`` (``fnmatch`` patterns) by ``method``'s sparse
    layer.

    Returns:
        list[str]: The names of the converted modules.
    """
    converted = []
    for name, module in list(model.named_modules()):
        if not name or isinstance(module, NMSparseMixin):
            continue
        if not _matches(name, include) or _matches(name, exclude):
            continue
        if isinstance(module, nn.Conv2d):
            kind = 'Conv2d'
        elif isinstance(module, nn.Linear):
            kind = 'Linear'
        else:
            continue
        cls = sparse_layer_class(method, kind)
        new = cls.from_dense(module, n=n, m=m, **method_kwargs)
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
        converted.append(name)
    return converted


def sparse_layers(model: nn.Module) -> List[Tuple[str, NMSparseMixin]]:
    """``(name, layer)`` for every N:M sparse layer of ``model`` (eligible or not)."""
    return [(name, mod) for name, mod in model.named_modules()
            if isinstance(mod, NMSparseMixin)]


@MODELS.register_module(name='NMSparsify')
def build_sparsified(model: dict,
                     layer: Optional[Dict] = None,
                     include: Sequence[str] = ('*', ),
                     exclude: Sequence[str] = ()) -> nn.Module:
    """Build ``model`` and make the matching layers sparse (see module docstring).

    Args:
        model (dict): The detector's config.
        layer (dict): ``dict(method='lbc', n=2, m=4, **method_options)``.
        include (Sequence[str]): Module-name patterns to convert. Defaults to all.
        exclude (Sequence[str]): Module-name patterns to leave dense.

    Returns:
        nn.Module: The detector itself (not a wrapper), with sparse layers.
    """
    layer = dict(layer or dict(method='lbc', n=2, m=4))
    method = layer.pop('method', layer.pop('type', 'lbc'))
    sparse_layer_class(method, 'Conv2d')  # fail on an unknown method before building
    detector = MODELS.build(model)
    sparsify(detector, method, include=include, exclude=exclude, **layer)
    return detector
