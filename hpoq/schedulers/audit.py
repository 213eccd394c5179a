"""Audited pruning: a seeded random sample of the trials ``default`` stops is trained to R anyway, so
that the study can say how often its stops were wrong.

Each stop is audited with probability ``rate``, drawn from ``derive_rng(seed, "audit", trial, epoch)``
(so a resumed study audits the same trials), independently of the trial's values: the audited trials
are a simple random sample of the stopped ones. An audited trial is a *false prune* when its value at
R beats the best value at R of the trials that were never stopped (the ones the study kept). The
estimate x / n of the false-prune rate comes with an exact Clopper-Pearson interval (Clopper &
Pearson, Biometrika 1934), per checkpoint epoch and over all stops; in replay the true rate, over
every stopped trial, is known from the table (``benchmarks/hpo_replay.py`` reports both).

Audits are paid from the stops' savings and never take the study above Hyperband's epochs: a drawn
trial waits at its checkpoint until the audits so far plus this one cost at most ``BUDGET`` of the
epochs the stops have saved (a lower bound: what the stopped trials would have trained up to their
round's end); they start in the order they were drawn, and the draw itself never depends on the
budget, so the sample stays random. Audits still waiting when the study ends are reported as not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hpoq.seeding import derive_rng

#: confidence of the reported intervals
CONFIDENCE = 0.95
#: share of the epochs saved by stops that audits may spend
BUDGET = 0.25


def clopper_pearson(x: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact binomial interval for x successes in n trials ((0, 1) for n = 0)."""
    from scipy.stats import beta  # imported here: scipy.stats costs a second at import

    if n <= 0:
        return 0.0, 1.0
    a = 1.0 - confidence
    lo = 0.0 if x == 0 else float(beta.ppf(a / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(beta.ppf(1 - a / 2, x + 1, n - x))
    return lo, hi


@dataclass
class AuditRecord:
    """One audited stop: the trial, the checkpoint epoch it was stopped at, the test that stopped it."""

    trial_id: int
    epoch: int
    stop: dict

    def to_dict(self) -> dict:
        return {"trial_id": self.trial_id, "epoch": self.epoch, "stop": dict(self.stop)}

    @classmethod
    def from_dict(cls, d: dict) -> "AuditRecord":
        return cls(int(d["trial_id"]), int(d["epoch"]), dict(d["stop"]))


class Audit:
    """The audit sample of one study (see the module docstring)."""

    def __init__(self, rate: float, seed: int, R: int):
        self.rate, self.seed, self.R = float(rate), int(seed), int(R)
        self.records: dict[int, AuditRecord] = {}
        self.waiting: list[int] = []  # drawn, not yet affordable
        self.started: list[int] = []  # trained (or training) to R
        self.saved = 0  # lower bound of the epochs the stops saved
        self.spent = 0  # epochs charged to audits

    def on_stop(self, trial_id: int, epoch: int, round_end: int, stop: dict) -> bool:
        """Record a stop at ``epoch`` of a trial whose round ends at ``round_end``; True when it is drawn for
        the audit (it then waits in :attr:`waiting` until :meth:`next_affordable` starts it)."""
        self.saved += max(int(round_end) - int(epoch), 0)
        if self.rate <= 0 or derive_rng(self.seed, "audit", int(trial_id), int(epoch)).random() >= self.rate:
            return False
        self.records[int(trial_id)] = AuditRecord(int(trial_id), int(epoch), dict(stop))
        self.waiting.append(int(trial_id))
        return True

    def affordable(self, tid: int) -> bool:
        """The saved epochs cover training audit ``tid`` to R (with the audits already started)."""
        return self.spent + self.R - self.records[tid].epoch <= BUDGET * self.saved

    def next_affordable(self) -> int | None:
        """The longest-waiting audit, started (charged) if the budget covers it now, else None."""
        if not self.waiting or not self.affordable(self.waiting[0]):
            return None
        tid = self.waiting.pop(0)
        self.spent += self.R - self.records[tid].epoch
        self.started.append(tid)
        return tid

    def estimate(self, finals: dict[int, float], kept_best: float, epoch: int | None = None) -> dict:
        """False-prune estimate: ``finals`` maps audited trials that reached R to their value there;
        ``kept_best`` is the best value at R of the trials never stopped. ``epoch`` restricts to stops
        at that checkpoint."""
        done = [finals[t] for t, rec in self.records.items() if t in finals and (epoch is None or rec.epoch == epoch)]
        x = sum(1 for v in done if math.isfinite(kept_best) and v < kept_best)
        lo, hi = clopper_pearson(x, len(done))
        pending = sum(1 for t, rec in self.records.items() if t not in finals and (epoch is None or rec.epoch == epoch))
        return {
            "audited": len(done),
            "pending": pending,
            "false_prunes": x,
            "rate": x / len(done) if done else None,
            "low": lo,
            "high": hi,
            "confidence": CONFIDENCE,
        }

    def state_dict(self) -> dict:
        return {
            "records": [r.to_dict() for r in self.records.values()],
            "waiting": list(self.waiting),
            "started": list(self.started),
            "saved": self.saved,
            "spent": self.spent,
        }

    def load_state_dict(self, state: dict) -> None:
        self.records = {int(d["trial_id"]): AuditRecord.from_dict(d) for d in state["records"]}
        self.waiting = [int(t) for t in state["waiting"]]
        self.started = [int(t) for t in state["started"]]
        self.saved, self.spent = int(state["saved"]), int(state["spent"])
