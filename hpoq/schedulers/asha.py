"""``asha``: asynchronous successive halving (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020, Algorithm 2), promotion variant with checkpoint resume.

Rungs sit at ``r_k = grace * eta**k`` epochs for every ``r_k < R``, plus a last rung at ``R``
(grace 1, eta 2, R 100: 1, 2, 4, 8, 16, 32, 64, 100). Whenever a worker asks for work
(:meth:`ASHA.suggest`), the highest rung with a *promotable* trial wins: a trial is promotable
from rung ``k`` when it ranks in the top ``floor(|rung k| / eta)`` of the results recorded at
rung ``k`` so far (ties by (value, trial id), docs/algorithms.md#conventions) and was not promoted yet. A promotion
resumes from the checkpoint and trains only ``r_{k+1} - r_k`` more epochs. Otherwise a new
configuration starts at the bottom rung, until ``n`` configurations were sampled (default: as
many as Hyperband samples at the same R and eta, so that both see the same configurations).

ASHA never waits for a rung to fill: no barrier. When every configuration is sampled, nothing
is in flight and nothing is promotable, the search ends; if no trial reached ``R`` by then (tiny
``n``), the best trial of the highest occupied rung is promoted one rung at a time until one
does, so that the answer is always a fully trained configuration.
"""

from __future__ import annotations

from typing import Sequence

from hpoq.registry import Interval, check_int
from hpoq.schedulers.base import CONTINUE, DONE, FAILED, PAUSE, STOP, Decision, Scheduler, Status, WorkUnit
from hpoq.schedulers.brackets import budget_of, check_r_eta, hyperband_budget, schedule_of
from hpoq.schedulers.rungs import Rungs


