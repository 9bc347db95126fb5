"""Module-tree and state-dict helpers: name matching, submodule replacement, key prefixes."""
import fnmatch
from typing import Dict, Mapping, Sequence, TypeVar

import torch.nn as nn

V = TypeVar('V')


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` matches any of the ``fnmatch`` ``patterns`` (case-sensitive).

    Args:
        name (str): A module or parameter name.
        patterns (Sequence[str]): ``fnmatch`` patterns.

    Returns:
        bool: Whether one matches.
    """
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` at the qualified ``name`` of ``model`` (``'backbone.layer1.0.conv1'``).

    Args:
        model (nn.Module): The model, modified in place.
        name (str): The qualified name of the module replaced.
        new (nn.Module): The new module.
    """
    parent_name, _, child = name.rpartition('.')
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def strip_prefix(state_dict: Mapping[str, V], prefix: str = 'module.') -> Dict[str, V]:
    """The state dict with ``prefix`` (DDP's ``module.``) removed from the keys that have
    it.

    Args:
        state_dict (Mapping[str, V]): A state dict.
        prefix (str): The prefix removed. Defaults to ``'module.'``.

    Returns:
        dict[str, V]: A new dict, the values unchanged.
    """
    n = len(prefix)
    return {k[n:] if k.startswith(prefix) else k: v for k, v in state_dict.items()}
