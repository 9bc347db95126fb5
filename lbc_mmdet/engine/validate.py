"""Check a config's N:M sparsity settings before anything is built or written.

``tools/train.py`` calls :func:`validate_sparsity_cfg` right after loading the config (and
merging ``--cfg-options``), before the ``Runner`` is built: the Runner creates the work
dir and the log files *before* it builds the model, so an error raised by a layer's
constructor would leave an empty run behind. This walk is light (no model is built):

- every ``conv_cfg`` dict: its ``type`` must be registered (mmengine would raise a
  ``KeyError`` only at build time); a registered N:M layer's ``n``/``m`` and method
  options are validated as the layer itself would;
- every ``type='NMSparsify'`` dict: its ``layer.method``, ``n``/``m`` and options;
- every ``type='NMSparsityHook'`` entry of ``custom_hooks``: ``ti``/``tf``.

Errors are :class:`SparsityConfigError` (a ``ValueError``) whose message starts with the
config path of the offending field, e.g. ``model.backbone.conv_cfg.n``.
"""
import inspect
from typing import Any, Dict, List, Tuple

from ..errors import LBCError, PatternError
from ..layers import layer_class, sparse_layer_types
from ..nm import validate_pattern
from ..sparsify import layer_options


class SparsityConfigError(LBCError, ValueError):
    """An N:M sparsity setting of a config is invalid (the message names the field)."""


def _registered(type_name: str) -> bool:
    import mmcv.cnn  # noqa: F401  (registers Conv2d, DCNv2, ... into mmengine's MODELS)
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import MODELS as MMENGINE_MODELS
    for registry in (MMDET_MODELS, MMENGINE_MODELS):
        try:
            if registry.get(type_name) is not None:
                return True
        except Exception:  # noqa: BLE001  (a scope prefix of an absent package)
            continue
    return False


def _check_layer(cls: type, opts: Dict[str, Any], where: str) -> None:
    """Validate ``n``/``m`` and ``cls``'s method options, as its constructor would."""
    opts = dict(opts)
    opts.pop('type', None)
    n, m = opts.pop('n', 2), opts.pop('m', 4)
    try:
        validate_pattern(n, m)
    except PatternError as err:
        raise SparsityConfigError(f'{where}.{err.field}: {err}') from None
    try:
        method_opts = cls._nm_split_kwargs(opts)
        cls.nm_validate_options(**method_opts)
    except ValueError as err:
        raise SparsityConfigError(f'{where}: {err}') from None
    except TypeError as err:
        raise SparsityConfigError(f'{where}: {cls.__name__}: {err}') from None
    allowed = set()
    for base in cls.__mro__:
        if base.__name__ in ('Conv2d', 'Linear') and base.__module__.startswith('torch'):
            allowed |= set(inspect.signature(base.__init__).parameters)
    unknown = sorted(set(opts) - allowed)
    if unknown:
        known = sorted(cls.nm_option_names())
        raise SparsityConfigError(
            f'{where}: unknown option(s) {unknown} for {cls.__name__} (its options: n, m'
            + (', ' + ', '.join(known) if known else '') + ')')


def _walk(node: Any, path: str, out: List[Tuple[str, dict]]) -> None:
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            _walk(value, f'{path}.{key}' if path else str(key), out)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _walk(value, f'{path}.{i}', out)


def validate_sparsity_cfg(cfg) -> int:
    """Raise :class:`SparsityConfigError` naming the field when an N:M setting of
    ``cfg`` (an mmengine ``Config`` or a dict) is invalid.

    Returns:
        int: The number of sparsity settings checked.
    """
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    sparse = sparse_layer_types()
    nodes: List[Tuple[str, dict]] = []
    _walk(data, '', nodes)
    checked = 0
    for path, node in nodes:
        for key in ('conv_cfg', 'linear_cfg'):
            sub = node.get(key)
            if not isinstance(sub, dict) or 'type' not in sub:
                continue
            where = f'{path}.{key}' if path else key
            type_name = sub['type']
            if not isinstance(type_name, str):
                continue
            if type_name in sparse:
                _check_layer(sparse[type_name], sub, where)
                checked += 1
            elif not _registered(type_name):
                raise SparsityConfigError(
                    f'{where}.type: {type_name!r} is not a registered layer type. '
                    f'N:M sparse layers: {sorted(sparse)}')
        type_name = node.get('type')
        if type_name == 'NMSparsify':
            where = f'{path}.layer' if path else 'layer'
            try:
                method, layer = layer_options(node.get('layer'))
                cls = layer_class(method, 'Conv2d')
            except ValueError as err:
                raise SparsityConfigError(f'{where}.method: {err}') from None
            _check_layer(cls, layer, where)
            checked += 1
        elif type_name == 'NMSparsityHook':
            from .hooks import NMSparsityHook
            kwargs = {k: v for k, v in node.items() if k not in ('type', 'priority')}
            try:
                NMSparsityHook(**kwargs)
            except (ValueError, TypeError) as err:
                raise SparsityConfigError(f'{path}: {err}') from None
            checked += 1
    return checked
