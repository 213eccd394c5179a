"""One master per output directory: an exclusive ``fcntl`` lock on ``OUTDIR/.hpoq.lock`` for the master's life.

Two masters on one directory interleave their journal records and overwrite each other's
checkpoints, and the study is lost. The lock is a POSIX record lock (``fcntl.lockf``): the kernel
drops it when the process ends however it ends (SIGKILL, node crash on a local disk), so a stale
lock file left by a dead master never blocks a resume; on NFS the server's lock manager does the
same once the client is gone. The file holds the holder's host, pid and start time (JSON) for the
error message of the master that is refused.

Caveats: POSIX locks belong to the process and are dropped when *any* descriptor of the file is
closed, so nothing else in the master may open the lock file; on Lustre the client must be mounted
with ``-o flock`` (else ``lockf`` fails with ENOSYS and the master stops with that error).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import struct
import time

from hpoq.errors import ConfigError

LOCK_FILE = ".hpoq.lock"
_FLOCK = "hhqqi4x"  # struct flock on Linux (64-bit off_t), padded to its 32 bytes


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("started", 0))))
        return f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, since {started}"
    except (OSError, ValueError, TypeError, AttributeError):
        return "holder unknown"


class DirLock:
    """The master's lock on its output directory; :meth:`acquire` raises ConfigError when another holds it."""

    def __init__(self, path: str, fd: int, created: bool = False):
        self.path = path
        self._fd = fd
        self.created = created  # this lock made the file (a refused resume removes it again)

    @classmethod
    def acquire(cls, out_dir: str) -> "DirLock":
        path = os.path.join(out_dir, LOCK_FILE)
        try:
            try:
                fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                fd, created = os.open(path, os.O_RDWR), False
        except OSError as exc:
            raise ConfigError(f"cannot write in output directory {out_dir!r} ({exc.strerror})") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise ConfigError(
                    f"output directory {out_dir!r} is in use by another master ({_holder(path)}); "
                    "wait for it to end or stop it, then resume"
                ) from None
            raise ConfigError(
                f"cannot lock output directory {out_dir!r} ({exc.strerror}; on Lustre mount with -o flock)"
            ) from None
        info = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode("utf-8"), 0)
        except OSError:
            pass  # the lock holds without the note (a full disk); the refused master then says "holder unknown"
        return cls(path, fd, created)

    def discard(self) -> None:
        """Release the lock and remove its file if this lock made it: a refused start leaves the directory as it was."""
        if self.created and self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.release()

    @staticmethod
    def holder(out_dir: str) -> int | bool | None:
        """Who holds the lock of ``out_dir``, asked without taking it (``F_GETLK``).

        The holder's pid (0 when the kernel does not say, as for a holder on another NFS client),
        False when nobody holds it (no master runs there, whatever the journal's header says: its pid
        may long belong to another process), None when it cannot be told (no lock file, no read access).
        For other processes (``status``) only: a master that opened its own lock file would drop its lock.
        """
        path = os.path.join(out_dir, LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            # struct flock {short l_type, l_whence; off_t l_start, l_len; pid_t l_pid}: would a write lock
            # on the whole file conflict, and with whom?
            query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        except OSError:
            return None
        finally:
            os.close(fd)
        l_type, _, _, _, l_pid = struct.unpack(_FLOCK, answer)
        return False if l_type == fcntl.F_UNLCK else max(int(l_pid), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
