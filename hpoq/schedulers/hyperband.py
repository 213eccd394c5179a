"""Hyperband, exact and synchronous (Li et al., JMLR 2018; hpoq method.md 2).

Brackets run one after the other, s = s_max .. 0 (:func:`~hpoq.schedulers.brackets.hyperband_schedule`).
In round i of a bracket every surviving configuration is trained from its checkpoint at
r_{i-1} to r_i (r_i - r_{i-1} new epochs). The round ends with a barrier: :meth:`suggest` returns
None while units of the round are in flight. Then the top ``max(n_i // eta, 1)`` by value at r_i
(stable ties on trial id; unreached or failed = +inf) are promoted.

Decisions: PAUSE when a trial reaches r_i < R, DONE at R, and at the round end CONTINUE for the
promoted and STOP for the rest. The answer is the lowest value at R (ties: lower trial id, i.e.
earlier bracket).
"""
from __future__ import annotations

import math
from collections import deque
from typing import Sequence

from hpoq.errors import HpoqError
from hpoq.schedulers.base import CONTINUE, DONE, FAILED, PAUSE, STOP, Decision, Scheduler, WorkUnit
from hpoq.schedulers.brackets import check_r_eta, hyperband_budget, hyperband_schedule
from hpoq.schedulers.trials import DONE_, FAILED_, PAUSED, STOPPED, ACTIVE, Trial, best_at, check_metrics, rank_by_value, take_inflight


