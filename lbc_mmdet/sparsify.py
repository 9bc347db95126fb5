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
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmdet.registry import MODELS

from .layers import NMSparseMixin, get_method, layer_class, method_names
from .layers.registry import dense_type_of
from .utils import matches, replace_module


def layer_options(layer: Optional[Dict]) -> Tuple[str, Dict]:
    """``(method, options)`` of an ``NMSparsify`` ``layer`` dict (``type`` is accepted as
    an alias of ``method``).

    Raises:
        ValueError: No method given (the message lists the registered ones).
    """
    layer = dict(layer or {})
    method = layer.pop('method', layer.pop('type', None))
    if method is None:
        raise ValueError('NMSparsify: `layer` needs a `method`, e.g. '
                         f'layer=dict(method=..., n=2, m=4); known methods: {method_names()}')
    return method, layer


def sparsify(model: nn.Module,
             method: str,
             n: int = 2,
             m: int = 4,
             include: Sequence[str] = ('*', ),
             exclude: Sequence[str] = (),
             **method_kwargs) -> List[str]:
    """Replace, in place, every dense ``nn.Conv2d``/``nn.Linear`` whose qualified name
    matches ``include`` and not ``exclude`` (``fnmatch`` patterns) by ``method``'s sparse
    layer.

    Args:
        model (nn.Module): The model, changed in place.
        method (str): A registered method's key (:func:`~lbc_mmdet.layers.method_names`).
        n (int): Weights kept per group. Defaults to 2.
        m (int): Group size. Defaults to 4.
        include (Sequence[str]): Module-name patterns to convert. Defaults to all.
        exclude (Sequence[str]): Module-name patterns to leave dense.
        **method_kwargs: The method's own options.

    Returns:
        list[str]: The names of the converted modules.

    Raises:
        ValueError: Unknown method (the message lists the known ones).
    """
    get_method(method)
    converted = []
    for name, module in list(model.named_modules()):
        if not name or isinstance(module, NMSparseMixin):
            continue
        if not matches(name, include) or matches(name, exclude):
            continue
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        cls = layer_class(method, dense_type_of(type(module)))
        replace_module(model, name, cls.from_dense(module, n=n, m=m, **method_kwargs))
        converted.append(name)
    return converted


@MODELS.register_module(name='NMSparsify')
def build_sparsified(model: dict,
                     layer: Dict,
                     include: Sequence[str] = ('*', ),
                     exclude: Sequence[str] = ()) -> nn.Module:
    """Build ``model`` and make the matching layers sparse (see module docstring).

    Args:
        model (dict): The detector's config.
        layer (dict): ``dict(method=<a registered key>, n=2, m=4, **method_options)``.
        include (Sequence[str]): Module-name patterns to convert. Defaults to all.
        exclude (Sequence[str]): Module-name patterns to leave dense.

    Returns:
        nn.Module: The detector itself (not a wrapper), with sparse layers.
    """
    method, options = layer_options(layer)
    get_method(method)  # fail on an unknown method before building
    detector = MODELS.build(model)
    sparsify(detector, method, include=include, exclude=exclude, **options)
    return detector
