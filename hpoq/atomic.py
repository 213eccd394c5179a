"""Atomic file writes: a reader (or a resumed study) sees the old file or the new one, never half.

Every output that must survive a crash (tables, stores, checkpoints, manifests, reports) is
written to a temporary file in the same directory and renamed over the target.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


@contextmanager
def atomic_path(path, fsync: bool = False):
    """Yield a temporary path next to ``path``; on success rename it over ``path``, else delete it.

    ``fsync``: flush the file to disk before the rename (journals, manifests).
    """
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path, data: bytes | str, fsync: bool = False) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
