"""Trial bookkeeping shared by the schedulers: configuration, observed curve, status.

A trial's ``curve`` holds the minimised metric after epochs 1..len(curve) (docs/algorithms.md#conventions); it only
grows, by the metrics of finished work units, so the trial can always be resumed from its
checkpoint at ``len(curve)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hpoq.errors import InternalError
from hpoq.schedulers.base import Status
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
