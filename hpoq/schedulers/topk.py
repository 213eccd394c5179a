"""``topk-1epoch`` baseline: every configuration gets 1 epoch, then the best K are trained to R.

``n`` configurations (default: as many as Hyperband samples at the same R and eta) are trained
for one epoch; after that barrier the ``K`` best by value at epoch 1 (stable ties on trial id)
continue from their checkpoint to R. Default ``K`` = the number of configurations Hyperband
trains to R over all its brackets (the sum of the last rounds' n_s: 16 for R = 100, eta = 2), so
both train the same number of configurations fully.
"""

from __future__ import annotations

import math
from typing import Sequence

from hpoq.errors import ConfigError
from hpoq.registry import Interval
from hpoq.schedulers.base import CONTINUE, DONE, FAILED, PAUSE, STOP, Decision, Scheduler, Status, WorkUnit
from hpoq.schedulers.brackets import Bracket, budget_of, check_r_eta, hyperband_budget, hyperband_schedule, schedule_of
from hpoq.schedulers.sampling import skipped_draws
from hpoq.schedulers.trials import Trial, best_at, check_metrics, draw_trial, rank_by_value, take_inflight


def hyperband_full_trainings(R: int, eta: int) -> int:
    """Configurations Hyperband trains to R: sum over brackets of the last round's n_s."""
    return full_trainings_of(hyperband_schedule(R, eta))


def full_trainings_of(brackets: list[Bracket]) -> int:
    """:func:`hyperband_full_trainings` of the Hyperband ``brackets`` (R and eta validated already)."""
    return sum(b.rounds[-1][0] for b in brackets)


class TopK1Epoch(Scheduler):
    """All ``n`` configurations for 1 epoch, then the best ``K`` to ``R`` epochs."""

    name = "topk-1epoch"
    parameter_constraints = {"n": [Interval(int, 1, None), None], "K": [Interval(int, 1, None), None]}
    supports_dedupe = True

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0, n: int | None = None, K: int | None = None):
        self.R, self.eta = check_r_eta(R, eta)
        self.sampler, self.seed = sampler, int(seed)
        brackets = schedule_of(self.R, self.eta)
        self.n = budget_of(brackets)[0] if n is None else int(n)
        self.K = full_trainings_of(brackets) if K is None else int(K)
        if self.n < 1 or self.K < 1:
            raise ConfigError(f"{self.name}: n and K must be at least 1, got n={self.n}, K={self.K}")
        self.K = min(self.K, self.n)
        self.trials: dict[int, Trial] = {}
        self.queue: list[list[int]] = []  # [trial_id, end_epoch] of phase-2 units
        self.inflight: dict[int, int] = {}
        self.phase = 1

    def suggest(self) -> WorkUnit | None:
        trial = self._draw() if self.phase == 1 and not self.queue else None
        if trial is not None:
            end = 1
        elif self.queue:
            tid, end = self.queue.pop(0)
            trial = self.trials[tid]
        else:
            return None
        self.inflight[trial.trial_id] = end
        return WorkUnit(trial.trial_id, dict(trial.config), trial.epochs, end)

    def _draws(self) -> int:
        """Draws so far: trials plus repeats skipped by a deduplicating sampler."""
        return len(self.trials) + skipped_draws(self.sampler)

    def _draw(self) -> Trial | None:
        return draw_trial(self.trials, self.sampler, self.n)

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        end = take_inflight(self.inflight, trial_id, self.name, "result for")
        trial = self.trials[trial_id]
        trial.curve.extend(check_metrics(trial_id, metrics, trial.epochs, end))
        if end >= self.R:
            trial.status = Status.DONE
            decisions = [Decision(trial_id, DONE, end, "completed", {"value": trial.value_at(end)})]
        else:
            trial.status = Status.PAUSED
            decisions = [Decision(trial_id, PAUSE, end, "screened", {"value": trial.value_at(end)})]
        return decisions + self._maybe_select()

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        take_inflight(self.inflight, trial_id, self.name, "failure of")
        trial = self.trials[trial_id]
        trial.status = Status.FAILED
        return [Decision(trial_id, FAILED, trial.epochs, "failed", {"error": str(reason)})] + self._maybe_select()

    def _maybe_select(self) -> list[Decision]:
        if self.phase != 1 or self._draws() < self.n or self.inflight or self.queue:
            return []
        self.phase = 2
        ranked = rank_by_value(self.trials.values(), 1)
        keep = [t for t in ranked[: self.K] if math.isfinite(t.value_at(1))]
        cutoff = keep[-1].value_at(1) if keep else math.inf
        decisions = []
        for rank, t in enumerate(ranked):
            info = {"rank": rank, "K": self.K, "value": t.value_at(1), "cutoff": cutoff}
            if t in keep:
                decisions.append(Decision(t.trial_id, CONTINUE, 1, "top-k", info))
            elif t.status != Status.FAILED:
                t.status = Status.PRUNED
                decisions.append(Decision(t.trial_id, STOP, 1, "top-k", info))
        self.queue = [[t.trial_id, self.R] for t in keep]
        return decisions

    @property
    def finished(self) -> bool:
        return self.phase == 2 and not self.queue and not self.inflight

    def best(self) -> dict | None:
        return best_at(self.trials.values(), self.R)

    def epochs_budget_reference(self) -> int | None:
        return hyperband_budget(self.R, self.eta)[1]

    def state_dict(self) -> dict:
        requeue = [[tid, end] for tid, end in self.inflight.items() if end > 1]
        phase1_lost = [tid for tid, end in self.inflight.items() if end == 1]
        return {
            "algorithm": self.name,
            "R": self.R,
            "eta": self.eta,
            "n": self.n,
            "K": self.K,
            "seed": self.seed,
            "sampler": self.sampler.state_dict(),
            "trials": [t.to_dict() for t in self.trials.values()],
            "queue": [[tid, 1] for tid in phase1_lost] + requeue + [list(q) for q in self.queue],
            "phase": self.phase,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("algorithm") != self.name or state["R"] != self.R or state["n"] != self.n or state["K"] != self.K:
            raise ConfigError(f"{self.name}: saved state does not match this scheduler (R, n, K)")
        self.sampler.load_state_dict(state["sampler"])
        self.trials = {int(d["trial_id"]): Trial.from_dict(d) for d in state["trials"]}
        self.queue = [[int(t), int(e)] for t, e in state["queue"]]
        self.inflight = {}
        self.phase = int(state["phase"])
