"""Hyperband, exact, with its brackets side by side (Li et al., JMLR 2018, sec. 3 and its parallel
version; hpoq docs/algorithms.md#hyperband).

The brackets are s = s_max .. 0 (:func:`~hpoq.schedulers.brackets.hyperband_schedule`). In round i
of a bracket every surviving configuration is trained from its checkpoint at r_{i-1} to r_i
(r_i - r_{i-1} new epochs). A round ends with a barrier *inside its bracket*: the top
``max(n_i // eta, 1)`` by value at r_i (stable ties on trial id; unreached or failed = +inf) are
promoted. A free worker takes a unit of the earliest open bracket that has one; when none has,
the next bracket is opened (its n configurations drawn), so no worker idles while any bracket
has runnable work (as Ray Tune's and Syne Tune's Hyperband do). With one worker this is exactly
the sequential schedule: 163 configurations and 3213 epochs at R = 100, eta = 2, in the same
order. Subclasses whose per-round state belongs to one bracket set ``concurrent_brackets = False``
(brackets then run one after the other).

Draws go through :func:`~hpoq.schedulers.sampling.draw_config`: with a deduplicating sampler a
repeated configuration is skipped and its bracket keeps fewer members.

Decisions: PAUSE when a trial reaches r_i < R, DONE at R, and at the round end CONTINUE for the
promoted and STOP for the rest. The answer is the lowest value at R (ties: lower trial id, i.e.
earlier draw).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

from hpoq.schedulers.base import CONTINUE, DONE, FAILED, PAUSE, STOP, Decision, Scheduler, Status, WorkUnit
from hpoq.schedulers.brackets import budget_of, check_r_eta, schedule_of
from hpoq.schedulers.trials import Trial, best_at, rank_by_value


@dataclass
class BracketRun:
    """One open bracket: index ``b`` into the schedule, round ``i``, the round's ``members`` (trial ids in
    draw order) and its runnable units ``queue`` ((trial id, end epoch)); its units in flight are the
    ledger's units of trials of bracket ``s``."""

    b: int
    s: int
    i: int = 0
    members: list = field(default_factory=list)
    queue: deque = field(default_factory=deque)

    def to_dict(self) -> dict:
        return {"b": self.b, "i": self.i, "members": list(self.members), "queue": [[t, e] for t, e in self.queue]}

    @classmethod
    def from_dict(cls, d: dict, s: int) -> "BracketRun":
        return cls(
            int(d["b"]), s, int(d["i"]), [int(t) for t in d["members"]], deque((int(t), int(e)) for t, e in d["queue"])
        )


