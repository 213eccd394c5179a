"""The trial ledger every scheduler keeps (:class:`Ledger`): trials with their configuration, observed curve and
status, the units in flight, the units to suggest again, the draws from the sampler; and the ranking helpers.

A trial's ``curve`` holds the minimised metric after epochs 1..len(curve) (docs/algorithms.md#conventions); it only
grows, by the metrics of finished work units, so the trial can always be resumed from its
checkpoint at ``len(curve)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hpoq.errors import InternalError
from hpoq.schedulers.base import Status, WorkUnit
from hpoq.schedulers.sampling import draw_config, skipped_draws


@dataclass
class Trial:
    trial_id: int
    config: dict
    curve: list = field(default_factory=list)
    status: Status = Status.RUNNING
    bracket: int = -1

    @property
    def epochs(self) -> int:
        return len(self.curve)

    def value_at(self, epoch: int) -> float:
        """Value after ``epoch`` epochs, +inf if not reached or failed (ranks last)."""
        if self.status == Status.FAILED or len(self.curve) < epoch or epoch < 1:
            return math.inf
        value = float(self.curve[epoch - 1])
        return value if math.isfinite(value) else math.inf

    def to_dict(self) -> dict:
        return {
            "trial_id": self.trial_id,
            "config": self.config,
            "curve": list(self.curve),
            "status": self.status,
            "bracket": self.bracket,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Trial":
        return cls(
            int(d["trial_id"]),
            dict(d["config"]),
            [float(v) for v in d["curve"]],
            Status(d["status"]),
            int(d["bracket"]),
        )


def take_inflight(inflight, trial_id: int, who: str, event: str):
    """Remove ``trial_id``'s unit from ``inflight`` (a dict, whose value is returned, or a set) as
    its ``event`` ("result for" / "failure of") arrives; InternalError (a backend bug) if it has no unit in flight."""
    if trial_id not in inflight:
        raise InternalError(f"{who}: {event} trial {trial_id}, which has no unit in flight")
    if isinstance(inflight, set):
        inflight.remove(trial_id)
        return None
    return inflight.pop(trial_id)


def check_metrics(trial_id: int, metrics, start: int, end: int) -> list[float]:
    """Validate the per-epoch metrics of ``trial_id``'s unit ``start -> end``: one finite-or-not float per
    epoch ``start + 1 .. end``; InternalError (a backend bug) otherwise."""
    values = [float(v) for v in metrics]
    if len(values) != end - start:
        raise InternalError(
            f"trial {trial_id}: got {len(values)} epoch metrics, expected {end - start} (epochs {start + 1}..{end})"
        )
    return values


def rank_by_value(trials, epoch: int) -> list:
    """Stable ranking by (value at ``epoch``, trial id); unreached or failed trials rank last."""
    return sorted(trials, key=lambda t: (t.value_at(epoch), t.trial_id))


def best_at(trials, epoch: int) -> dict | None:
    """``{"trial_id", "config", "value", "epoch"}`` of the lowest finite value at ``epoch``."""
    best = None
    for t in trials:
        v = t.value_at(epoch)
        if math.isfinite(v) and (best is None or (v, t.trial_id) < (best.value_at(epoch), best.trial_id)):
            best = t
    if best is None:
        return None
    return {"trial_id": best.trial_id, "config": dict(best.config), "value": best.value_at(epoch), "epoch": epoch}


def draw_trial(trials: dict, sampler, n: int) -> Trial | None:
    """A new trial from the next draw while fewer than ``n`` draws were made, added to ``trials`` (id -> Trial).

    Repeats skipped by a deduplicating sampler count as draws; None once ``n`` draws are spent.
    """
    while len(trials) + skipped_draws(sampler) < n:
        config = draw_config(sampler)
        if config is not None:
            trial = Trial(len(trials), config)
            trials[trial.trial_id] = trial
            return trial
    return None


class Ledger:
    """What a scheduler knows about its trials, apart from what it decides: owned by the scheduler base
    (:attr:`hpoq.schedulers.base.Scheduler.ledger`) and saved in every ``state_dict`` the same way.

    ``trials`` (id -> :class:`Trial`, ids in draw order), ``inflight`` (trial -> (start, end) of its unit in
    flight), ``requeue`` (units suggested again before anything else: the units in flight when the state
    was saved, which are lost work), ``draws`` (draws from ``sampler``, repeats skipped by a deduplicating
    sampler included), ``units`` (units suggested) and ``failed`` (the ids of failed trials).
    """

    def __init__(self, sampler):
        self.sampler = sampler
        self.trials: dict[int, Trial] = {}
        self.inflight: dict[int, tuple[int, int]] = {}
        self.requeue: list[tuple[int, int, int]] = []
        self.draws = 0
        self.units = 0
        self.failed: set[int] = set()

    def draw(self, bracket: int = -1) -> Trial | None:
        """One draw from the sampler as a new trial; None when a deduplicating sampler skipped it as a repeat
        (the draw counts either way)."""
        self.draws += 1
        config = draw_config(self.sampler)
        if config is None:
            return None
        trial = Trial(len(self.trials), config, bracket=bracket)
        self.trials[trial.trial_id] = trial
        return trial

    def draw_until(self, n: int) -> Trial | None:
        """A new trial from the next draws while fewer than ``n`` draws were made (skipped repeats count)."""
        while self.draws < n:
            trial = self.draw()
            if trial is not None:
                return trial
        return None

    def start(self, trial_id: int, start: int, end: int) -> WorkUnit:
        """Trial ``trial_id`` trains epochs ``start + 1 .. end`` now (a unit in flight)."""
        trial = self.trials[trial_id]
        trial.status = Status.RUNNING
        self.inflight[trial_id] = (start, end)
        self.units += 1
        return WorkUnit(trial_id, dict(trial.config), start, end)

    def resume_unit(self) -> WorkUnit | None:
        """The first unit to suggest again (lost at a snapshot), started; None when there is none."""
        if not self.requeue:
            return None
        return self.start(*self.requeue.pop(0))

    def finish(self, trial_id: int, metrics, who: str) -> tuple[int, int]:
        """The unit of ``trial_id`` finished with ``metrics`` (one per epoch): its epochs join the curve;
        (start, end) of the unit. InternalError for a trial without a unit in flight or a wrong length."""
        start, end = take_inflight(self.inflight, trial_id, who, "result for")
        trial = self.trials[trial_id]
        trial.curve[start:] = check_metrics(trial_id, metrics, start, end)
        return start, end

    def fail(self, trial_id: int, who: str) -> tuple[int, int]:
        """The unit of ``trial_id`` failed for good: the trial is FAILED; (start, end) of the unit."""
        span = take_inflight(self.inflight, trial_id, who, "failure of")
        self.trials[trial_id].status = Status.FAILED
        self.failed.add(trial_id)
        return span

    def state_dict(self) -> dict:
        return {
            "trials": [t.to_dict() for t in self.trials.values()],
            # units in flight are lost work at a snapshot: suggested again, first
            "requeue": [[t, s, e] for t, (s, e) in self.inflight.items()] + [list(u) for u in self.requeue],
            "draws": self.draws,
            "units": self.units,
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.trials = {int(d["trial_id"]): Trial.from_dict(d) for d in state["trials"]}
        self.inflight = {}
        self.requeue = [(int(t), int(s), int(e)) for t, s, e in state["requeue"]]
        self.draws, self.units = int(state["draws"]), int(state["units"])
        self.failed = {t.trial_id for t in self.trials.values() if t.status == Status.FAILED}
        self.sampler.load_state_dict(state["sampler"])
