"""Swift-Hyperband, synchronous and faithful to the public workflow (hpoq docs/algorithms.md#swift-hyperband; [P2]).

Hyperband's brackets and rounds, with one extra decision point per round at
``e_d = r_prev + ceil((r_i - r_prev) * known_curve)``:

* phase 1: every configuration of the round is trained to e_d; on arrival it is continued to
  r_i if ``sent < k * n_next`` (the k-quota) or ``inflight_full + |D[r_i]| < d`` (predictor data),
  else parked. Curves of configurations continued in phase 1 enter D[r_i].
* predictor step (barrier): M[(r_i, e_d)] is fitted once on D[r_i] (X = first e_d values,
  y = value at r_i) and reused (``refit="never"``; ``"on_growth"`` refits when D[r_i] grew);
  tau = ``threshold_quantile`` quantile of this round's fully trained values at r_i.
* selection: parked configurations with prediction < tau continue; if fewer than n_next would
  reach r_i, the n_next - |full| parked ones with the lowest predictions continue instead.
* phase 2 (barrier), then Hyperband promotion on the actual values at r_i (stopped = +inf).

Rounds with e_d == r_i (e.g. 2 -> 3 at R = 100) save nothing: configurations reach r_i in one
unit; rule 2 still decides which of them count as "continued" (their curves enter D[r_i]).
``warm_curves`` (an earlier study's :class:`~hpoq.curves.table.CurveTable`) pre-seeds every
D[r] with its curves that reach r (docs/algorithms.md#where-the-savings-come-from); the count is recorded in
decision info.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from hpoq.errors import ConfigError, InternalError
from hpoq.registry import Anything, Boolean, Interval, Mapping, Options, Text, check_known, takes, validate
from hpoq.schedulers.base import CONTINUE, PAUSE, STOP, Decision, Forecast, Status
from hpoq.schedulers.hyperband import Hyperband
from hpoq.schedulers.trials import Trial
from hpoq.seeding import derive_seed

log = logging.getLogger(__name__)

#: the paper's in-loop predictor: NuSVR defaults on the raw curve prefix
#: (docs/predictors.md#features, docs/predictors.md#classical-svr)
PAPER_PREDICTOR = "svr"
PAPER_PREDICTOR_PARAMS = {"features": "curve"}


def decision_epoch(r_prev: int, r_i: int, known_curve: float) -> int:
    """e_d = r_prev + ceil((r_i - r_prev) * known_curve), exact (known_curve read as a decimal)."""
    return r_prev + math.ceil((r_i - r_prev) * Fraction(repr(float(known_curve))))


def build_predictor(name: str, params: dict | None, seed: int):
    """``make_predictor(name, **params)``, adding a derived ``seed`` if the predictor takes one."""
    from hpoq.predict import make_predictor, predictor_class

    params = dict(params or {})
    if "seed" not in params:
        if takes(predictor_class(name), "seed"):
            params["seed"] = int(seed)
    return make_predictor(name, **params)


#: at most this many warm curves in one training set (``max_warm``): a fit then costs the same whatever the
#: store's size (an SVR's fit grows about quadratically with its rows); 1,000 keeps every shared table's store whole
MAX_WARM = 1000


class WarmCurves:
    """Curves of an earlier study, minimised; ``rows_reaching(r)`` are those with r finite values, at most ``cap``
    of them: a stratified subset, evenly spaced over the rows ordered by their value at r (the spread of outcomes
    a predictor must learn is kept, seed-free). Computed once per r."""

    def __init__(self, table, cap: int | None = MAX_WARM):
        self.table = table
        self.curves = np.asarray(table.minimized(), dtype=np.float64) if table is not None else np.zeros((0, 0))
        self.configs = list(table.configs) if table is not None else []
        self.cap = None if cap is None else int(cap)
        self._rows: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return self.curves.shape[0]

    def rows_reaching(self, r: int) -> list[int]:
        if r not in self._rows:
            self._rows[r] = self._reaching(r)
        return self._rows[r]

    def _reaching(self, r: int) -> list[int]:
        if len(self) == 0 or self.curves.shape[1] < r:
            return []
        rows = np.flatnonzero(np.isfinite(self.curves[:, :r]).all(axis=1))
        if self.cap is not None and rows.size > self.cap:
            ranked = rows[np.argsort(self.curves[rows, r - 1], kind="stable")]
            rows = np.sort(ranked[np.unique(np.linspace(0, rows.size - 1, self.cap).round().astype(int))])
        return [int(i) for i in rows]


@dataclass(frozen=True)
class SwiftRule:
    """Swift-Hyperband's decision rule, with the paper's defaults (docs/algorithms.md#swift-hyperband): ``d``
    full curves needed before a predictor for r_i is trained (>= 2); ``k``, the share of n_next always
    trained fully in phase 1; ``known_curve``, the position of the decision point inside a round (a share of
    its epochs); ``threshold_quantile``; ``refit`` (``never`` | ``on_growth``); ``add_phase2`` (phase-2
    completions enter D)."""

    d: int = 15
    k: float = 0.5
    known_curve: float = 0.5
    threshold_quantile: float = 0.25
    refit: str = "never"
    add_phase2: bool = False


class SwiftHyperband(Hyperband):
    """Synchronous Swift-Hyperband (docs/algorithms.md#swift-hyperband).

    Parameters: the fields of :class:`SwiftRule` (the paper's defaults: ``d`` 15, ``k`` 0.5, ``known_curve``
    0.5, ``threshold_quantile`` 0.25, ``refit`` ``"never"``, ``add_phase2`` False); ``predictor`` = ``"svr"`` with
    ``predictor_params`` ``{"features": "curve"}`` (NuSVR defaults on the raw prefix); any
    registered predictor name works. ``warm_curves``: curve store of earlier studies or None; ``max_warm``
    (hpoq's, not the paper's): at most this many of its curves in one training set (a stratified subset, see
    :class:`WarmCurves`; None: all of them).
    """

    name = "swift"
    parameter_constraints = {
        "d": [Interval(int, 2, None)],
        "k": [Interval(float, 0, 1)],
        "known_curve": [Interval(float, 0, 1, closed="right")],
        "threshold_quantile": [Interval(float, 0, 1)],
        "refit": [Options("never", "on_growth")],
        "add_phase2": [Boolean()],
        "predictor": [Text(), None],
        "predictor_params": [Mapping(), None],
        "warm_curves": [Anything(), None],
        "max_warm": [Interval(int, 2, None), None],
    }
    #: the round state (phase, e, parked, ...) is one bracket's: brackets run one after the other, as in the paper
    concurrent_brackets = False

    def __init__(
        self,
        *,
        R: int,
        eta: int = 2,
        sampler,
        seed: int = 0,
        predictor: str | None = None,
        predictor_params: dict | None = None,
        warm_curves=None,
        max_warm: int | None = MAX_WARM,
        **rule,
    ):
        validate(type(self), {**rule, "max_warm": max_warm}, "swift")
        check_known(type(self), rule, "swift", exclude=("predictor", "predictor_params", "warm_curves", "max_warm"))
        self.rule = replace(SwiftRule(), **rule)
        self.d, self.k = int(self.rule.d), float(self.rule.k)
        self.known_curve, self.q = float(self.rule.known_curve), float(self.rule.threshold_quantile)
        self.refit, self.add_phase2 = self.rule.refit, bool(self.rule.add_phase2)
        self.predictor_name = predictor or PAPER_PREDICTOR
        if predictor_params is None and self.predictor_name == PAPER_PREDICTOR:
            predictor_params = dict(PAPER_PREDICTOR_PARAMS)
        self.predictor_params = dict(predictor_params or {})
        # fail on an unknown predictor or parameter now, not mid-run
        build_predictor(self.predictor_name, self.predictor_params, 0)
        self.warm = WarmCurves(warm_curves, max_warm)
        self.D: dict[int, list[int]] = {}  # r -> trial ids whose curves (length >= r) are training data
        self.M: dict[tuple[int, int], object] = {}  # (r, e) -> fitted predictor
        self.M_size: dict[tuple[int, int], int] = {}  # (r, e) -> |D[r]| (incl. warm) when fitted
        self.fits = 0
        self._init_round_state()
        super().__init__(R=R, eta=eta, sampler=sampler, seed=seed)

    def _init_round_state(self) -> None:
        self.phase = 1
        self.e = 0
        self.sent = 0
        self.inflight_full = 0
        self.full: list[int] = []
        self.parked: list[int] = []
        self.selected: list[int] = []

    # -- helpers --------------------------------------------------------------------------------
    @property
    def n_next(self) -> int:
        return len(self.members) // self.eta if not self.last_round else 1

    @property
    def degenerate(self) -> bool:
        return self.e >= self.r_i

    def d_size(self, r: int) -> int:
        """|D[r]|: warm curves reaching r plus this run's curves."""
        return len(self.warm.rows_reaching(r)) + len(self.D.get(r, []))

    def _rule2(self) -> str | None:
        """Reason to continue a configuration in phase 1 (docs/algorithms.md#swift-hyperband rule 2), or None to
        park."""
        if self.sent < self.k * self.n_next:
            return "quota"
        if self.inflight_full + self.d_size(self.r_i) < self.d:
            return "data"
        return None

    def _rule2_info(self) -> dict:
        return {
            "sent": self.sent,
            "n_next": self.n_next,
            "k": self.k,
            "inflight_full": self.inflight_full,
            "D": self.d_size(self.r_i),
            "d": self.d,
            "e_d": self.e,
            **self._where(),
        }

    # -- round logic ---------------------------------------------------------------------------
    def _start_round(self) -> None:
        self._init_round_state()
        self.e = min(decision_epoch(self.r_prev, self.r_i, self.known_curve), self.r_i)
        self.queue = deque((tid, self.e) for tid in self.members)

    def _unit_done(self, trial: Trial) -> list[Decision]:
        tid = trial.trial_id
        if self.phase == 2:
            if self.add_phase2:
                self.D.setdefault(self.r_i, []).append(tid)
            return [self._reached(trial, "selected")]
        if trial.epochs == self.e and not self.degenerate:
            reason = self._rule2()
            info = self._rule2_info()
            if reason is not None:
                self.sent += 1
                self.inflight_full += 1
                self.queue.appendleft((tid, self.r_i))  # continue on the freed worker first
                return [Decision(tid, CONTINUE, trial.epochs, reason, info)]
            self.parked.append(tid)
            trial.status = Status.PAUSED
            return [Decision(tid, PAUSE, trial.epochs, "parked", info)]
        # reached r_i: a phase-1 continuation, or a degenerate round's single unit
        if self.degenerate:
            reason = self._rule2()
            rule2_info = self._rule2_info()
            if reason is not None:
                self.sent += 1
                self.D.setdefault(self.r_i, []).append(tid)
                self.full.append(tid)
            decision = self._reached(trial, reason or "rung")
            decision.info.update(rule2_info)
        else:
            self.inflight_full -= 1
            self.D.setdefault(self.r_i, []).append(tid)
            self.full.append(tid)
            decision = self._reached(trial, "full")
        decision.info.update(D=self.d_size(self.r_i), e_d=self.e)
        return [decision]

    def _unit_failed(self, trial: Trial) -> list[Decision]:
        # a continuation that fails no longer counts as in flight for rule 2
        if self.phase == 1 and trial.epochs >= self.e and not self.degenerate:
            self.inflight_full = max(self.inflight_full - 1, 0)
        return []

    def _round_complete(self) -> list[Decision]:
        if self.phase == 1 and self.parked and not self.degenerate:
            decisions = self._select()
            if self.queue:
                self.phase = 2
                return decisions
            return decisions + self._promote()
        return self._promote()

    def _training_set(self, r: int, e: int):
        warm_rows = self.warm.rows_reaching(r)
        ids = self.D.get(r, [])
        prefixes = [self.warm.curves[i, :e] for i in warm_rows] + [self.ledger.trials[t].curve[:e] for t in ids]
        targets = [self.warm.curves[i, r - 1] for i in warm_rows] + [self.ledger.trials[t].curve[r - 1] for t in ids]
        configs = [self.warm.configs[i] for i in warm_rows] + [self.ledger.trials[t].config for t in ids]
        return configs, np.asarray(prefixes, dtype=np.float64), np.asarray(targets, dtype=np.float64)

    def _predictor_for(self, r: int, e: int):
        key = (r, e)
        size = self.d_size(r)
        if key not in self.M or (self.refit == "on_growth" and size > self.M_size[key]):
            if size < self.d:
                raise InternalError(f"swift: parked configurations at ({r}, {e}) but |D[{r}]| = {size} < d = {self.d}")
            configs, X, y = self._training_set(r, e)
            self.M[key] = build_predictor(
                self.predictor_name, self.predictor_params, derive_seed(self.seed, "predictor", r, e)
            ).fit(configs, X, y)
            self.M_size[key] = size
            self.fits += 1
        return self.M[key]

    def _select_without_predictor(self, parked, tau: float, exc: Exception) -> list[Decision]:
        """The predictor failed: plain Hyperband for this round (every parked trial goes on to r_i)."""
        log.warning(
            "swift: predictor %r failed at (r=%d, e=%d): %s: %s; plain Hyperband promotion for this round",
            self.predictor_name,
            self.r_i,
            self.e,
            type(exc).__name__,
            exc,
        )
        info = {
            "tau": tau,
            "predictor": self.predictor_name,
            "key": [self.r_i, self.e],
            "error": f"{type(exc).__name__}: {exc}",
            **self._where(),
        }
        self.selected = [t.trial_id for t in parked]
        self.queue = deque((t.trial_id, self.r_i) for t in parked)
        return [Decision(t.trial_id, CONTINUE, t.epochs, "predictor-failed", info) for t in parked]

    def _select(self) -> list[Decision]:
        """Predictor step and selection (docs/algorithms.md#swift-hyperband steps 5-8)."""
        r, e = self.r_i, self.e
        full_values = [self.ledger.trials[t].value_at(r) for t in self.full]
        full_values = [v for v in full_values if math.isfinite(v)]
        tau = float(np.quantile(full_values, self.q)) if full_values else -math.inf
        parked = [self.ledger.trials[t] for t in self.parked]
        X = np.asarray([t.curve[:e] for t in parked], dtype=np.float64)
        try:
            model = self._predictor_for(r, e)
            pred = model.predict([t.config for t in parked], X)
        except (ConfigError, InternalError):
            raise  # a configuration error (e.g. the QPU fallback disabled) or a bug: never a numerical fallback
        except Exception as exc:  # noqa: BLE001 - any numerical or sampler failure of the predictor
            return self._select_without_predictor(parked, tau, exc)
        p = {t.trial_id: float(v) for t, v in zip(parked, np.asarray(pred.mean, dtype=np.float64))}
        S = [t.trial_id for t in parked if p[t.trial_id] < tau]
        fallback = False
        if len(S) + len(self.full) < self.n_next:
            S = [t.trial_id for t in sorted(parked, key=lambda t: (p[t.trial_id], t.trial_id))][
                : self.n_next - len(self.full)
            ]
            fallback = True
        chosen = set(S)
        base = {
            "tau": tau,
            "quantile": self.q,
            "predictor": self.predictor_name,
            "key": [r, e],
            "n_train": self.M_size[(r, e)],
            "warm": len(self.warm.rows_reaching(r)),
            "fallback": fallback,
            "n_full": len(self.full),
            "n_next": self.n_next,
            **self._where(),
        }
        model = f"{self.predictor_name}:{e}->{r}@{self.M_size[(r, e)]}"
        decisions = []
        for t in parked:
            info = dict(base, prediction=p[t.trial_id])
            forecast = Forecast(p[t.trial_id], e, r, threshold=tau, model=model)
            if t.trial_id in chosen:
                decisions.append(Decision(t.trial_id, CONTINUE, t.epochs, "predicted", info, forecast))
            else:
                t.status = Status.PRUNED
                decisions.append(Decision(t.trial_id, STOP, t.epochs, "predicted", info, forecast))
        self.selected = list(S)
        self.queue = deque((tid, r) for tid in S)
        return decisions

    # -- state ----------------------------------------------------------------------------------
    def settings(self) -> dict:
        return {
            **super().settings(),
            "d": self.d,
            "k": self.k,
            "known_curve": self.known_curve,
            "threshold_quantile": self.q,
            "refit": self.refit,
            "add_phase2": self.add_phase2,
            "predictor": self.predictor_name,
            "warm_rows": len(self.warm),
        }

    def decision_state(self) -> dict:
        # a phase-1 continuation lost in flight is re-suggested from the ledger, so it stays counted
        return {
            **super().decision_state(),
            "phase": self.phase,
            "e": self.e,
            "sent": self.sent,
            "inflight_full": self.inflight_full,
            "full": list(self.full),
            "parked": list(self.parked),
            "selected": list(self.selected),
            "D": [[r, ids] for r, ids in sorted(self.D.items())],
            "M": [[r, e, n] for (r, e), n in sorted(self.M_size.items())],
            "fits": self.fits,
        }

    def load_decision_state(self, state: dict) -> None:
        super().load_decision_state(state)
        self.phase, self.e = int(state["phase"]), int(state["e"])
        self.sent, self.inflight_full = int(state["sent"]), int(state["inflight_full"])
        self.full, self.parked = [int(t) for t in state["full"]], [int(t) for t in state["parked"]]
        self.selected = [int(t) for t in state["selected"]]
        self.D = {int(r): [int(t) for t in ids] for r, ids in state["D"]}
        self.fits = int(state["fits"])
        # predictors are deterministic functions of their training set: refit on the same curves
        self.M, self.M_size = {}, {}
        for r, e, n in state["M"]:
            r, e, n = int(r), int(e), int(n)
            warm_rows = self.warm.rows_reaching(r)
            ids = self.D.get(r, [])[: n - len(warm_rows)]
            saved, self.D[r] = self.D.get(r, []), ids
            configs, X, y = self._training_set(r, e)
            self.D[r] = saved
            self.M[(r, e)] = build_predictor(
                self.predictor_name, self.predictor_params, derive_seed(self.seed, "predictor", r, e)
            ).fit(configs, X, y)
            self.M_size[(r, e)] = n
