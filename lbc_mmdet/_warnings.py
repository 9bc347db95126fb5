"""Targeted filters for warnings that importing this project's stack triggers.

MMEngine 0.10.7 imports ``pkg_resources`` (``setuptools<82`` is pinned because mmcv and
MMEngine's ``mmdet::`` config resolution need it), which warns that the API is deprecated
on every import. Only that message is silenced; every other warning is left alone.
"""
import warnings

#: The start of setuptools' message (``warnings`` matches the start of the text).
PKG_RESOURCES_MESSAGE = 'pkg_resources is deprecated as an API'


def silence_pkg_resources_warning() -> None:
    """Ignore setuptools' ``pkg_resources is deprecated`` UserWarning (idempotent)."""
    warnings.filterwarnings('ignore', message=PKG_RESOURCES_MESSAGE, category=UserWarning)
