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
from hpoq.schedulers.trials import best_at, rank_by_value


def hyperband_full_trainings(R: int, eta: int) -> int:
    """Configurations Hyperband trains to R: sum over brackets of the last round's n_s."""
    return full_trainings_of(hyperband_schedule(R, eta))


def full_trainings_of(brackets: list[Bracket]) -> int:
    """:func:`hyperband_full_trainings` of the Hyperband ``brackets`` (R and eta validated already)."""
    return sum(b.rounds[-1][0] for b in brackets)


class TopK1Epoch(Scheduler):
    """All ``n`` configurations for 1 epoch, then the best ``K`` to ``R`` epochs. It decides the phase and the
    queue of phase-2 units; the rest is the ledger's."""

    name = "topk-1epoch"
    parameter_constraints = {"n": [Interval(int, 1, None), None], "K": [Interval(int, 1, None), None]}
    supports_dedupe = True

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0, n: int | None = None, K: int | None = None):
        super().__init__(sampler)
        self.R, self.eta = check_r_eta(R, eta)
        self.seed = int(seed)
        brackets = schedule_of(self.R, self.eta)
        self.n = budget_of(brackets)[0] if n is None else int(n)
        self.K = full_trainings_of(brackets) if K is None else int(K)
        if self.n < 1 or self.K < 1:
            raise ConfigError(f"{self.name}: n and K must be at least 1, got n={self.n}, K={self.K}")
        self.K = min(self.K, self.n)
        self.queue: list[list[int]] = []  # [trial_id, end_epoch] of phase-2 units
        self.phase = 1

    def suggest(self) -> WorkUnit | None:
        ledger = self.ledger
        unit = ledger.resume_unit()
        if unit is not None:
            return unit
        trial = ledger.draw_until(self.n) if self.phase == 1 and not self.queue else None
        if trial is not None:
            return ledger.start(trial.trial_id, 0, 1)
        if self.queue:
            tid, end = self.queue.pop(0)
            return ledger.start(tid, ledger.trials[tid].epochs, end)
        return None

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        _, end = self.ledger.finish(trial_id, metrics, self.name)
        trial = self.ledger.trials[trial_id]
        if end >= self.R:
            trial.status = Status.DONE
            decisions = [Decision(trial_id, DONE, end, "completed", {"value": trial.value_at(end)})]
        else:
            trial.status = Status.PAUSED
            decisions = [Decision(trial_id, PAUSE, end, "screened", {"value": trial.value_at(end)})]
        return decisions + self._maybe_select()

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        self.ledger.fail(trial_id, self.name)
        epochs = self.ledger.trials[trial_id].epochs
        return [Decision(trial_id, FAILED, epochs, "failed", {"error": str(reason)})] + self._maybe_select()

    def _maybe_select(self) -> list[Decision]:
        ledger = self.ledger
        if self.phase != 1 or ledger.draws < self.n or ledger.inflight or ledger.requeue or self.queue:
            return []
        self.phase = 2
        ranked = rank_by_value(ledger.trials.values(), 1)
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
        return self.phase == 2 and not self.queue and not self.ledger.inflight and not self.ledger.requeue

    def best(self) -> dict | None:
        return best_at(self.ledger.trials.values(), self.R)

    def epochs_budget_reference(self) -> int | None:
        return hyperband_budget(self.R, self.eta)[1]

    def settings(self) -> dict:
        return {"R": self.R, "eta": self.eta, "n": self.n, "K": self.K, "seed": self.seed}

    def decision_state(self) -> dict:
        return {"phase": self.phase, "queue": [list(q) for q in self.queue]}

    def load_decision_state(self, state: dict) -> None:
        self.phase = int(state["phase"])
        self.queue = [[int(t), int(e)] for t, e in state["queue"]]
