"""What every model-based peer's replay shares, importable in hpoq's venv and in each peer's (numpy only).

The peers (:mod:`benchmarks.peers_driver`, run inside ``benchmarks/.venvs/<venv>``) and hpoq's own
algorithms (:mod:`benchmarks.peers_model`) are scored by the same code here, so that epochs, time and
answers are counted one way for all (docs: README, "Model-based peers"):

- :class:`PeerTable`: the curve table as the peers see it, a JSON file written by hpoq
  (:func:`benchmarks.peers_model.export_table`): hyperparameter columns, *minimised* curves, seconds per
  epoch per row (1 where the table has no time column), R and eta, and a search space derived from the
  rows (:meth:`PeerTable.space`) for the peers that sample off the table and are mapped back to the
  nearest row (:meth:`PeerTable.nearest_row`).
- :class:`Ledger`: epoch accounting. Every trained epoch of every trial is one record ``(epoch, time)``;
  an epoch is paid once per trial (a promoted trial continues from its checkpoint and pays only its
  new epochs, as in hpoq's simulator and Syne Tune's). Training stops counting at ``budget`` epochs.
  The incumbent is the best value *at R* among the trials that have reached R (the configuration a
  user could return then), the same rule as ``hpoq simulate --trace``.
- metrics over a run's trace: epochs and simulated time to reach a target, normalized regret at an
  epoch count, ranks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PeerTable:
    """A curve table in the peers' terms; ``curves`` are minimised (lower is better), epoch j at column j-1."""

    name: str
    hp_names: list
    configs: list  # one dict per row
    curves: np.ndarray  # (rows, R), minimised
    seconds_per_epoch: np.ndarray  # (rows,), 1.0 where the table has no time column
    R: int
    eta: int = 2
    mode: str = "min"  # the table's own direction (to print values as the table has them)

    @classmethod
    def load(cls, path) -> "PeerTable":
        with open(path) as fh:
            d = json.load(fh)
        return cls(
            name=d["name"],
            hp_names=list(d["hp_names"]),
            configs=d["configs"],
            curves=np.asarray(d["curves"], dtype=float),
            seconds_per_epoch=np.asarray(d["seconds_per_epoch"], dtype=float),
            R=int(d["R"]),
            eta=int(d.get("eta", 2)),
            mode=d.get("mode", "min"),
        )

    def dump(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(
                {
                    "name": self.name,
                    "hp_names": self.hp_names,
                    "configs": self.configs,
                    "curves": np.round(self.curves, 10).tolist(),
                    "seconds_per_epoch": self.seconds_per_epoch.tolist(),
                    "R": self.R,
                    "eta": self.eta,
                    "mode": self.mode,
                },
                fh,
            )

    @property
    def n_rows(self) -> int:
        return int(self.curves.shape[0])

    def finals(self) -> np.ndarray:
        return self.curves[:, self.R - 1]

    def space(self) -> dict:
        """Per hyperparameter: ``{"type": "choice", "values": [...]}`` (strings, or at most 8 distinct
        numbers) or ``{"type": "int"|"float", "low", "high", "log"}`` over the rows' range; log scale for a
        positive range wider than a factor 20 (learning rates, widths)."""
        out = {}
        for name in self.hp_names:
            values = [c[name] for c in self.configs]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
            if not numeric or len(distinct) <= 8:
                out[name] = {"type": "choice", "values": distinct}
                continue
            low, high = float(min(values)), float(max(values))
            kind = "int" if all(float(v).is_integer() for v in values) else "float"
            out[name] = {
                "type": kind,
                "low": int(low) if kind == "int" else low,
                "high": int(high) if kind == "int" else high,
                "log": bool(low > 0 and high / low > 20),
            }
        return out

    def _encoded(self, configs) -> np.ndarray:
        """Configurations as points of the unit cube of :meth:`space` (choices one-hot, scaled by 1/2)."""
        space = self.space()
        cols = []
        for name, spec in space.items():
            raw = [c[name] for c in configs]
            if spec["type"] == "choice":
                for value in spec["values"]:
                    cols.append([0.5 * (v == value) for v in raw])
                continue
            x = np.asarray(raw, dtype=float)
            low, high = float(spec["low"]), float(spec["high"])
            if spec["log"]:
                x, low, high = np.log(np.maximum(x, low)), math.log(low), math.log(high)
            cols.append((x - low) / (high - low) if high > low else np.zeros_like(x))
        return np.asarray(cols, dtype=float).T.reshape(len(configs), -1)

    def nearest_row(self, config: dict, rng: np.random.Generator | None = None) -> int:
        """The row whose configuration is nearest to ``config`` in the unit cube of :meth:`space` (the
        1-nearest-neighbour surrogate of Syne Tune's ``add_surrogate`` and of tabular benchmarks); ties
        (rows repeating one configuration) are broken by ``rng``, else the first row."""
        if not hasattr(self, "_cube"):
            self._cube = self._encoded(self.configs)
        d = np.sum((self._cube - self._encoded([config])[0]) ** 2, axis=1)
        ties = np.flatnonzero(d <= d.min() + 1e-12)
        return int(ties[0] if rng is None or len(ties) == 1 else rng.choice(ties))


@dataclass
class Ledger:
    """Epochs and simulated time of one run, and its incumbent (best value at R among trials at R).

    ``epoch(trial, row, epoch, time)`` records that ``trial`` (any hashable id), training table row
    ``row``, finished epoch ``epoch`` (1-based) at simulated time ``time``. A trial pays for epoch k
    once; epochs past ``budget`` are not counted and change nothing. ``trace``: ``[epochs, time,
    best minimised value at R]`` each time the incumbent improves.
    """

    table: PeerTable
    budget: float = math.inf
    epochs: int = 0
    makespan: float = 0.0
    trained: dict = field(default_factory=dict)  # trial -> highest epoch paid for
    trials: set = field(default_factory=set)
    best: float = math.inf
    best_row: int | None = None
    trace: list = field(default_factory=list)

    @property
    def spent(self) -> bool:
        return self.epochs >= self.budget

    def epoch(self, trial, row: int, epoch: int, time: float) -> bool:
        """Record one finished epoch; False once the budget is spent (the epoch is not counted)."""
        if self.spent:
            return False
        if epoch <= self.trained.get(trial, 0):
            return True  # already paid (a checkpointed trial reporting again)
        if epoch != self.trained.get(trial, 0) + 1:
            raise ValueError(f"trial {trial!r} skips from epoch {self.trained.get(trial, 0)} to {epoch}")
        self.trained[trial] = epoch
        self.trials.add(trial)
        self.epochs += 1
        self.makespan = max(self.makespan, float(time))
        if epoch == self.table.R:
            value = float(self.table.curves[row, self.table.R - 1])
            if value < self.best:
                self.best, self.best_row = value, int(row)
                self.trace.append([self.epochs, float(time), value])
        return True

    def unit(self, trial, row: int, start_epoch: int, end_epoch: int, start_time: float, end_time: float) -> bool:
        """A unit of work ``start_epoch`` -> ``end_epoch`` run from ``start_time`` to ``end_time``: its epochs
        finish evenly spaced in between. False once the budget is spent."""
        n = end_epoch - start_epoch
        for k in range(1, n + 1):
            if not self.epoch(trial, row, start_epoch + k, start_time + (end_time - start_time) * k / n):
                return False
        return True

    def result(self, **extra) -> dict:
        """The run entry: ``epochs``, ``makespan``, ``trials``, ``best_final`` (table direction, None when no
        trial reached R), ``best_row``, ``trace`` (minimised values)."""
        sign = -1.0 if self.table.mode == "max" else 1.0
        return {
            "epochs": int(self.epochs),
            "makespan": float(self.makespan),
            "trials": len(self.trials),
            "best_final": None if self.best_row is None else sign * self.best,
            "best_row": self.best_row,
            "trace": self.trace,
            **extra,
        }


class WorkerPool:
    """``workers`` simulated workers for the ask/tell peers: a unit of ``epochs`` epochs of row ``row`` takes
    ``epochs * seconds_per_epoch[row]`` time; :meth:`next_free` pops the unit that finishes first (ties in
    submission order, as hpoq's replay backend and Syne Tune's simulator do)."""

    def __init__(self, table: PeerTable, workers: int):
        self.table, self.workers = table, int(workers)
        self.now, self.seq, self.running = 0.0, 0, []

    @property
    def free(self) -> int:
        return self.workers - len(self.running)

    def submit(self, job, row: int, epochs: int, not_before: float = 0.0) -> tuple[float, float]:
        """Start ``job`` on a free worker now, or at ``not_before`` if later (a continuation waits for the
        checkpoint of its predecessor); returns (start, end)."""
        start = max(self.now, not_before)
        end = start + epochs * float(self.table.seconds_per_epoch[row])
        self.running.append((end, self.seq, start, job))
        self.seq += 1
        return start, end

    def next_free(self):
        """(job, start time, end time) of the unit that finishes first; the clock moves to its end."""
        self.running.sort(key=lambda u: (u[0], u[1]))
        end, _, start, job = self.running.pop(0)
        self.now = end
        return job, start, end


def units_to_ledger(ledger: Ledger, units) -> Ledger:
    """Feed units ``(trial, row, start_epoch, end_epoch, start_time, end_time)`` into ``ledger`` epoch by epoch
    in the order the epochs finish (each unit's epochs evenly spaced over its time), ties in unit order."""
    records = []
    for seq, (trial, row, a, b, t0, t1) in enumerate(units):
        n = b - a
        records += [(t0 + (t1 - t0) * k / n, seq, k, trial, row, a + k) for k in range(1, n + 1)]
    records.sort(key=lambda r: r[:3])
    for t, _, _, trial, row, epoch in records:
        if not ledger.epoch(trial, row, epoch, t):
            break
    return ledger


# --- metrics over traces -------------------------------------------------------------------------------


def best_at(trace, epochs: float) -> float:
    """Incumbent (minimised value at R) after ``epochs`` epochs; inf before the first trial reaches R."""
    best = math.inf
    for e, _, value in trace:
        if e > epochs:
            break
        best = value
    return best


def reach(trace, target: float, tol: float = 1e-12):
    """(epochs, time) at which the incumbent first reaches ``target`` (minimised), or (None, None)."""
    for e, t, value in trace:
        if value <= target + tol:
            return e, t
    return None, None


def normalized_regret(table: PeerTable, value: float) -> float:
    """(value - best final of the table) / (worst - best final), over rows with a finite final; 1 before
    any answer (the field's convention: regret starts at the worst)."""
    finals = table.finals()
    finals = finals[np.isfinite(finals)]
    lo, hi = float(finals.min()), float(finals.max())
    if not math.isfinite(value):
        return 1.0
    return float(min(1.0, max(0.0, (value - lo) / (hi - lo)))) if hi > lo else 0.0


def ranks(values: dict) -> dict:
    """Rank of each method by value (lower better, 1 = best), ties share their mean rank."""
    names = list(values)
    v = np.array([values[n] for n in names], dtype=float)
    out = {}
    for i, name in enumerate(names):
        less = float(np.sum(v < v[i] - 1e-12))
        equal = float(np.sum(np.abs(v - v[i]) <= 1e-12))
        out[name] = less + (equal + 1) / 2
    return out


def median_censored(values, censor: float) -> float | None:
    """Median where None (never reached) counts as above ``censor``; None when more than half never reached."""
    xs = sorted(math.inf if v is None else float(v) for v in values)
    if not xs:
        return None
    n = len(xs)
    m = xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])
    return None if not math.isfinite(m) else float(m)
