"""SIGTERM / SIGUSR1 handling: the master stops handing out work and exits with a resumable directory.

Slurm sends SIGUSR1 ahead of the time limit (``#SBATCH --signal=USR1@120``) and SIGTERM at it;
``scancel`` sends SIGTERM. Both may reach every rank of the job step, so every rank installs
:class:`StopSignals`: the master reacts (stop dispatching, let the running units finish, write a
snapshot, exit 0); workers only record the signal and wait for the master's stop message, so a
signal never kills a rank in the middle of a checkpoint write. A second signal on the master stops
waiting for the running units (their work is lost and re-run on resume).
"""

from __future__ import annotations

import logging
import signal

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Counts stop signals; install with :meth:`install`, restore the old handlers with :meth:`restore`."""

    def __init__(self, role: str = "master"):
        self.role = role
        self.count = 0
        self.last: str | None = None
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        self.count += 1
        self.last = signal.Signals(signum).name
        if self.role == "master":
            log.warning("received %s (%d): stopping after the running work units", self.last, self.count)

    def install(self) -> "StopSignals":
        for sig in STOP_SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave the default handlers
                pass
        return self

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    @property
    def requested(self) -> bool:
        return self.count > 0
