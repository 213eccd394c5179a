"""SIGTERM / SIGUSR1 handling: the master stops handing out work and exits with a resumable directory.

Slurm sends SIGUSR1 ahead of the time limit (``#SBATCH --signal=USR1@120``) and SIGTERM at it;
``scancel`` sends SIGTERM. Both may reach every rank of the job step, so every rank installs
:class:`StopSignals`: the master reacts (stop dispatching, let the running units finish, write a
snapshot, exit 0); workers only record the signal and wait for the master's stop message, so a
signal never kills a rank in the middle of a checkpoint write. A second stop on the master stops
waiting for the running units (their work is lost and re-run on resume).

One preemption is one stop however many copies of its signal arrive: ``scancel --signal=USR1 --full``
reaches the master from slurmstepd *and* through the batch script's trap forwarded by ``srun``, and
``scancel`` / ``scontrol requeue`` do the same with TERM. A signal counts as a second stop only when
it differs from the previous one (USR1, then the time limit's TERM) or arrives more than
:data:`COPY_WINDOW_S` seconds after it (a user repeating ``kill``).
"""

from __future__ import annotations

import logging
import signal
import time

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
#: seconds within which a repeat of the same signal is a copy of it: Slurm's copies arrive milliseconds apart
#: (measured on the local Slurm: tests/test_slurm.py), a person repeating ``kill`` takes longer
COPY_WINDOW_S = 1.0


class StopSignals:
    """Counts stop requests (copies of one signal count once); install with :meth:`install`, restore the old
    handlers with :meth:`restore`. ``clock``: seconds, monotonic (tests pass their own)."""

    def __init__(self, role: str = "master", clock=time.monotonic):
        self.role = role
        self.count = 0  # stop requests
        self.copies = 0  # signals taken as copies of the previous one
        self.last: str | None = None
        self._last_at = -float("inf")
        self._clock = clock
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        self.receive(signal.Signals(signum).name)

    def receive(self, name: str) -> None:
        """Record one delivery of signal ``name`` (the handler's work; tests call it directly)."""
        now = self._clock()
        copy = name == self.last and now - self._last_at <= COPY_WINDOW_S
        self._last_at = now
        if copy:
            self.copies += 1
            if self.role == "master":
                log.info("received %s again within %g s: the same stop", name, COPY_WINDOW_S)
            return
        self.count += 1
        self.last = name
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
