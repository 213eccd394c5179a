"""When may a trial be stopped? An exact test on the curves the study (and its warm store) has seen.

``default`` runs Hyperband's brackets and stops a trial between two of its round ends only when the
evidence says it cannot matter. The evidence for a checkpoint epoch ``c`` and a horizon ``h > c``
is every curve known to reach ``h``: the warm store's and the study's own (docs/algorithms.md#hpoqs-default).

:func:`kind_test` asks of a trial x with score ``s_x`` at ``c`` (its value there, or a forecast of
its final value): the *kind* of x is the ``m`` evidence curves that scored at least as badly at
``c``; if even the best of them, ``b*`` at ``h``, is worse than the ``bar`` x must beat at ``h``
(the study's best final value for ``h = R``, the round's cut for the round's end), and ``m``
curves drawn at random from the evidence would all end this badly with probability ``p`` no larger
than ``alpha``, x is stopped. ``p`` is the exact (hypergeometric) chance that a random ``m``-subset
of the ``n`` evidence curves misses all ``G`` that ended better than ``b*``:
``p = C(n - G, m) / C(n, m)``, a permutation test of "the score at ``c`` says nothing about the value
at ``h``" (cf. Good, "Permutation Tests", 2000; the ranking-loss view of Hyper-Tune, Li et al.,
PVLDB 2022). A trial in the best ``protect`` share of the evidence at ``c`` is never stopped: its
kind would be almost every curve, so "none of its kind beat the bar" would only say that the bar is
high. Nothing is stopped on fewer than ``1 / alpha`` curves: a late bloomer rarer than that would not
have shown up among them. Where curves cross late, trials that looked as bad at ``c`` ended well, ``b*``
beats the bar and nothing is stopped; where ranks hold, stopping needs enough evidence to be significant, so a
study without a store starts hedged, as Hyperband, and stops more as its curves accrue.

:class:`Evidence` keeps, per (``c``, ``h``), the evidence sorted by score with suffix minima of the
value at ``h`` (:class:`Column`), rebuilt only when curves were added or a forecast model changed
since the last query; each row is scored once per model, and a test itself costs O(log n) (``bisect``).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np


def kind_p_value(n: int, better: int, m: int) -> float:
    """``C(n - better, m) / C(n, m)``: the chance that ``m`` of ``n`` curves drawn at random all
    miss the ``better`` ones (1 for ``m = 0``)."""
    if m <= 0:
        return 1.0
    if n - better < m:
        return 0.0
    i = np.arange(m, dtype=float)
    return float(np.exp(np.sum(np.log(n - better - i) - np.log(n - i))))


@dataclass
class Column:
    """The evidence of one (c, h): scores at ``c`` and values at ``h``, with a lazily sorted view."""

    scores: list = field(default_factory=list)
    values: list = field(default_factory=list)
    _built: int = -1
    _order_scores: np.ndarray | None = None
    _values_by_score: np.ndarray | None = None
    _suffix_min: np.ndarray | None = None
    _sorted_values: np.ndarray | None = None

    def add(self, score: float, value: float) -> None:
        self.scores.append(float(score))
        self.values.append(float(value))

    def __len__(self) -> int:
        return len(self.scores)

    def _build(self) -> None:
        if self._built == len(self.scores):
            return
        s = np.asarray(self.scores, dtype=float)
        v = np.asarray(self.values, dtype=float)
        order = np.argsort(s, kind="stable")
        self._order_scores = s[order]
        self._values_by_score = v[order]
        self._suffix_min = np.minimum.accumulate(v[order][::-1])[::-1]
        self._sorted_values = np.sort(v)
        self._built = len(self.scores)

    def kind(self, score: float) -> tuple[int, float, int]:
        """(m, b*, G): rows scoring at least as badly as ``score``, the best value at ``h`` among them, and
        how many rows ended better than that."""
        self._build()
        first = bisect.bisect_left(self._order_scores, score)
        m = len(self.scores) - first
        if m == 0:
            return 0, math.inf, 0
        best = float(self._suffix_min[first])
        return m, best, int(np.searchsorted(self._sorted_values, best, side="left"))


class Evidence:
    """The curves known to reach each horizon, and their scores at each checkpoint, for :func:`kind_test`.

    ``scorer``: what ranks a curve at a checkpoint (``scores(c, rows)``, ``key(c)``: the model behind the
    scores, which changes when a forecast model is refitted). A row is added once, with the horizons its
    curve has reached; scores are computed once per (checkpoint, model) and row."""

    def __init__(self, scorer):
        self.scorer = scorer
        self.rows: dict = {}  # row key -> (config, curve)
        self.reached: dict[int, list] = {}  # horizon -> row keys whose curve reached it, in order
        self._scores: dict = {}  # (c, model key) -> {row key: score}
        self._columns: dict = {}  # (c, h) -> (model key, rows, Column)

    def add(self, key, config, curve, horizons) -> None:
        """Row ``key`` (its ``curve`` may still grow) has reached every epoch in ``horizons``."""
        self.rows[key] = (config, curve)
        for h in horizons:
            self.reached.setdefault(int(h), []).append(key)

    def column(self, c: int, h: int) -> Column:
        """The evidence of (c, h): every row that reached h, scored at c."""
        keys = self.reached.get(int(h), [])
        model = self.scorer.key(c)
        cached = self._columns.get((c, h))
        if cached is not None and cached[0] == model and cached[1] == len(keys):
            return cached[2]
        scores = self._scores.setdefault((c, model), {})
        missing = [k for k in keys if k not in scores]
        if missing:
            fresh = self.scorer.scores(c, [(k, *self.rows[k]) for k in missing])
            scores.update(zip(missing, (float(v) for v in fresh)))
        column = Column()
        for k in keys:
            value = float(self.rows[k][1][h - 1])
            column.add(scores[k], value if math.isfinite(value) else math.inf)
        self._columns[(c, h)] = (model, len(keys), column)
        return column


def kind_test(column: Column, score: float, bar: float, alpha: float, protect: float) -> dict | None:
    """The inputs of a stop (see the module docstring), or None to go on. ``protect``: a trial that fewer
    than ``protect x n`` evidence curves scored better than (one in the best ``protect`` share) is never
    stopped."""
    n = len(column)
    if n < 1.0 / alpha or not math.isfinite(bar):  # too few curves for an event rarer than alpha to show up
        return None
    m, kind_best, better = column.kind(score)
    if m == 0 or not kind_best > bar or n - m < protect * n:
        return None
    p = kind_p_value(n, better, m)
    if p > alpha:
        return None
    return {"evidence": n, "kind": m, "kind_best": kind_best, "better": better, "p": p, "bar": bar}
