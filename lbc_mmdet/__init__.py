"""lbc_mmdet: N:M sparse detectors and instance segmenters on MMDetection 3.x.

Importing the package (``custom_imports = dict(imports=['lbc_mmdet'])``) registers the
sparse layers of every method, the ``NMSparsify`` model builder and the hooks into mmdet's
registries; it changes nothing else in MMEngine (safe checkpoints are installed by the
tools, by ``SafeCheckpointHook`` or by :func:`install_safe_checkpoints`).
"""
from ._warnings import silence_pkg_resources_warning

silence_pkg_resources_warning()  # before anything imports MMEngine

from . import nm  # noqa: E402,F401  (plain torch; no registry)
from .engine import (  # noqa: E402
                     NMSparsityHook,
                     RNGStateHook,
                     SafeCheckpointHook,
                     TrainFlopsHook,
                     install_safe_checkpoints,
)
from .layers import (  # noqa: E402
                     NMScheduleState,
                     NMSparseMixin,
                     get_method,
                     method_names,
                     register_method,
                     register_nm_layer,
                     sparse_layers,
)
from .sparsify import build_sparsified, sparsify  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = [
    'NMSparsityHook', 'RNGStateHook', 'SafeCheckpointHook', 'TrainFlopsHook',
    'install_safe_checkpoints', 'NMScheduleState', 'NMSparseMixin', 'get_method',
    'method_names', 'register_method', 'register_nm_layer', 'sparse_layers',
    'build_sparsified', 'sparsify',
    '__version__'
]