class Hyperband(Scheduler):
    """Synchronous Hyperband.

    Parameters: ``R`` maximum epochs per configuration (>= 1), ``eta`` discard rate (integer >= 2),
    ``sampler`` the :class:`~hpoq.schedulers.base.ConfigSampler` new configurations come from,
    ``seed`` the master seed (recorded; Hyperband itself draws no random numbers).
    """

    name = "hyperband"
    parameter_constraints = {}

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0):
        self.R, self.eta = check_r_eta(R, eta)
        self.sampler = sampler
        self.seed = int(seed)
        self.brackets = hyperband_schedule(self.R, self.eta)
        self.trials: dict[int, Trial] = {}
        self.next_id = 0
        self.b = -1              # index into self.brackets of the running bracket
        self.i = 0               # round index inside the bracket
        self.members: list[int] = []   # trial ids of the running round, in dispatch order
        self.queue: deque = deque()   # (trial_id, end_epoch) runnable now
        self.inflight: dict[int, int] = {}  # trial_id -> end_epoch of its unit in flight
        self._finished = False
        self._advance_bracket()

    # -- schedule position -------------------------------------------------------------------
    @property
    def bracket(self):
        return self.brackets[self.b]

    @property
    def r_i(self) -> int:
        return self.bracket.rounds[self.i][1]

    @property
    def r_prev(self) -> int:
        return 0 if self.i == 0 else self.bracket.rounds[self.i - 1][1]

    @property
    def n_keep(self) -> int:
        """Survivors of the running round: max(n_i // eta, 1) (n_i = configurations in the round)."""
        return max(len(self.members) // self.eta, 1)

    @property
    def last_round(self) -> bool:
        return self.i == self.bracket.s

    def _new_trial(self) -> Trial:
        trial = Trial(self.next_id, self.sampler.sample(), bracket=self.bracket.s)
        self.trials[trial.trial_id] = trial
        self.next_id += 1
        return trial

    def _advance_bracket(self) -> None:
        self.b += 1
        if self.b >= len(self.brackets):
            self._finished = True
            self.members = []
            return
        self.i = 0
        self.members = [self._new_trial().trial_id for _ in range(self.bracket.n)]
        self._start_round()

    def _start_round(self) -> None:
        """Queue the units of round ``self.i`` (subclasses add decision points)."""
        self.queue = deque((tid, self.r_i) for tid in self.members)

    # -- Scheduler API ----------------------------------------------------------------------
    def suggest(self) -> WorkUnit | None:
        if self._finished or not self.queue:
            return None
        tid, end = self.queue.popleft()
        trial = self.trials[tid]
        trial.status = ACTIVE
        self.inflight[tid] = end
        return WorkUnit(tid, dict(trial.config), trial.epochs, end)

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        end = take_inflight(self.inflight, trial_id, self.name, "result for")
        trial = self.trials[trial_id]
        trial.curve.extend(check_metrics(trial, metrics, end))
        decisions = self._unit_done(trial)
        if not self.queue and not self.inflight:
            decisions += self._round_complete()
        return decisions

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        take_inflight(self.inflight, trial_id, self.name, "failure of")
        trial = self.trials[trial_id]
        trial.status = FAILED_
        decisions = [Decision(trial_id, FAILED, trial.epochs, "failed", {"error": str(reason), **self._where()})]
        decisions += self._unit_failed(trial)
        if not self.queue and not self.inflight:
            decisions += self._round_complete()
        return decisions

    @property
    def finished(self) -> bool:
        return self._finished

    def best(self) -> dict | None:
        return best_at(self.trials.values(), self.R)

    def epochs_budget_reference(self) -> int | None:
        return hyperband_budget(self.R, self.eta)[1]

    # -- round logic (hooks for subclasses) ----------------------------------------------------
    def _where(self) -> dict:
        if self._finished:
            return {}
        return {"bracket": self.bracket.s, "round": self.i, "r_i": self.r_i}

    def _unit_done(self, trial: Trial) -> list[Decision]:
        """Decision for a trial whose unit reached r_i: PAUSE (awaits promotion) or DONE at R."""
        return [self._reached(trial, "rung")]

    def _unit_failed(self, trial: Trial) -> list[Decision]:
        return []

    def _reached(self, trial: Trial, reason: str) -> Decision:
        value = trial.value_at(trial.epochs)
        info = {"value": value, **self._where()}
        if trial.epochs >= self.R:
            trial.status = DONE_
            return Decision(trial.trial_id, DONE, trial.epochs, "completed", info)
        trial.status = PAUSED
        return Decision(trial.trial_id, PAUSE, trial.epochs, reason, info)

    def _round_complete(self) -> list[Decision]:
        """Barrier reached: promote (subclasses may first run more phases)."""
        return self._promote()

    def _promote(self) -> list[Decision]:
        """Keep the top max(n_i // eta, 1) by value at r_i; STOP the rest; start the next round."""
        decisions: list[Decision] = []
        ranked = rank_by_value([self.trials[t] for t in self.members], self.r_i)
        if self.last_round:
            self._advance_bracket()
            return decisions
        keep = self.n_keep
        promoted = [t for t in ranked[:keep] if math.isfinite(t.value_at(self.r_i))]
        cutoff = promoted[-1].value_at(self.r_i) if promoted else math.inf
        where = self._where()
        next_r = self.bracket.rounds[self.i + 1][1]
        for rank, t in enumerate(ranked):
            info = {"rank": rank, "keep": keep, "value": t.value_at(self.r_i), "cutoff": cutoff, **where}
            if t in promoted:
                decisions.append(Decision(t.trial_id, CONTINUE, t.epochs, "promoted", dict(info, next_r=next_r)))
            elif t.status not in (STOPPED, FAILED_):
                t.status = STOPPED
                decisions.append(Decision(t.trial_id, STOP, t.epochs, "rung", info))
        self.i += 1
        self.members = [t.trial_id for t in promoted]
        if not self.members:  # every trial of the round failed: nothing to promote
            self._advance_bracket()
        else:
            self._start_round()
        return decisions

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        # units in flight are lost work: they go back to the front of the queue on restore
        requeue = [[tid, end] for tid, end in self.inflight.items()]
        return {
            "algorithm": self.name, "R": self.R, "eta": self.eta, "seed": self.seed,
            "sampler": self.sampler.state_dict(), "next_id": self.next_id,
            "trials": [t.to_dict() for t in self.trials.values()],
            "b": self.b, "i": self.i, "members": list(self.members),
            "queue": requeue + [[tid, end] for tid, end in self.queue],
            "finished": self._finished,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("algorithm") != self.name or state["R"] != self.R or state["eta"] != self.eta:
            raise HpoqError(f"{self.name}: state of {state.get('algorithm')!r} R={state.get('R')} eta={state.get('eta')} "
                            f"does not match R={self.R} eta={self.eta}")
        self.sampler.load_state_dict(state["sampler"])
        self.next_id = int(state["next_id"])
        self.trials = {int(d["trial_id"]): Trial.from_dict(d) for d in state["trials"]}
        self.b, self.i = int(state["b"]), int(state["i"])
        self.members = [int(t) for t in state["members"]]
        self.queue = deque((int(t), int(e)) for t, e in state["queue"])
        self.inflight = {}
        self._finished = bool(state["finished"])
