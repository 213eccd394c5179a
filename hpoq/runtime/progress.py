"""Live progress of the master: a tqdm bar on stderr (when it is a terminal) and periodic log lines.

The bar counts epochs trained against plain Hyperband's budget at the same R and eta
(:func:`hpoq.schedulers.brackets.hyperband_budget`); its postfix shows trials running, done,
pruned, paused and failed, and the best value so far (metric's own direction). Every
``log_every`` seconds the same line goes to the ``hpoq.runtime.progress`` logger at INFO level
(``python -m hpoq.main --log-level INFO run ...``), which is what batch jobs see. Only rank 0
has a Progress; other ranks stay quiet.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


class Progress:
    def __init__(
        self,
        budget: int | None,
        mode: str,
        initial: int = 0,
        interval: float = 0.5,
        log_every: float = 10.0,
        enabled: bool | None = None,
    ):
        self.budget = budget
        self.mode = mode
        self.interval = interval
        self.log_every = log_every
        self._last = 0.0
        self._last_log = time.monotonic()
        self._bar = None
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=budget,
                initial=initial,
                unit="epoch",
                desc="hpoq",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=interval,
            )

    def line(self, master) -> str:
        c = master.state.counts()
        best = master.scheduler.best()
        best_s = "-"
        if best:
            value = float(best["value"])
            best_s = f"{-value if self.mode == 'max' else value:.6g} (trial {best['trial_id']})"
        budget = f"/{self.budget}" if self.budget else ""
        return (
            f"epochs {master.state.epochs_used}{budget} | running {c['running']} done {c['done']} pruned {c['pruned']} "
            f"paused {c['paused']} failed {c['failed']} | best {best_s}"
        )

    def update(self, master, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self._bar is not None:
            c = master.state.counts()
            self._bar.n = master.state.epochs_used
            best = master.scheduler.best()
            postfix = {"run": c["running"], "done": c["done"], "pruned": c["pruned"], "failed": c["failed"]}
            if best:
                v = float(best["value"])
                postfix["best"] = f"{-v if self.mode == 'max' else v:.5g}"
            self._bar.set_postfix(postfix, refresh=True)
        if (force or now - self._last_log >= self.log_every) and log.isEnabledFor(logging.INFO):
            self._last_log = now  # the line asks for counts over every trial and for the answer: only when logged
            log.info("%s", self.line(master))

    def close(self, master=None) -> None:
        if master is not None:
            self.update(master, force=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