class Hyperband(Scheduler):
    """Hyperband with concurrent brackets.

    Parameters: ``R`` maximum epochs per configuration (>= 1), ``eta`` discard rate (integer >= 2),
    ``sampler`` the :class:`~hpoq.schedulers.base.ConfigSampler` new configurations come from,
    ``seed`` the master seed (recorded; Hyperband itself draws no random numbers).

    The round hooks (:meth:`_start_round`, :meth:`_unit_done`, :meth:`_round_complete`, ...) act on
    the *current* bracket: ``self.b``, ``self.i``, ``self.members``, ``self.queue`` and
    ``self.inflight`` are those of the bracket whose unit was just suggested or answered. Trials, their
    curves and the units in flight are the ledger's (:attr:`ledger`); the brackets are what it decides.
    """

    name = "hyperband"
    parameter_constraints = {}
    supports_dedupe = True
    #: open the next bracket while earlier ones still run (False: one bracket at a time)
    concurrent_brackets = True

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0):
        super().__init__(sampler)
        self.R, self.eta = check_r_eta(R, eta)
        self.seed = int(seed)
        self.brackets = schedule_of(self.R, self.eta)
        self.opened = 0  # brackets opened so far (their configurations drawn)
        self.runs: list[BracketRun] = []  # open brackets, in schedule order
        self._cur: BracketRun | None = None  # the bracket the round hooks act on

    # -- the current bracket ----------------------------------------------------------------
    @property
    def b(self) -> int:
        return self._cur.b

    @property
    def i(self) -> int:
        return self._cur.i

    @i.setter
    def i(self, value: int) -> None:
        self._cur.i = value

    @property
    def members(self) -> list:
        return self._cur.members if self._cur is not None else []

    @members.setter
    def members(self, value: list) -> None:
        self._cur.members = value

    @property
    def queue(self) -> deque:
        return self._cur.queue

    @queue.setter
    def queue(self, value: deque) -> None:
        self._cur.queue = value

    @property
    def inflight(self) -> list[int]:
        """Trials of the current bracket with a unit in flight."""
        trials, s = self.ledger.trials, self._cur.s
        return [t for t in self.ledger.inflight if trials[t].bracket == s]

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

    # -- opening and closing brackets ---------------------------------------------------------
    def _open_bracket(self) -> BracketRun:
        """Open the next bracket: draw its n configurations (repeats skipped when deduping), queue round 0."""
        run = BracketRun(self.opened, self.brackets[self.opened].s)
        self.opened += 1
        self.runs.append(run)
        self._cur = run
        for _ in range(self.bracket.n):
            trial = self.ledger.draw(bracket=self.bracket.s)
            if trial is not None:
                run.members.append(trial.trial_id)
        if run.members:
            self._start_round()
        else:  # every draw repeated an earlier configuration
            self._close_bracket()
        return run

    def _close_bracket(self) -> None:
        self.runs.remove(self._cur)

    def _runnable(self) -> BracketRun | None:
        """The earliest open bracket with a runnable unit; the next brackets are opened while none has one."""
        for run in self.runs:
            if run.queue:
                return run
        while self.opened < len(self.brackets) and (self.concurrent_brackets or not self.runs):
            run = self._open_bracket()
            if run.queue:
                return run
        return None

    def _start_round(self) -> None:
        """Queue the units of round ``self.i`` (subclasses add decision points)."""
        self.queue = deque((tid, self.r_i) for tid in self.members)

    # -- Scheduler API ----------------------------------------------------------------------
    def suggest(self) -> WorkUnit | None:
        unit = self.ledger.resume_unit()  # lost at a snapshot: again, first
        if unit is not None:
            self._cur = self._run_of(unit.trial_id)
            return unit
        run = self._runnable()
        if run is None:
            return None
        self._cur = run
        tid, end = run.queue.popleft()
        return self.ledger.start(tid, self.ledger.trials[tid].epochs, end)

    def _run_of(self, trial_id: int) -> BracketRun:
        """The open bracket of ``trial_id``."""
        s = self.ledger.trials[trial_id].bracket
        return next(run for run in self.runs if run.s == s)

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        self.ledger.finish(trial_id, metrics, self.name)
        self._cur = self._run_of(trial_id)
        trial = self.ledger.trials[trial_id]
        decisions = self._unit_done(trial)
        if not self.queue and not self.inflight:
            decisions += self._round_complete()
        return decisions

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        self.ledger.fail(trial_id, self.name)
        self._cur = self._run_of(trial_id)
        trial = self.ledger.trials[trial_id]
        decisions = [Decision(trial_id, FAILED, trial.epochs, "failed", {"error": str(reason), **self._where()})]
        decisions += self._unit_failed(trial)
        if not self.queue and not self.inflight:
            decisions += self._round_complete()
        return decisions

    @property
    def finished(self) -> bool:
        return self.opened >= len(self.brackets) and not self.runs

    def best(self) -> dict | None:
        return best_at(self.ledger.trials.values(), self.R)

    def epochs_budget_reference(self) -> int | None:
        return budget_of(self.brackets)[1]

    # -- round logic (hooks for subclasses) ----------------------------------------------------
    def _where(self) -> dict:
        if self._cur is None:
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
            trial.status = Status.DONE
            return Decision(trial.trial_id, DONE, trial.epochs, "completed", info)
        trial.status = Status.PAUSED
        return Decision(trial.trial_id, PAUSE, trial.epochs, reason, info)

    def _round_complete(self) -> list[Decision]:
        """Barrier reached: promote (subclasses may first run more phases)."""
        return self._promote()

    def _promote(self) -> list[Decision]:
        """Keep the top max(n_i // eta, 1) by value at r_i; STOP the rest; start the next round."""
        decisions: list[Decision] = []
        ranked = rank_by_value([self.ledger.trials[t] for t in self.members], self.r_i)
        if self.last_round:
            self._close_bracket()
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
            elif t.status not in (Status.PRUNED, Status.FAILED):
                t.status = Status.PRUNED
                decisions.append(Decision(t.trial_id, STOP, t.epochs, "rung", info))
        self.i += 1
        self.members = [t.trial_id for t in promoted]
        if not self.members:  # every trial of the round failed: nothing to promote
            self._close_bracket()
        else:
            self._start_round()
        return decisions

    # -- state ------------------------------------------------------------------------------
    def settings(self) -> dict:
        return {"R": self.R, "eta": self.eta, "seed": self.seed}

    def decision_state(self) -> dict:
        return {
            "opened": self.opened,
            "runs": [run.to_dict() for run in self.runs],
            "current": None if self._cur is None or self._cur not in self.runs else self.runs.index(self._cur),
        }

    def load_decision_state(self, state: dict) -> None:
        self.opened = int(state["opened"])
        self.runs = [BracketRun.from_dict(d, self.brackets[int(d["b"])].s) for d in state["runs"]]
        current = state.get("current")
        self._cur = self.runs[int(current)] if current is not None else (self.runs[0] if self.runs else None)
