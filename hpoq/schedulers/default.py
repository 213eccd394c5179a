"""``default``: hpoq's own algorithm: Hyperband's brackets, minus the training that the study's own
evidence says cannot change its answer (docs/algorithms.md#hpoqs-default).

1. **Hyperband's hedge.** The same draws, brackets and rounds as :class:`Hyperband` (which this class
   extends): some configurations start long, some short, and every round keeps the same
   ``max(n_i // eta, 1)`` by value at its end. With nothing stopped ``default`` *is* Hyperband: the same
   epochs and the same answer. So where early epochs say nothing it costs what Hyperband costs and
   returns what Hyperband returns, and it never costs more.
2. **Stops earned by evidence.** Between a round's start and end a trial passes *checkpoints* (the rung
   epochs ``eta**k`` and Hyperband's round epochs). At each one it is tested
   (:func:`~hpoq.schedulers.evidence.kind_test`): it is stopped when the curves already known (the warm
   store's and the study's own) that scored at least as badly there all ended worse than what the trial
   must beat (the study's best final value; for the round's end, the round's cut so far), and that is
   unlikely to be chance (``p <= ALPHA``); a trial in the best ``protect`` share of that evidence is
   never stopped. Its score is its observed value or, with a forecaster (``predictor``, ``svr`` by
   default), the forecast of its final value from the prefix and its hyperparameters
   (:mod:`hpoq.schedulers.scores`), so a slow starter the forecast recognises is judged among its own kind.
3. **Audited stops** (:class:`~hpoq.schedulers.audit.Audit`): a seeded random ``audit`` share of the
   stopped trials is trained to R anyway, paid from the stops' savings; their outcomes estimate the
   false-prune rate with an exact interval (:meth:`audit_estimate`, shown by ``status`` and the report)
   and join the evidence. **Rescues**: when a worker would otherwise idle (with one worker: once
   Hyperband's brackets are done), the stopped trial that ranked best at its stop is trained to R, while
   ``RESCUE`` of the saved epochs lasts: a wrong stop is most likely one of those.
4. **A unit ends at the next checkpoint where a test can apply** (evidence exists there), else at the
   round's end, as in Hyperband: without evidence nothing is split.

Every decision carries the inputs it used; ``state_dict`` holds Hyperband's state plus the stops, audits
and the order evidence arrived in, and the evidence is rebuilt from the curves, so a restored scheduler
continues identically. Forecast models are fitted inline or on the runtime's fit thread
(:meth:`attach_fit_executor`) and used ``fit_lag`` results after their data is complete, or, with
``fit_lag=None`` (the MPI runtime's default), once the runtime reports them fitted (:meth:`on_model_ready`).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from hpoq.errors import ConfigError, InternalError
from hpoq.registry import Anything, Interval, Mapping, Text
from hpoq.schedulers.audit import Audit
from hpoq.schedulers.base import CONTINUE, DONE, FAILED, PAUSE, STOP, Decision, Forecast, Status, WorkUnit
from hpoq.schedulers.evidence import Evidence, kind_test
from hpoq.schedulers.final_predictor import FinalValuePredictor
from hpoq.schedulers.hyperband import Hyperband
from hpoq.schedulers.rungs import rung_epochs
from hpoq.schedulers.scores import MIN_TRAIN, ForecastScore, ObservedScore
from hpoq.schedulers.trials import Trial

#: significance of a stop (hpoq.schedulers.evidence): a conventional level, not tuned
ALPHA = 0.01
#: share of a checkpoint's evidence whose best-scored trials are never stopped (set leave-one-table-out)
PROTECT = 0.65
#: share of the epochs the stops saved that is spent, once Hyperband's brackets are done, on training the
#: best-scored stopped trials to R anyway (rescues: a stop that was wrong is most likely one of those)
RESCUE = 0.25
#: share of the stopped trials audited (trained to R anyway)
AUDIT = 0.05
#: results between a forecast model's training data being complete and its use (simulator default)
FIT_LAG = 4
#: the forecaster ``default`` scores trials with unless told otherwise
DEFAULT_PREDICTOR = "svr"


class DefaultScheduler(Hyperband):
    """The project's recommended algorithm (registry name ``default``); see the module docstring.

    Parameters: ``R``, ``eta``, ``sampler``, ``seed`` (as :class:`Hyperband`); ``protect`` (share of a
    checkpoint's evidence whose best-scored trials are never stopped; 1 = never stop: Hyperband itself);
    ``audit`` (share of the stops audited); ``fit_lag`` (results between a forecast model's data being
    complete and its use; ``None``: once the runtime reports it fitted); ``predictor`` /
    ``predictor_params`` (a registered predictor whose forecasts score the trials; ``"none"`` scores by
    observed values); ``warm_curves`` (curve store of earlier studies of the same model family).
    """

    name = "default"
    background_fits = True
    parameter_constraints = {
        "protect": [Interval(float, 0, 1)],
        "audit": [Interval(float, 0, 1)],
        "fit_lag": [Interval(int, 0, None), None],
        "predictor": [Text(), None],
        "predictor_params": [Mapping(), None],
        "warm_curves": [Anything(), None],
    }

    def __init__(
        self,
        *,
        R: int,
        eta: int = 2,
        sampler,
        seed: int = 0,
        protect: float = PROTECT,
        audit: float = AUDIT,
        fit_lag: int | None = FIT_LAG,
        predictor: str | None = None,
        predictor_params: dict | None = None,
        warm_curves=None,
    ):
        super().__init__(R=R, eta=eta, sampler=sampler, seed=seed)
        if not 0.0 <= float(protect) <= 1.0 or not 0.0 <= float(audit) <= 1.0:
            raise ConfigError(f"default: protect and audit must lie in [0, 1], got {protect} and {audit}")
        self.protect = float(protect)
        self.horizons = sorted({r for b in self.brackets for _, r in b.rounds})
        self.checkpoints = sorted(set(rung_epochs(self.R, self.eta)[:-1]) | {h for h in self.horizons if h < self.R})
        self.audit = Audit(audit, self.seed, self.R)
        self.warm_curves = warm_curves
        self.store, self.store_rows = _store_curves(warm_curves, self.R)
        self.scorer = make_scorer(predictor, predictor_params, self.seed, self.R, warm_curves, fit_lag)
        self.evidence_order: list[tuple[int, int]] = []  # (trial, horizon) of each evidence row, in order
        self.stops: dict[int, dict] = {}  # trial -> inputs of the test that stopped it (audited ones too)
        self.audit_queue: deque = deque()  # audits to run again after a restore (charged)
        self.audit_inflight: set[int] = set()  # audited or rescued trials on their way to R
        self.rescued: list[int] = []  # stopped trials trained to R anyway, best-scored first
        self.finally_stopped: set[int] = set()  # stopped trials whose final STOP was decided (study finished)
        self.rescue_spent = 0
        self.round_sizes: dict[int, int] = {}  # bracket index -> members at the start of its round
        self._rebuild_evidence()

    @classmethod
    def runtime_defaults(cls) -> dict:
        """The MPI runtime uses a forecast model once its background fit is done, never waiting for one."""
        return {"fit_lag": None}

    # ---------------------------------------------------------------- evidence
    def _rebuild_evidence(self) -> None:
        """The evidence from the store and the trials' curves (at construction and after a restore)."""
        self.evidence = Evidence(self.scorer)
        configs = [] if self.warm_curves is None else self.warm_curves.configs
        for row, curve in zip(self.store_rows, self.store):
            self.evidence.add(("store", row), dict(configs[row]), curve, self.horizons)
        for tid, h in self.evidence_order:
            self.evidence.add(("trial", tid), self.ledger.trials[tid].config, self.ledger.trials[tid].curve, [h])

    def _add_evidence(self, trial: Trial, start: int) -> None:
        """Rows for every horizon the trial's curve reached in (start, epochs]; a finished curve also
        joins the forecaster's training data."""
        new = [h for h in self.horizons if start < h <= trial.epochs]
        if new:
            self.evidence.add(("trial", trial.trial_id), trial.config, trial.curve, new)
            self.evidence_order.extend((trial.trial_id, h) for h in new)
        if trial.epochs >= self.R:
            self.scorer.finished(("trial", trial.trial_id), trial.config, trial.curve)

    def incumbent(self) -> float:
        """The best value at R so far (+inf before any trial reached R)."""
        best = self.best()
        return math.inf if best is None else float(best["value"])

    # ---------------------------------------------------------------- rounds
    def _start_round(self) -> None:
        super()._start_round()
        self.round_sizes[self.b] = len(self.members)

    @property
    def n_keep(self) -> int:
        """Hyperband's survivors of the round, counted on the round's members at its start."""
        return max(self.round_sizes.get(self.b, len(self.members)) // self.eta, 1)

    def _promote(self) -> list[Decision]:
        self.members = [t for t in self.members if t not in self.audit.records]  # audited: trained to R apart
        return super()._promote()

    def _round_bar(self, r_i: int) -> float:
        """The round's cut so far: the n_keep-th best value at r_i among the members that reached it."""
        done = sorted(
            self.ledger.trials[t].value_at(r_i)
            for t in self.members
            if self.ledger.trials[t].epochs >= r_i and t not in self.stops
        )
        return done[self.n_keep - 1] if len(done) >= self.n_keep else math.inf

    def _active(self, c: int, r_i: int) -> bool:
        """A test can apply at checkpoint ``c``: enough evidence towards R or the round's end (see kind_test)."""
        enough = 1.0 / ALPHA
        return len(self.evidence.reached.get(self.R, ())) >= enough or (
            r_i < self.R and len(self.evidence.reached.get(r_i, ())) >= enough
        )

    def _test(self, trial: Trial, c: int) -> tuple[dict, dict | None]:
        """(what the trial was judged by at checkpoint ``c``, the inputs of its stop or None to go on)."""
        value = trial.value_at(c)
        if not math.isfinite(value):
            return {}, {"rule": "diverged", "value": value}
        score = float(self.scorer.scores(c, [(("trial", trial.trial_id), trial.config, trial.curve)])[0])
        judged = {"score": score, "incumbent": self.incumbent()}
        model = self.scorer.key(c)
        if model is not None:  # the forecast of the final value, read by the report as a prediction
            name = f"{self.scorer.forecaster.name}:{c}->{model[1]}@{model[2]}"
            judged.update(predicted=score, target_epoch=self.R, rung_epoch=c, model=name)
        tests = [("best", self.R, judged["incumbent"])]
        if self.r_i < self.R:
            tests.append(("round", self.r_i, self._round_bar(self.r_i)))
        for against, h, bar in tests:
            found = kind_test(self.evidence.column(c, h), score, bar, ALPHA, self.protect)
            if found is not None:
                return judged, {"rule": "evidence", "against": against, "horizon": h, "alpha": ALPHA, **found}
        return judged, None

    def _unit_done(self, trial: Trial) -> list[Decision]:
        c = trial.epochs
        if c >= self.r_i:
            return super()._unit_done(trial)
        judged, stop = self._test(trial, c)
        where = {"checkpoint": c, "value": trial.value_at(c), **judged, **self._where()}
        if stop is None:
            self.queue.appendleft((trial.trial_id, self.r_i))
            return [Decision(trial.trial_id, CONTINUE, c, "checkpoint", where, forecast_of(where))]
        info = {**where, **stop}
        self.stops[trial.trial_id] = info
        if stop["rule"] != "diverged" and self.audit.on_stop(trial.trial_id, c, self.r_i, info):
            trial.status = Status.RUNNING
            return [Decision(trial.trial_id, CONTINUE, c, "audit", info, forecast_of(info))]
        trial.status = Status.PRUNED  # out of Hyperband's rounds; paused outside, its checkpoint kept for a rescue
        return [Decision(trial.trial_id, PAUSE, c, "evidence", info, forecast_of(info))]

    @property
    def inflight(self) -> list[int]:
        """Trials of the current bracket in flight, without the audited and rescued ones (outside the rounds)."""
        return [t for t in super().inflight if t not in self.audit_inflight]

    # ---------------------------------------------------------------- units
    def suggest(self) -> WorkUnit | None:
        tid = self.audit_queue.popleft() if self.audit_queue else self.audit.next_affordable()
        if tid is not None:
            return self._to_R(tid)
        unit = self.ledger.resume_unit()  # a bracket's unit lost at a snapshot: again, first
        if unit is not None:
            self._cur = self._run_of(unit.trial_id)
            return unit
        run = self._runnable()
        if run is None:
            tid = self._next_rescue()  # a worker would idle: rescue the best-looking stop the savings cover
            return None if tid is None else self._to_R(tid)
        self._cur = run
        tid, end = run.queue.popleft()
        start = self.ledger.trials[tid].epochs
        end = next((c for c in self.checkpoints if start < c < end and self._active(c, end)), end)
        return self.ledger.start(tid, start, end)

    def _to_R(self, tid: int) -> WorkUnit:
        """A unit training audited or rescued trial ``tid`` to R (charged when it was chosen)."""
        self.audit_inflight.add(tid)
        return self.ledger.start(tid, self.ledger.trials[tid].epochs, self.R)

    def _next_rescue(self) -> int | None:
        """The stopped trial ranked best at its stop (smallest share of its evidence scored better) whose training
        to R the rescue budget (RESCUE of the epochs the stops saved) covers, charged; None if there is none."""
        budget = RESCUE * self.audit.saved - self.rescue_spent
        best = min(
            (
                ((info["evidence"] - info["kind"]) / info["evidence"], tid)
                for tid, info in self.stops.items()
                if info["rule"] == "evidence" and tid not in self.audit.records and tid not in self.rescued
            ),
            default=None,
        )
        if best is None or self.R - self.ledger.trials[best[1]].epochs > budget:
            return None
        self.rescued.append(best[1])
        self.rescue_spent += self.R - self.ledger.trials[best[1]].epochs
        return best[1]

    def on_result(self, trial_id: int, metrics) -> list[Decision]:
        return self._final_stops(self._on_result(trial_id, metrics))

    def _final_stops(self, decisions: list[Decision]) -> list[Decision]:
        """Once the study is finished, a stopped trial is stopped for good (its checkpoint may go)."""
        if not self.finished:
            return decisions
        for tid, info in self.stops.items():
            trial = self.ledger.trials[tid]
            if trial.status == Status.PRUNED and tid not in self.finally_stopped:
                self.finally_stopped.add(tid)
                decisions.append(Decision(tid, STOP, trial.epochs, "evidence", info, forecast_of(info)))
        return decisions

    def _on_result(self, trial_id: int, metrics) -> list[Decision]:
        trial = self.ledger.trials.get(trial_id)
        if trial is None:
            raise InternalError(f"{self.name}: result for trial {trial_id}, which has no unit in flight")
        start = trial.epochs
        self.scorer.result_recorded(self.checkpoints)
        if trial_id in self.audit_inflight:
            self.audit_inflight.discard(trial_id)
            self.ledger.finish(trial_id, metrics, self.name)
            trial.status = Status.DONE
            self._add_evidence(trial, start)
            info = {"value": trial.value_at(self.R), "stopped_at": self.stops[trial_id]["checkpoint"]}
            if trial_id in self.rescued:
                return [Decision(trial_id, DONE, self.R, "rescue", info)]
            return [Decision(trial_id, DONE, self.R, "audit", dict(info, estimate=self.audit_estimate()))]
        decisions = super().on_result(trial_id, metrics)
        if trial.status != Status.FAILED:
            self._add_evidence(trial, start)
        return decisions

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        if trial_id in self.audit_inflight:
            self.audit_inflight.discard(trial_id)
            self.ledger.fail(trial_id, self.name)
            failed = Decision(trial_id, FAILED, self.ledger.trials[trial_id].epochs, "failed", {"error": str(reason)})
            return self._final_stops([failed])
        return self._final_stops(super().on_failure(trial_id, reason))

    @property
    def finished(self) -> bool:
        if not super().finished or self.audit_queue or self.audit_inflight:
            return False
        # every stop has been made: if the budget does not cover the next audit (or rescue) now, it never will
        if self.audit.waiting and self.audit.affordable(self.audit.waiting[0]):
            return False
        return self._next_rescue_cost() is None

    def _next_rescue_cost(self) -> int | None:
        """What the next rescue would cost if the budget covers it, else None (no state changes)."""
        rescued, spent = list(self.rescued), self.rescue_spent
        tid = self._next_rescue()
        if tid is None:
            return None
        self.rescued, self.rescue_spent = rescued, spent
        return self.R - self.ledger.trials[tid].epochs

    # ---------------------------------------------------------------- forecasts (runtime hooks)
    def attach_fit_executor(self, executor) -> None:
        """Fit forecast models on ``executor`` (the MPI master's fit thread) as soon as their data is complete."""
        if self.scorer.forecaster is not None:
            self.scorer.forecaster.executor = executor
            self.scorer.prefetch(self.checkpoints)

    def fitted_models(self) -> list[tuple[int, int, int]]:
        """``fit_lag=None``: keys (c, R, N) of the background fits done and not yet reported."""
        return self.scorer.fitted_models()

    def on_model_ready(self, key) -> list[Decision]:
        """``fit_lag=None``: model ``key`` may score checkpoint c from now on (journaled by the runtime)."""
        self.scorer.model_ready(tuple(int(v) for v in key))
        return []

    # ---------------------------------------------------------------- audit
    def audit_estimate(self, epoch: int | None = None) -> dict:
        """False-prune estimate of the stops (at checkpoint ``epoch``, or all) with its exact interval:
        audited trials whose value at R beats the best of the trials never stopped."""
        finals = {
            t: self.ledger.trials[t].value_at(self.R)
            for t in self.audit.records
            if self.ledger.trials[t].epochs >= self.R
        }
        kept = [
            t.value_at(self.R)
            for t in self.ledger.trials.values()
            if t.epochs >= self.R and t.trial_id not in self.stops and t.status != Status.FAILED
        ]
        out = self.audit.estimate(finals, min(kept, default=math.inf), epoch)
        out["stops"] = sum(
            1 for info in self.stops.values() if info["rule"] == "evidence" and epoch in (None, info["checkpoint"])
        )
        return out

    # ---------------------------------------------------------------- state
    def settings(self) -> dict:
        # the scorer's description counts its fits so far: it is state (decision_state's "scorer"), not a setting
        return {
            **super().settings(),
            "alpha": ALPHA,
            "protect": self.protect,
            "audit": self.audit.rate,
            "checkpoints": list(self.checkpoints),
            "store_curves": len(self.store),
        }

    def decision_state(self) -> dict:
        return dict(
            super().decision_state(),
            stops={str(t): info for t, info in self.stops.items()},
            audit=self.audit.state_dict(),
            # audits in flight at a snapshot are lost work: run again (already charged)
            audit_queue=sorted(self.audit_inflight) + list(self.audit_queue),
            round_sizes={str(b): n for b, n in self.round_sizes.items()},
            rescued=list(self.rescued),
            finally_stopped=sorted(self.finally_stopped),
            rescue_spent=self.rescue_spent,
            evidence_order=[list(x) for x in self.evidence_order],
            scorer=self.scorer.state_dict(),
        )

    def load_decision_state(self, state: dict) -> None:
        super().load_decision_state(state)
        self.stops = {int(t): dict(info) for t, info in state["stops"].items()}
        self.audit.load_state_dict(state["audit"])
        self.audit_queue, self.audit_inflight = deque(int(t) for t in state["audit_queue"]), set()
        # an audit lost in flight runs again from the audit queue, not as a bracket's unit
        self.ledger.requeue = [u for u in self.ledger.requeue if u[0] not in self.audit_queue]
        self.round_sizes = {int(b): int(n) for b, n in state["round_sizes"].items()}
        self.rescued, self.rescue_spent = [int(t) for t in state["rescued"]], int(state["rescue_spent"])
        self.finally_stopped = {int(t) for t in state["finally_stopped"]}
        self.evidence_order = [(int(t), int(h)) for t, h in state["evidence_order"]]
        self.scorer.load_state_dict(state["scorer"], self.ledger.trials)
        self._rebuild_evidence()


def forecast_of(info: dict) -> Forecast | None:
    """The forecast a checkpoint's test scored the trial by (its inputs ``predicted``, ``rung_epoch``,
    ``target_epoch``, ``model``), typed for the report; None where the trial was scored by observed values."""
    if "predicted" not in info:
        return None
    return Forecast(float(info["predicted"]), int(info["rung_epoch"]), int(info["target_epoch"]), model=info["model"])


def make_scorer(predictor: str | None, params: dict | None, seed: int, R: int, warm_curves, fit_lag):
    """The trials' score at a checkpoint: observed values (``"none"``) or a forecaster's (default ``svr``)."""
    name = DEFAULT_PREDICTOR if predictor is None else predictor
    if name == "none":
        return ObservedScore()
    forecaster = FinalValuePredictor(
        name, dict(params or {}), seed=seed, R=R, store=warm_curves, min_train=MIN_TRAIN, stack=False
    )
    return ForecastScore(forecaster, R, fit_lag)


def _store_curves(warm_curves, R: int) -> tuple[np.ndarray, list[int]]:
    """Complete minimised store curves [rows, R] and their rows in the store (none without a store)."""
    if warm_curves is None:
        return np.zeros((0, R)), []
    if warm_curves.n_epochs < R:
        raise ConfigError(f"default: the warm curve store has {warm_curves.n_epochs} epochs, fewer than R = {R}")
    store = np.asarray(warm_curves.minimized(), dtype=float)[:, :R]
    rows = np.flatnonzero(np.isfinite(store).all(axis=1))
    return store[rows], [int(r) for r in rows]
