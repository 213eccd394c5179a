"""Check that a place can be written before any work starts, so that it fails in one line, not mid-way.

And that it is hpoq's to write: no command writes into a user's directory or replaces a user's file.
An output directory must be new, empty, or one this very command made before (its own leftovers);
an output file must be new or one hpoq wrote (or the user said ``--overwrite``).
"""

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


def foreign_entries(path: str, ours) -> list[str]:
    """Entries of directory ``path`` (relative, sorted, walked recursively) for which ``ours(rel)`` is False.

    ``ours`` gets each relative path (folders end with ``/``); a folder that is ours is walked into,
    one that is not is reported without its contents. A missing directory has none.
    """
    if not os.path.isdir(path):
        return []
    found: list[str] = []

    def walk(rel: str) -> None:
        for name in sorted(os.listdir(os.path.join(path, rel) if rel else path)):
            sub = os.path.join(rel, name) if rel else name
            full = os.path.join(path, sub)
            if os.path.isdir(full) and not os.path.islink(full):
                if ours(sub + "/"):
                    walk(sub)
                else:
                    found.append(sub + "/")
            elif not ours(sub):
                found.append(sub)

    walk("")
    return found


def refuse_foreign_dir(path: str, what: str, ours, kind: str) -> None:
    """Raise ConfigError (one line) when directory ``path`` holds anything ``ours`` does not claim.

    ``kind`` names what hpoq would recognise there (``an hpoq study``, ``an hpoq dataset``).
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{what} {path!r} exists and is not a directory")
    foreign = foreign_entries(path, ours)
    if foreign:
        shown = ", ".join(repr(f) for f in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(
            f"{what} {path!r} is not empty and is not {kind} (it holds {shown}); hpoq writes only into a new "
            f"or empty directory: choose another"
        )


def same_file(a: str, b: str) -> bool:
    """Do paths ``a`` and ``b`` name the same existing file (hard links and symlinks included)?"""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def inside(path: str, folder: str) -> bool:
    """Is ``path`` ``folder`` itself or anything below it (real paths, so symlinks cannot hide it)?"""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
