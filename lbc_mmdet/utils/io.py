"""Files that a kill cannot truncate: written to a temporary file, renamed into place."""
import io
import os
import os.path as osp
import tempfile
from typing import Any, Union

import torch


def atomic_write(path: Union[str, os.PathLike], data: Union[bytes, str],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` atomically.

    The data goes to a temporary file in the same folder, renamed into place once
    complete (``os.replace``): readers see the old file or the new one, never a partial
    one. The folder is created if needed.

    Args:
        path (str | os.PathLike): The file to write.
        data (bytes | str): Its content; a ``str`` is encoded with ``encoding``.
        encoding (str): The encoding of a ``str``. Defaults to ``'utf-8'``.
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp',
                               dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_write`.

    Args:
        obj (Any): What to save.
        path (str | os.PathLike): The file to write.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())
