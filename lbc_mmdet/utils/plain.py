"""Plain data: what torch's safe unpickler (``weights_only=True``) and JSON both accept."""
from collections import OrderedDict
from typing import Any, Callable, Optional

import torch

_SCALARS = (bool, int, float, str, bytes)


def to_plain(obj: Any, fallback: Optional[Callable[[Any], Any]] = None) -> Any:
    """``obj`` with every value turned into plain data, recursively.

    Numpy scalars and 0-d arrays become python numbers, arrays (nested) lists, subclasses
    of the builtin containers and scalars (``ConfigDict``, ``numpy.float64``) their
    builtin type; tuples and sets stay tuples and sets. Tensors and values this function
    does not know are returned as they are, or passed to ``fallback`` (``str`` for JSON).
    Containers whose content needs no change are returned unchanged, so a model
    ``state_dict`` keeps its ``_metadata``.

    Args:
        obj (Any): The value.
        fallback (callable, optional): Applied to the values not known. Defaults to None
            (kept as they are).

    Returns:
        Any: The plain value.
    """
    if obj is None or isinstance(obj, torch.Tensor):
        return obj
    if type(obj) in _SCALARS:
        return obj
    for base in _SCALARS:
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, dict):
        items = [(k, to_plain(v, fallback)) for k, v in obj.items()]
        if type(obj) in (dict, OrderedDict) and all(
                new is old for (_, new), old in zip(items, obj.values())):
            return obj
        if isinstance(obj, OrderedDict):
            out: dict = OrderedDict(items)
            if hasattr(obj, '_metadata'):
                out._metadata = obj._metadata  # type: ignore[attr-defined]
            return out
        return dict(items)
    if isinstance(obj, (list, tuple, set, frozenset)):
        base = next(t for t in (list, tuple, set, frozenset) if isinstance(obj, t))
        values = [to_plain(v, fallback) for v in obj]
        if type(obj) is base and all(new is old for new, old in zip(values, obj)):
            return obj
        return base(values)
    item, tolist = getattr(obj, 'item', None), getattr(obj, 'tolist', None)
    if callable(item) and getattr(obj, 'shape', None) == ():  # numpy scalar / 0-d array
        return to_plain(item(), fallback)
    if callable(tolist) and hasattr(obj, 'dtype'):  # numpy array
        return to_plain(tolist(), fallback)
    return fallback(obj) if fallback is not None else obj