class ASHA(Scheduler):
    """Asynchronous successive halving with promotions (registry name ``asha``).

    Parameters: ``R`` (max epochs per configuration), ``eta`` (reduction factor, >= 2),
    ``sampler`` (a :class:`~hpoq.schedulers.base.ConfigSampler`), ``seed`` (unused by the
    rule itself, recorded), ``n`` (configurations to sample; default Hyperband's count at the
    same R and eta, e.g. 163 for R = 100, eta = 2), ``grace`` (epochs of the first rung, default 1).
    ASHA compares observed rung values only: it takes no predictor and no warm curves (a study
    file's ``predictor:`` section is refused for it, as for ``hyperband``).
    """

    name = "asha"
    supports_dedupe = True
    parameter_constraints = {"n": [Interval(int, 1, None), None], "grace": [Interval(int, 1, None)]}

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0, n: int | None = None, grace: int = 1):
        super().__init__(sampler)
        self.R, self.eta = check_r_eta(R, eta)
        grace = check_int(f"asha: grace (first-rung epochs, R = {self.R})", grace, 1, self.R)
        if n is None:
            n = budget_of(schedule_of(self.R, self.eta))[0]
        n = check_int("asha: n (configurations to sample)", n, 1)
        self.seed = int(seed)
        self.n = n
        self.grace = grace
        self.ladder = Rungs(self.R, self.eta, grace)
        self.rungs = self.ladder.epochs
        self.pending: list[Decision] = []  # promotion decisions made in suggest()

    # ---------------------------------------------------------------- rule
    def _promotable(self, k: int) -> tuple[int, dict] | None:
        """The best not-yet-promoted trial of rung ``k`` inside its top floor(|rung|/eta), if any."""
        found = self.ladder.promotable(k, self.ledger.failed)
        if found is None:
            return None
        rank, value, tid = found
        return tid, {
            "rung": k,
            "rung_epoch": self.rungs[k],
            "value": value,
            "rank": rank,
            "rung_size": len(self.ladder.results[k]),
            "quota": self.ladder.quota(k),
        }

    def _best_of_highest_rung(self) -> tuple[int, int] | None:
        """(rung, trial) of the best unpromoted trial in the highest occupied rung below R."""
        for k in range(len(self.rungs) - 2, -1, -1):
            first = self.ladder.first_unpromoted(k, self.ledger.failed)
            if first is not None:
                return k, first[1]
        return None

    def _reached_R(self) -> bool:
        return self.ladder.reached_top()

    def _promote(self, k: int, tid: int, info: dict, reason: str) -> WorkUnit:
        self.ladder.promote(k, tid)
        self.pending.append(Decision(tid, CONTINUE, self.rungs[k], reason, info))
        return self.ledger.start(tid, self.rungs[k], self.rungs[k + 1])

    def suggest(self) -> WorkUnit | None:
        unit = self.ledger.resume_unit()
        if unit is not None:
            return unit
        for k in range(len(self.rungs) - 2, -1, -1):
            found = self._promotable(k)
            if found is not None:
                return self._promote(k, found[0], found[1], "rung")
        trial = self.ledger.draw_until(self.n)  # a repeat skipped by the study's dedupe option counts as a draw
        if trial is not None:
            return self.ledger.start(trial.trial_id, 0, self.rungs[0])
        if not self.ledger.inflight and not self._reached_R():
            # tiny n: nothing reached R; train the best of the highest rung on so that one does
            found = self._best_of_highest_rung()
            if found is not None:
                k, tid = found
                value = min(v for v, t in self.ladder.results[k] if t == tid)
                return self._promote(
                    k,
                    tid,
                    {"rung": k, "rung_epoch": self.rungs[k], "value": value, "rung_size": len(self.ladder.results[k])},
                    "finish",
                )
        return None

    def _flush(self, decisions: list[Decision]) -> list[Decision]:
        out, self.pending = self.pending + decisions, []
        if self.finished:
            paused = [
                t
                for t in self.ledger.trials.values()
                if t.curve
                and len(t.curve) < self.R
                and t.status not in (Status.FAILED, Status.PRUNED)
                and t.trial_id not in self.ladder.promoted[self.ladder.index(len(t.curve))]
            ]
            for t in paused:
                t.status = Status.PRUNED
                out.append(Decision(t.trial_id, STOP, t.epochs, "rung", {"final_rung_epoch": t.epochs}))
        return out

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        _, end = self.ledger.finish(trial_id, metrics, self.name)
        trial = self.ledger.trials[trial_id]
        info = self.ladder.record(self.ladder.index(end), trial_id, trial.curve[-1])  # NaN/inf rank last
        if end == self.R:
            trial.status = Status.DONE
            return self._flush([Decision(trial_id, DONE, end, "completed", info)])
        trial.status = Status.PAUSED
        return self._flush([Decision(trial_id, PAUSE, end, "rung", info)])

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        start, _ = self.ledger.fail(trial_id, self.name)
        return self._flush([Decision(trial_id, FAILED, start, "failed", {"error": str(reason)})])

    @property
    def finished(self) -> bool:
        ledger = self.ledger
        if ledger.requeue or ledger.inflight or ledger.draws < self.n:
            return False
        if any(self._promotable(k) is not None for k in range(len(self.rungs) - 1)):
            return False
        return self._reached_R() or self._best_of_highest_rung() is None

    def best(self) -> dict | None:
        for k in range(len(self.rungs) - 1, -1, -1):
            first = self.ladder.first(k, self.ledger.failed)
            if first is not None:
                value, tid = first
                config = self.ledger.trials[tid].config
                return {"trial_id": tid, "config": dict(config), "value": value, "epoch": self.rungs[k]}
        return None

    def epochs_budget_reference(self) -> int | None:
        return hyperband_budget(self.R, self.eta)[1]

    # ---------------------------------------------------------------- state
    def settings(self) -> dict:
        return {"R": self.R, "eta": self.eta, "n": self.n, "grace": self.grace, "seed": self.seed}

    def decision_state(self) -> dict:
        ladder = self.ladder.state_dict()
        return {
            "rung_results": ladder["results"],
            "promoted": ladder["promoted"],
            "pending": [d.to_dict() for d in self.pending],
        }

    def load_decision_state(self, state: dict) -> None:
        self.ladder.load_state_dict(
            {"epochs": self.rungs, "results": state["rung_results"], "promoted": state["promoted"]}
        )
        self.pending = [Decision.from_dict(d) for d in state["pending"]]
