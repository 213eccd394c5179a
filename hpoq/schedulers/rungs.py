"""Rung bookkeeping of successive halving, held by ``asha`` and ``default`` alike.

Rungs sit at ``grace * eta**k`` epochs for every such epoch below ``R``, plus a last rung at ``R``
(grace 1, eta 2, R 100: 1, 2, 4, 8, 16, 32, 64, 100; Jamieson & Talwalkar, AISTATS 2016; Li et
al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020). A rung holds the
``(value, trial id)`` results recorded there (minimised metric at the rung's epoch; NaN/inf rank
last) and the trials promoted out of it. Ranking is by (value, trial id), docs/algorithms.md#conventions.
"""

from __future__ import annotations

import math

from hpoq.errors import ConfigError
from hpoq.registry import check_int


def rung_epochs(R: int, eta: int, grace: int = 1) -> list[int]:
    """Rung epochs ``grace * eta**k`` below ``R``, then ``R`` itself (epochs, increasing)."""
    rungs, r = [], grace
    while r < R:
        rungs.append(r)
        r *= eta
    rungs.append(R)
    return rungs


def sh_plan_epochs(n: int, epochs: list[int], eta: int) -> int:
    """Epochs successive halving plans for ``n`` configurations on rungs ``epochs``: all reach the
    first rung, ``floor(n_k / eta)`` go on from rung k (at least one while any are left)."""
    total, members = n * epochs[0], n
    for k in range(len(epochs) - 1):
        members = max(members // eta, 1) if members else 0
        total += members * (epochs[k + 1] - epochs[k])
    return total


class Rungs:
    """The rungs of one successive-halving ladder: results per rung and promotions out of it."""

    def __init__(self, R: int, eta: int, grace: int = 1):
        self.R, self.eta = int(R), int(eta)
        self.grace = check_int(f"grace (first-rung epochs, R = {R})", grace, 1, R)
        self.epochs = rung_epochs(self.R, self.eta, self.grace)
        self.results: list[list[tuple[float, int]]] = [[] for _ in self.epochs]
        self.promoted: list[set[int]] = [set() for _ in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def top(self) -> int:
        """Index of the last rung (epoch R)."""
        return len(self.epochs) - 1

    def index(self, epoch: int) -> int:
        """The rung at ``epoch``; ConfigError if no rung sits there."""
        try:
            return self.epochs.index(int(epoch))
        except ValueError:
            raise ConfigError(f"no rung at epoch {epoch}; rungs: {self.epochs}") from None

    def step(self, k: int) -> int:
        """Epochs a promotion out of rung ``k`` trains."""
        return self.epochs[k + 1] - self.epochs[k]

    def record(self, k: int, trial_id: int, value: float) -> dict:
        """Record ``trial_id``'s value at rung ``k``; returns the decision inputs (rank, rung size)."""
        value = float(value) if math.isfinite(value) else math.inf
        self.results[k].append((value, int(trial_id)))
        rank = sorted(self.results[k]).index((value, int(trial_id)))
        return {
            "rung": k,
            "rung_epoch": self.epochs[k],
            "value": value,
            "rank": rank,
            "rung_size": len(self.results[k]),
        }

    def quota(self, k: int) -> int:
        """Successive halving's promotions out of rung ``k`` so far: floor(|results| / eta)."""
        return len(self.results[k]) // self.eta

    def ranked(self, k: int, exclude=()) -> list[tuple[float, int]]:
        """(value, trial id) of rung ``k``, best first, without the trials in ``exclude``."""
        return [(v, t) for v, t in sorted(self.results[k]) if t not in exclude]

    def unpromoted(self, k: int, exclude=()) -> list[tuple[float, int]]:
        """Ranked results of rung ``k`` not promoted yet and not in ``exclude``."""
        return [(v, t) for v, t in self.ranked(k, exclude) if t not in self.promoted[k]]

    def promote(self, k: int, trial_id: int) -> None:
        self.promoted[k].add(int(trial_id))

    def reached_top(self) -> bool:
        return bool(self.results[-1])

    def plan_epochs(self, n: int) -> int:
        """Epochs of this ladder's successive-halving plan for ``n`` configurations (one worker)."""
        return sh_plan_epochs(n, self.epochs, self.eta)

    def state_dict(self) -> dict:
        return {
            "epochs": list(self.epochs),
            "results": [[[v, t] for v, t in res] for res in self.results],
            "promoted": [sorted(p) for p in self.promoted],
        }

    def load_state_dict(self, state: dict) -> None:
        if [int(e) for e in state["epochs"]] != self.epochs:
            raise ConfigError(f"rungs: state has rungs {state['epochs']}, this ladder {self.epochs}")
        self.results = [[(float(v), int(t)) for v, t in res] for res in state["results"]]
        self.promoted = [set(int(t) for t in p) for p in state["promoted"]]
