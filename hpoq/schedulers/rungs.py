"""Rung bookkeeping of successive halving, held by ``asha`` and ``default`` alike.

Rungs sit at ``grace * eta**k`` epochs for every such epoch below ``R``, plus a last rung at ``R``
(grace 1, eta 2, R 100: 1, 2, 4, 8, 16, 32, 64, 100; Jamieson & Talwalkar, AISTATS 2016; Li et
al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020). A rung holds the
``(value, trial id)`` results recorded there (minimised metric at the rung's epoch; NaN/inf rank
last) and the trials promoted out of it. Ranking is by (value, trial id), docs/algorithms.md#conventions.

Each rung keeps its results sorted as they arrive, all of them and those not promoted yet
(``sortedcontainers.SortedList``): recording a result, its rank, the next promotable trial and a rung's best
cost O(log n), so a decision costs the same at 10^3 and 10^5 trials (issue 25). The results are also kept in
the order they arrived, which is what a saved state holds.
"""

from __future__ import annotations

import math

from sortedcontainers import SortedList

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
        self._reset([[] for _ in self.epochs], [set() for _ in self.epochs])

    def _reset(self, results: list[list[tuple[float, int]]], promoted: list[set[int]]) -> None:
        self.results = results  # per rung: (value, trial id) in the order recorded
        self.promoted = promoted  # per rung: trials promoted out of it
        self._sorted = [SortedList(res) for res in results]  # per rung: every result, best first
        self._waiting = [SortedList(r for r in res if r[1] not in done) for res, done in zip(results, promoted)]
        self._value: list[dict[int, float]] = [{} for _ in results]  # per rung: trial -> its first value there
        self._twice: list[set[int]] = [set() for _ in results]  # per rung: trials recorded there more than once
        for k, res in enumerate(results):
            for v, t in res:
                self._note(k, t, v)

    def _note(self, k: int, trial_id: int, value: float) -> None:
        if trial_id in self._value[k]:
            self._twice[k].add(trial_id)
        else:
            self._value[k][trial_id] = value

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
        entry = (value, int(trial_id))
        self.results[k].append(entry)
        self._sorted[k].add(entry)
        if entry[1] not in self.promoted[k]:
            self._waiting[k].add(entry)
        self._note(k, entry[1], value)
        rank = self._sorted[k].bisect_left(entry)
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
        return [(v, t) for v, t in self._sorted[k] if t not in exclude]

    def unpromoted(self, k: int, exclude=()) -> list[tuple[float, int]]:
        """Ranked results of rung ``k`` not promoted yet and not in ``exclude``."""
        return [(v, t) for v, t in self._waiting[k] if t not in exclude]

    def first(self, k: int, exclude=()) -> tuple[float, int] | None:
        """The best (value, trial id) of rung ``k`` not in ``exclude``, or None: ``ranked(k, exclude)[0]``."""
        return next((r for r in self._sorted[k] if r[1] not in exclude), None)

    def first_unpromoted(self, k: int, exclude=()) -> tuple[float, int] | None:
        """The best result of rung ``k`` not promoted yet and not in ``exclude``: ``unpromoted(k, exclude)[0]``."""
        return next((r for r in self._waiting[k] if r[1] not in exclude), None)

    def rank(self, k: int, entry: tuple[float, int]) -> int:
        """The position of ``entry`` (value, trial id) in rung ``k``'s ranking, best = 0."""
        return self._sorted[k].bisect_left(entry)

    def promotable(self, k: int, exclude=()) -> tuple[int, float, int] | None:
        """(rank, value, trial id) of the best result of rung ``k`` that is not promoted yet, not in ``exclude``
        and inside the rung's top :meth:`quota`, or None: what ASHA promotes next out of rung ``k``."""
        entry = self.first_unpromoted(k, exclude)
        if entry is None:
            return None
        rank = self.rank(k, entry)
        return (rank, *entry) if rank < self.quota(k) else None

    def value(self, k: int, trial_id: int) -> float:
        """``trial_id``'s (first) value recorded at rung ``k``."""
        return self._value[k][int(trial_id)]

    def promote(self, k: int, trial_id: int) -> None:
        trial_id = int(trial_id)
        if trial_id in self.promoted[k]:
            return
        self.promoted[k].add(trial_id)
        if trial_id in self._twice[k]:  # recorded more than once at this rung (no hpoq scheduler does)
            for entry in [r for r in self._waiting[k] if r[1] == trial_id]:
                self._waiting[k].remove(entry)
        elif trial_id in self._value[k]:
            self._waiting[k].discard((self._value[k][trial_id], trial_id))

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
        self._reset(
            [[(float(v), int(t)) for v, t in res] for res in state["results"]],
            [set(int(t) for t in p) for p in state["promoted"]],
        )
