"""One back-off helper for every polling loop of the runtime (master, workers, start-up).

Every rank polls (probe + sleep) instead of blocking in ``recv``: a blocked MPICH rank spins at
100% of a core, which on shared cores steals CPU from training (docs/runtime.md#the-master-loop). Right after
activity a loop may poll faster for a short window (a worker expects its next unit within
milliseconds of sending a result), then falls back to its interval.
"""

from __future__ import annotations

import time

FAST_POLL_S = 0.0005  # sleep between polls inside the fast window, seconds


class Backoff:
    """Sleeps ``interval`` seconds between polls, ``fast`` seconds for ``window`` seconds after :meth:`busy`."""

    def __init__(self, interval: float, fast: float = FAST_POLL_S, window: float = 0.0):
        self.interval, self.fast_s, self.window = float(interval), float(fast), float(window)
        self.fast_until = 0.0

    def busy(self) -> None:
        """Something happened: poll fast for the next ``window`` seconds."""
        if self.window > 0:
            self.fast_until = time.monotonic() + self.window

    def sleep(self) -> None:
        time.sleep(self.fast_s if self.window > 0 and time.monotonic() < self.fast_until else self.interval)


def wait_for(probe, backoff: Backoff):
    """Call ``probe()`` until it returns something other than None, sleeping by ``backoff``; that value."""
    while True:
        value = probe()
        if value is not None:
            return value
        backoff.sleep()
