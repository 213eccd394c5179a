"""Check that a place can be written before any work starts, so that it fails in one line, not mid-way."""

from __future__ import annotations

import os
import tempfile

from hpoq.errors import ConfigError


def check_writable_dir(path: str, what: str) -> None:
    """Raise ConfigError unless directory ``path`` exists and takes a file, or could be created (writes nothing).

    Catches a path under a regular file, a read-only or immutable directory, a read-only mount
    and a full disk (a probe file is created and removed in the nearest existing directory).
    """
    path = os.path.abspath(path)
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise ConfigError(f"{what} {path!r}: {existing!r} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".hpoq-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{what} {path!r}: cannot write in {existing!r} ({exc.strerror})") from None
