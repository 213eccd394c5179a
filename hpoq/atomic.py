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
    try:
        with atomic_path(path, fsync=fsync) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
    except OSError as exc:
        if exc.filename is None:  # a failed write or fsync names no file: say which one it was
            exc.filename = os.fspath(path)
        raise


@contextmanager
def atomic_h5(path, **options):
    """Yield a writable ``h5py.File`` held in memory; on success write its bytes to ``path`` atomically.

    HDF5 never touches the disk itself: on a full disk (or quota, or I/O error) libhdf5 prints its
    error stack, leaves the file object half-closed and crashes the interpreter at exit (exit 139).
    Written this way the failure is one ``OSError`` from :func:`write_atomic` (the temporary file
    removed, ``path`` untouched). The file lives in a ``BytesIO`` (h5py's file-object driver), whose
    gaps read as zeros like a file's holes, so the bytes are those HDF5 writes to disk (the core
    driver's image is not: its unwritten regions hold whatever the memory held). It costs the file's
    size in memory once more. ``options``: ``h5py.File`` options (``track_order``).
    """
    import io

    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w", **options) as f:
        yield f
    write_atomic(path, buffer.getvalue())
