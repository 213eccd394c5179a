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
from hpoq.schedulers.sampling import skipped_draws
from hpoq.schedulers.trials import Trial, best_at, check_metrics, draw_trial, take_inflight


class RandomSearch(Scheduler):
    """Train ``n`` sampled configurations to ``R`` epochs each (``n`` default: Hyperband's count)."""

    name = "random"
    parameter_constraints = {"n": [Interval(int, 1, None), None]}
    supports_dedupe = True

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0, n: int | None = None):
        self.R, self.eta = check_r_eta(R, eta)
        self.sampler, self.seed = sampler, int(seed)
        self.n = budget_of(schedule_of(self.R, self.eta))[0] if n is None else int(n)
        if self.n < 1:
            raise ConfigError(f"{self.name}: n must be at least 1, got {n!r}")
        self.trials: dict[int, Trial] = {}
        self.inflight: set[int] = set()
        self.requeue: list[int] = []

    def suggest(self) -> WorkUnit | None:
        if self.requeue:
            trial = self.trials[self.requeue.pop(0)]
        else:
            trial = self._draw()
            if trial is None:
                return None
        self.inflight.add(trial.trial_id)
        return WorkUnit(trial.trial_id, dict(trial.config), 0, self.R)

    def _draw(self) -> Trial | None:
        return draw_trial(self.trials, self.sampler, self.n)

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        take_inflight(self.inflight, trial_id, self.name, "result for")
        trial = self.trials[trial_id]
        trial.curve.extend(check_metrics(trial_id, metrics, trial.epochs, self.R))
        trial.status = Status.DONE
        return [Decision(trial_id, DONE, self.R, "completed", {"value": trial.value_at(self.R)})]

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        take_inflight(self.inflight, trial_id, self.name, "failure of")
        self.trials[trial_id].status = Status.FAILED
        return [Decision(trial_id, FAILED, 0, "failed", {"error": str(reason)})]

    @property
    def finished(self) -> bool:
        return len(self.trials) + skipped_draws(self.sampler) >= self.n and not self.inflight and not self.requeue

    def best(self) -> dict | None:
        return best_at(self.trials.values(), self.R)

    def epochs_budget_reference(self) -> int | None:
        return hyperband_budget(self.R, self.eta)[1]

    def state_dict(self) -> dict:
        return {
            "algorithm": self.name,
            "R": self.R,
            "eta": self.eta,
            "n": self.n,
            "seed": self.seed,
            "sampler": self.sampler.state_dict(),
            "trials": [t.to_dict() for t in self.trials.values()],
            "requeue": sorted(self.inflight) + list(self.requeue),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("algorithm") != self.name or state["R"] != self.R or state["n"] != self.n:
            raise ConfigError(f"{self.name}: saved state does not match this scheduler (R, n)")
        self.sampler.load_state_dict(state["sampler"])
        self.trials = {int(d["trial_id"]): Trial.from_dict(d) for d in state["trials"]}
        self.inflight = set()
        self.requeue = [int(t) for t in state["requeue"]]
