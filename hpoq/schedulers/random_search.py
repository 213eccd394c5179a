"""Random search baseline: every sampled configuration is trained to R in one unit.

It samples as many configurations as Hyperband does at the same R and eta (e.g. 163 for
R = 100, eta = 2), unless ``n`` is given, so that the two see the same configurations for a seed.
Units are independent, so any number of workers is kept busy.
"""

from __future__ import annotations

from typing import Sequence

from hpoq.errors import ConfigError
from hpoq.registry import Interval
from hpoq.schedulers.base import DONE, FAILED, Decision, Scheduler, Status, WorkUnit
from hpoq.schedulers.brackets import budget_of, check_r_eta, hyperband_budget, schedule_of
from hpoq.schedulers.trials import best_at


class RandomSearch(Scheduler):
    """Train ``n`` sampled configurations to ``R`` epochs each (``n`` default: Hyperband's count).

    Everything it keeps is the ledger's: it decides nothing but "done"."""

    name = "random"
    parameter_constraints = {"n": [Interval(int, 1, None), None]}
    supports_dedupe = True

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0, n: int | None = None):
        super().__init__(sampler)
        self.R, self.eta = check_r_eta(R, eta)
        self.seed = int(seed)
        self.n = budget_of(schedule_of(self.R, self.eta))[0] if n is None else int(n)
        if self.n < 1:
            raise ConfigError(f"{self.name}: n must be at least 1, got {n!r}")

    def suggest(self) -> WorkUnit | None:
        unit = self.ledger.resume_unit()
        if unit is not None:
            return unit
        trial = self.ledger.draw_until(self.n)
        return None if trial is None else self.ledger.start(trial.trial_id, 0, self.R)

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        self.ledger.finish(trial_id, metrics, self.name)
        trial = self.ledger.trials[trial_id]
        trial.status = Status.DONE
        return [Decision(trial_id, DONE, self.R, "completed", {"value": trial.value_at(self.R)})]

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        self.ledger.fail(trial_id, self.name)
        return [Decision(trial_id, FAILED, 0, "failed", {"error": str(reason)})]

    @property
    def finished(self) -> bool:
        ledger = self.ledger
        return ledger.draws >= self.n and not ledger.inflight and not ledger.requeue

    def best(self) -> dict | None:
        return best_at(self.ledger.trials.values(), self.R)

    def epochs_budget_reference(self) -> int | None:
        return hyperband_budget(self.R, self.eta)[1]

    def settings(self) -> dict:
        return {"R": self.R, "eta": self.eta, "n": self.n, "seed": self.seed}
