"""``default``: hpoq's own algorithm — successive halving that decides by *predicted* final values,
inside a budget that never exceeds Hyperband's.

1. **Sample** ``n`` configurations (default: as many as Hyperband at the same R and eta, in the
   same order, so both train the same draws). Optionally the first ``probes`` are trained straight
   to R ("probes": full curves early, for the predictor and as candidate answers).
2. **Rungs** at ``grace * eta**k`` epochs below R, then R (:class:`~hpoq.schedulers.rungs.Rungs`,
   shared with ``asha``). New configurations go first, then promotions from the *lowest* rung:
   with one worker every rung is complete before the next is ranked, with W workers no worker
   waits while any work exists.
3. **Predict at every rung.** At rung k (epoch e) the trials are ranked by the forecast of their
   final value (:class:`~hpoq.schedulers.final_predictor.FinalValuePredictor`: warm store plus the
   study's own curves; a cold study forecasts the latest epoch its promoted trials reached), not
   by the value observed at e. Successive halving's ``floor(|rung| / eta)`` go on (best forecast
   first), and a trial is pruned when even its optimistic forecast ``mean - confidence x sigma``
   cannot reach the ``finalists``-th best pessimistic forecast ``mean + confidence x sigma`` of the
   rung (Domhan et al., IJCAI 2015; Baker et al., "Accelerating NAS using performance prediction",
   2017). Without a forecast (too few curves, ``predictor="none"``) the observed values rank.
4. **Width from uncertainty.** Out of fold, each forecast model ranked its own training set; the
   share of that ranking needed to keep the training set's best rows (its *reach*,
   :func:`~hpoq.schedulers.final_predictor.top_reach`) is how wide the rung should be. Trials
   beyond the quota but within ``reach x |rung|``, or in the best ``quota / eta`` by observed value
   (forecast and observation disagree), go on as ``uncertain``, charged to a pool of
   ``widen x (cap - plan)`` epochs (each at its expected cost with the rungs above): where forecasts
   rank well (MNIST, MLPF) nothing widens, where curves cross late (CIFAR-10) rungs widen, until
   ``finalists`` trials have climbed to R (a rung widened later would start a chain ending after them), and
   with several workers only until trials two rungs above it report (``late_widening``). Once a
   rung can receive no more results at least ``finalists`` go on from it, so the finalists climb
   beside the others; leftover finalists (after failures or pruning) go on one rung at a time from
   the highest rung once the ladder is settled.
5. **Budget**: every unit is charged when dispatched; nothing is dispatched beyond the epochs
   Hyperband uses for the same n and R (:func:`hyperband_cap`). Policies are chosen among those
   whose plan costs less: with a warm store (``warm_curves``) the cheapest plan costing at most
   ``warm_share`` of Hyperband's epochs that matches Hyperband when replayed on the store, ranked by
   out-of-fold forecasts (:func:`~hpoq.schedulers.store_replay.choose_policy`); cold (or when no
   such plan matches), the largest grace whose plan costs at most ``share`` of Hyperband's epochs
   (the first rung is where ranking is least sure). ``share`` and ``warm_share`` (both 0.6) and
   ``widen`` (0.5) were set on seeds 0-19 of the shared tables (``benchmarks/hpo_replay.py``).
6. **Background fits** (``models``): with ``after_lag`` (the simulator's) a forecast model is used
   only ``fit_lag`` results after its training data is complete, fitted inline or meanwhile on a
   thread (:meth:`attach_fit_executor`), the same decisions either way. With ``when_fitted`` (the MPI
   runtime's) the master fits it on a thread and reports it with :meth:`on_model_ready` once fitted
   (journaled as a ``model`` record); until then the rung ranks with the models it has, so a fit
   never holds up dispatch. Either way a resumed journal replays the decisions exactly.

Every decision carries the inputs it used (observed rank, forecast, sigma, target epoch, training
size, model key); ``state_dict`` records all bookkeeping and a restored scheduler continues
identically (forecasts are a pure function of the state).
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from hpoq.errors import ConfigError, InternalError
from hpoq.registry import Anything, Boolean, Interval, Mapping, Options, Text, check_int
from hpoq.schedulers.base import CONTINUE, DONE, FAILED, PAUSE, STOP, Decision, Scheduler, WorkUnit
from hpoq.schedulers.brackets import budget_of, check_r_eta, hyperband_budget, schedule_of
from hpoq.schedulers.final_predictor import FinalValuePredictor
from hpoq.schedulers.rungs import Rungs, rung_epochs, sh_plan_epochs
from hpoq.schedulers.sampling import draw_config
from hpoq.schedulers.store_replay import choose_policy
from hpoq.schedulers.trials import check_metrics, take_inflight
from hpoq.seeding import derive_rng

log = logging.getLogger(__name__)

COLD_FINALISTS = 2
#: results between a forecast model's data being complete and its use, with up to FIT_LAG workers
FIT_LAG = 4
#: the predictor ``default`` uses unless told otherwise (fast enough to fit at every rung)
DEFAULT_PREDICTOR = "svr"
#: when a forecast model may be used: ``fit_lag`` results after its data is complete, or once fitted
MODEL_MODES = ("after_lag", "when_fitted")


def hyperband_cap(n: int, R: int, eta: int) -> int:
    """Epochs Hyperband spends on ``n`` configurations at R and eta (its own n: exactly its budget;
    another n: its budget scaled by n / its n, rounded down)."""
    hb_n, hb_epochs = hyperband_budget(R, eta)
    return hb_epochs if n == hb_n else hb_epochs * n // hb_n


def plan_cost(n: int, R: int, eta: int, grace: int, finalists: int, probes: int = 0) -> int:
    """Worst-case epochs of a policy: probes to R, successive halving of the rest, and up to
    ``finalists - 1`` more trials taken to R from the first rung."""
    rest = max(n - probes, 0)
    sh = sh_plan_epochs(rest, rung_epochs(R, eta, grace), eta) if rest else 0
    return probes * R + sh + (finalists - 1) * (R - grace)


def cold_grace(n: int, R: int, eta: int, finalists: int, probes: int, budget: float) -> int:
    """The largest rung epoch whose plan costs at most ``budget`` epochs (1 when none does)."""
    fits = [g for g in rung_epochs(R, eta)[:-1] if plan_cost(n, R, eta, g, finalists, probes) <= budget]
    return max(fits) if fits else 1


class DefaultScheduler(Scheduler):
    """The project's recommended algorithm (registry name ``default``); see the module docstring.

    Parameters: ``R`` (max epochs), ``eta`` (>= 2), ``sampler``, ``seed``, ``n`` (configurations to
    draw; default Hyperband's count), ``grace`` / ``finalists`` (None = chosen from the warm store,
    or the cold rule), ``probes`` (configurations trained to R first), ``confidence`` (sigmas of
    optimism when pruning by forecast), ``share`` / ``warm_share`` (share of Hyperband's epochs a
    cold / store-tuned plan may cost), ``policy_samples`` / ``policy_tolerance`` (store replay, see ``choose_policy``),
    ``min_train`` (curves before a forecast model is fitted), ``fit_lag`` (results that pass between
    a model's data being complete and its use: the runtime fits it in the background meanwhile),
    ``widen`` (share of the epochs between the plan and Hyperband's that uncertain forecasts may add),
    ``late_widening`` (widen a rung even after trials two rungs above it reported; off by
    :meth:`worker_defaults` with several workers),
    ``models`` (``"after_lag"``: a model is used ``fit_lag`` results after its data is complete;
    ``"when_fitted"``: once the runtime reports it fitted, see :meth:`on_model_ready`),
    ``predictor`` / ``predictor_params``
    (any registered predictor; ``"none"`` ranks by observed values only), ``warm_curves``.
    """

    name = "default"
    supports_dedupe = True
    background_fits = True
    parameter_constraints = {
        "n": [Interval(int, 1, None), None],
        "grace": [Interval(int, 1, None), None],
        "finalists": [Interval(int, 1, None), None],
        "probes": [Interval(int, 0, None)],
        "confidence": [Interval(float, 0, None)],
        "share": [Interval(float, 0, 1)],
        "warm_share": [Interval(float, 0, 1)],
        "policy_samples": [Interval(int, 1, None)],
        "policy_tolerance": [Interval(float, 0, None)],
        "min_train": [Interval(int, 3, None)],
        "fit_lag": [Interval(int, 0, None)],
        "widen": [Interval(float, 0, 1)],
        "late_widening": [Boolean()],
        "models": [Options(*MODEL_MODES)],
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
        n: int | None = None,
        grace: int | None = None,
        finalists: int | None = None,
        probes: int = 0,
        confidence: float = 1.0,
        share: float = 0.6,
        warm_share: float = 0.6,
        policy_samples: int = 120,
        policy_tolerance: float = 0.1,
        min_train: int = 12,
        fit_lag: int = FIT_LAG,
        widen: float = 0.5,
        late_widening: bool = True,
        models: str = "after_lag",
        predictor: str | None = None,
        predictor_params: dict | None = None,
        warm_curves=None,
    ):
        self.R, self.eta = check_r_eta(R, eta)
        self.n = budget_of(schedule_of(self.R, self.eta))[0] if n is None else n
        check_int("default: n (configurations to sample)", self.n, 1)
        for label, value in (("grace", grace), ("finalists", finalists)):
            if value is not None:
                check_int(f"default: {label}", value, 1)
        check_int("default: probes", probes, 0)
        check_int("default: policy_samples", policy_samples, 1)
        check_int("default: min_train", min_train, 3)
        check_int("default: fit_lag", fit_lag, 0)
        if grace is not None and grace > self.R:
            raise ConfigError(f"default: grace must not exceed R={self.R}, got {grace}")
        if probes > self.n:
            raise ConfigError(f"default: probes ({probes}) must not exceed n ({self.n})")
        if (
            not float(confidence) >= 0
            or not float(policy_tolerance) >= 0
            or not (0 < float(share) <= 1 and 0 < float(warm_share) <= 1)
        ):
            raise ConfigError("default: confidence and policy_tolerance must be >= 0, share and warm_share in (0, 1]")
        self.sampler, self.seed, self.probes = sampler, int(seed), int(probes)
        self.confidence, self.share, self.warm_share = float(confidence), float(share), float(warm_share)
        self.policy_samples, self.policy_tolerance = policy_samples, float(policy_tolerance)
        self.cap = hyperband_cap(self.n, self.R, self.eta)
        name = DEFAULT_PREDICTOR if predictor is None else predictor
        self.forecaster = None
        if name != "none":
            self.forecaster = FinalValuePredictor(
                name, dict(predictor_params or {}), seed=self.seed, R=self.R, store=warm_curves, min_train=min_train
            )
        chosen, self.policy_source, self.policy_report = self._choose_policy(warm_curves, grace, finalists)
        self.grace, self.finalists = chosen
        first = self.probes * self.R + (self.n - self.probes) * self.grace
        if first > self.cap:
            raise ConfigError(
                f"default: {self.probes} probes to R and grace {self.grace} for {self.n} configurations "
                f"cost {first} epochs, more than Hyperband's {self.cap} for the same n and R"
            )
        self.ladder = Rungs(self.R, self.eta, self.grace)
        self.rungs = self.ladder.epochs
        self.plan = plan_cost(self.n, self.R, self.eta, self.grace, self.finalists, self.probes)
        self.widen = float(widen)
        self.late_widening = bool(late_widening)
        # epochs uncertain forecasts may add beyond the quotas: a share of what the plan leaves under the cap
        self.extra_pool = self.widen * max(self.cap - self.plan, 0)
        self.extra: list[set[int]] = [set() for _ in self.rungs]  # per rung: trials promoted as uncertain
        self.min_train, self.fit_lag = min_train, fit_lag
        if models not in MODEL_MODES:
            raise ConfigError(f"default: models must be one of {', '.join(MODEL_MODES)}, got {models!r}")
        self.models = models
        self.ready: list[tuple[int, int, int]] = []  # when_fitted: (e, T, N) of the models reported fitted
        self._reported = 0  # fitted_models: the background fits before this one were all reported
        self.configs: list[dict] = []
        self.curves: list[list[float]] = []
        self.draws = 0  # draws from the sampler, repeats skipped by a dedupe sampler included
        self.result_order: list[tuple[int, int]] = []  # (rung, trial) of every result, in arrival order
        self._arrived: list[list[tuple[int, int]]] = [[] for _ in self.rungs]  # per rung: (trial, result index)
        self.running: dict[int, tuple[int, int]] = {}
        self.failed: set[int] = set()
        self.stopped: set[int] = set()
        self.hopeless: dict[int, dict] = {}  # trial -> forecast that pruned it (cannot reach the k-th best)
        self.requeue: list[tuple[int, int, int]] = []  # units already charged, dispatched first
        self.pending: list[Decision] = []
        self.units = 0
        self.spent = 0  # epochs charged (dispatched or queued)
        self._cache: dict = {}  # (rung, rung size, model key) -> survivors; pure function of state

    @classmethod
    def worker_defaults(cls, workers: int) -> dict:
        """``fit_lag``: at least one result per worker passes before a model is used, so that a
        background fit has about one work unit's time however many groups return results.
        ``late_widening`` off with several workers: there a rung widened after trials two rungs above
        it reported (a model that arrived late re-ranked it) starts chains that end after the rest of
        the study (TaskSet cold at 50 workers: makespan 1.08x Hyperband's with it, 0.98x without);
        with one worker time is epochs, and the rung is widened whenever its model arrives."""
        defaults = {"fit_lag": max(FIT_LAG, int(workers))}
        if int(workers) > 1:
            defaults["late_widening"] = False
        return defaults

    @classmethod
    def runtime_defaults(cls) -> dict:
        """``models``: the MPI runtime uses a model once its background fit is done, never waiting for one."""
        return {"models": "when_fitted"}

    # ---------------------------------------------------------------- policy
    def _choose_policy(self, warm_curves, grace, finalists):
        """((grace, finalists), source, report): store-tuned among plans cheaper than Hyperband, or cold.

        With a forecaster, the store replay ranks the candidates' rungs by out-of-fold forecasts on
        the forecaster's store rows (what the rungs will rank by); without, by the observed values."""
        store, scores = _store_curves(warm_curves, self.R), None
        if store is not None and self.forecaster is not None:
            try:
                scores = self.forecaster.store_scores(rung_epochs(self.R, self.eta)[:-1])
            except (ConfigError, InternalError):
                raise  # a configuration error or a bug: the user must see it
            except Exception as exc:  # noqa: BLE001 - a failing fit never stops the search: observed values rank
                log.warning(
                    "default: predictor %r failed on the store (%s: %s); the policy replay ranks by observed values",
                    self.forecaster.name,
                    type(exc).__name__,
                    exc,
                )
            if scores is not None:
                store = self.forecaster.store_curves
        if store is not None and store.shape[0] >= 2 and (grace is None or finalists is None):
            graces = [grace] if grace is not None else rung_epochs(self.R, self.eta)[:-1] or [self.R]
            counts = [finalists] if finalists is not None else [2, 3, 4]
            limit = self.cap if grace is not None else self.warm_share * self.cap  # a given grace: only the hard cap
            candidates = [
                (g, m)
                for g in graces
                for m in counts
                if plan_cost(self.n, self.R, self.eta, g, m, self.probes) <= limit
            ]
            if candidates:
                chosen, report = choose_policy(
                    store,
                    self.n,
                    self.R,
                    self.eta,
                    derive_rng(self.seed, "policy"),
                    samples=self.policy_samples,
                    tolerance=self.policy_tolerance,
                    candidates=candidates,
                    scores=scores,
                )
                report.update(
                    cap=self.cap, share=self.warm_share, ranked_by="observed" if scores is None else "forecast"
                )
                if any(row["ok"] for row in report["candidates"]):
                    return chosen, "store", report
                # nothing within the share matches Hyperband on the store: the cold rule's plan, store noted
                g, m = self._cold_policy(grace, finalists)
                return (g, m), "cold rule (no store candidate matched)", report
        g, m = self._cold_policy(grace, finalists)
        source = "given" if grace is not None and finalists is not None else "cold rule"
        return (
            (g, m),
            source,
            {"cap": self.cap, "share": self.share, "plan": plan_cost(self.n, self.R, self.eta, g, m, self.probes)},
        )

    def _cold_policy(self, grace, finalists) -> tuple[int, int]:
        m = finalists or COLD_FINALISTS
        return grace or cold_grace(self.n, self.R, self.eta, m, self.probes, self.share * self.cap), m

    # ---------------------------------------------------------------- units
    def _affordable(self, epochs: int) -> bool:
        return self.spent + epochs <= self.cap

    def _unit(self, tid: int, start: int, end: int, charge: bool = True) -> WorkUnit:
        if charge:
            self.spent += end - start
        self.running[tid] = (start, end)
        self.units += 1
        return WorkUnit(trial_id=tid, config=dict(self.configs[tid]), start_epoch=start, end_epoch=end)

    def _draw(self) -> WorkUnit | None:
        while self.draws < self.n:
            end = self.R if len(self.configs) < self.probes else self.rungs[0]
            if not self._affordable(end):
                return None
            config = draw_config(self.sampler)
            self.draws += 1
            if config is None:  # a repeat, skipped by the study's dedupe option: the draw counts, costs nothing
                continue
            self.configs.append(config)
            self.curves.append([])
            return self._unit(len(self.configs) - 1, 0, end)
        return None

    def _promote(self, k: int, tid: int, reason: str, info: dict) -> WorkUnit:
        self.ladder.promote(k, tid)
        if reason == "uncertain":
            self.extra[k].add(tid)
        self.hopeless.pop(tid, None)
        self.pending.append(Decision(tid, CONTINUE, self.rungs[k], reason, info))
        return self._unit(tid, self.rungs[k], self.rungs[k + 1])

    def suggest(self) -> WorkUnit | None:
        if self.requeue:
            tid, start, end = self.requeue.pop(0)
            return self._unit(tid, start, end, charge=False)
        unit = self._draw()
        if unit is not None:
            return unit
        for k in range(self.ladder.top):
            nxt = self._next_promotion(k)
            if nxt is not None:
                return self._promote(k, *nxt)
        self._plan_finalists()  # a worker is free and the ladder may have settled since the last result
        if self.requeue:
            tid, start, end = self.requeue.pop(0)
            return self._unit(tid, start, end, charge=False)
        return None

    # ---------------------------------------------------------------- forecasts
    def _arrivals(self, T: int) -> list[tuple[int, int]]:
        """(trial, result index) of the study trials whose curve reached epoch ``T``, in arrival order
        (a probe reaches every epoch when it reaches R)."""
        return [(t, pos) for t, pos in self._arrived[self.ladder.index(T)] if t not in self.failed]

    def _index_result(self, k: int, trial_id: int, pos: int) -> None:
        """Add result ``pos`` (rung ``k``) to the per-rung arrival lists (a probe arrives at every rung)."""
        for j in range(len(self.rungs)) if k == self.ladder.top and trial_id < self.probes else (k,):
            self._arrived[j].append((trial_id, pos))

    def _target(self, k: int, lag: int | None = None) -> tuple[int, int] | None:
        """(target epoch, training size) of the forecasts at rung ``k``, or None. A study curve counts
        once ``lag`` (default ``fit_lag``) more results were recorded after it arrived: a model is
        used only that long after its data is complete, which leaves the runtime that time to fit it
        in the background, and keeps every decision a pure function of the recorded results."""
        if self.forecaster is None:
            return None
        if self.models == "when_fitted" and lag is None:  # the latest target, largest set, reported fitted
            e = self.rungs[k]
            return max(((T, N) for m, T, N in self.ready if m == e), default=None)
        usable = len(self.result_order) - (self.fit_lag if lag is None else lag)
        counts = {T: sum(1 for _, pos in self._arrivals(T) if pos < usable) for T in self.rungs[k + 1 :]}
        return self.forecaster.target(self.rungs[k], self.rungs[k + 1 :], counts)

    def _prefetch(self) -> None:
        """Start background fits of the models the rungs will use once ``fit_lag`` results passed (or, with
        ``models="when_fitted"``, once the runtime reports them fitted)."""
        if self.forecaster is None or self.forecaster.executor is None:
            return
        for k in range(self.ladder.top):
            if self.ladder.results[k]:
                target = self._target(k, lag=0)
                if target is not None:
                    study = [(self.configs[t], self.curves[t]) for t, _ in self._arrivals(target[0])]
                    self.forecaster.prefetch(self.rungs[k], target[0], target[1], study)

    def attach_fit_executor(self, executor) -> None:
        """Fit forecast models on ``executor`` (e.g. a one-thread pool of the MPI master) as soon as
        their data is complete; with ``after_lag`` decisions do not change (a model not fitted when
        needed is waited for), with ``when_fitted`` nothing waits (see :meth:`fitted_models`)."""
        if self.forecaster is not None:
            self.forecaster.executor = executor
            self._prefetch()  # a resumed scheduler starts fitting what its rungs need now, not at the next result

    def fitted_models(self) -> list[tuple[int, int, int]]:
        """``when_fitted``: (e, T, N) of the background fits done but not yet reported with
        :meth:`on_model_ready`, in the order they were started (polled by the MPI master)."""
        if self.models != "when_fitted" or self.forecaster is None:
            return []
        out, ready, fc = [], set(self.ready), self.forecaster
        while self._reported < len(fc.started) and fc.started[self._reported] in ready:
            self._reported += 1  # not state: where the next poll starts, past the fits already reported
        for key in fc.started[self._reported :]:
            if key in ready:
                continue
            future = fc.futures.get(key)
            if key not in fc.models and (future is None or not future.done()):
                break  # one fit thread: the fits end in the order they started
            out.append(key)
        return out

    def on_model_ready(self, key) -> list[Decision]:
        """``when_fitted``: model ``key`` = (e, T, N) may rank rung e from now on (journaled by the runtime
        as a ``model`` record and replayed in order by a resume, whose fits run inline where the live ones started)."""
        key = tuple(int(v) for v in key)
        if self.models != "when_fitted":
            raise InternalError(f"default: on_model_ready({key}) with models={self.models!r}")
        if key not in self.ready:
            self.ready.append(key)
        return []  # the rungs re-rank lazily, when asked for work or at the next result: no ranking while all are busy

    def _rung_forecast(self, k: int, tids: list[int], T: int, N: int):
        """(means, sigmas, meta) forecasting the value at ``T`` of the trials ``tids`` of rung ``k``, or None."""
        if not tids:
            return None
        e = self.rungs[k]
        study = [(self.configs[t], self.curves[t]) for t, _ in self._arrivals(T)]
        try:
            mean, sigma = self.forecaster.forecast(
                e, T, N, study, [self.configs[t] for t in tids], [self.curves[t][:e] for t in tids]
            )
        except (ConfigError, InternalError):
            raise  # a configuration error or a bug: the user must see it
        except Exception as exc:  # noqa: BLE001 - a failing fit never stops the search: observed values rank
            log.warning(
                "default: predictor %r failed at rung %d (%s: %s); ranking by observed values, trial not "
                "pruned by forecast",
                self.forecaster.name,
                k,
                type(exc).__name__,
                exc,
            )
            return None
        meta = {
            "target_epoch": T,
            "n_train": N,
            "model": f"{self.forecaster.name}:{e}->{T}@{N}",
            "reach": self.forecaster.reach(e, T, N, study),
        }
        return mean, sigma, meta

    def _extra_cost(self, k: int) -> float:
        """Expected epochs of one promotion out of rung ``k`` beyond the quota: its step, plus the
        steps above that successive halving gives it with chance ``1 / eta`` per rung."""
        return float(sum(self.ladder.step(j) / self.eta ** (j - k) for j in range(k, self.ladder.top)))

    @property
    def extra_spent(self) -> float:
        """Expected epochs of the uncertain promotions so far, charged to ``extra_pool``."""
        return sum(len(tids) * self._extra_cost(k) for k, tids in enumerate(self.extra))

    def _complete(self, k: int) -> bool:
        """No further result can arrive at rung ``k``: nothing in flight or queued ends there, every
        draw is made (rung 0) or the rung below is complete and promotes nothing more."""
        e = self.rungs[k]
        if any(end == e for _, end in self.running.values()) or any(end == e for _, _, end in self.requeue):
            return False
        if k == 0:
            return self.draws >= self.n
        return self._complete(k - 1) and self._next_promotion(k - 1) is None

    def _allowed(self, k: int) -> int:
        """Promotions out of rung ``k`` by rank: successive halving's quota, and once the rung is complete
        at least ``finalists`` (so that they climb beside the others instead of one rung at a time after)."""
        quota = self.ladder.quota(k)
        if quota < self.finalists and self._complete(k):
            return max(quota, min(self.finalists, len(self.ladder.results[k])))
        return quota

    def _next_promotion(self, k: int) -> tuple[int, str, dict] | None:
        """The next (trial, reason, info) to promote out of rung ``k`` now, or None: at most the
        allowed number by forecast rank, plus ``uncertain`` trials while the widening pool lasts and fewer than
        ``finalists`` trials have climbed to R (probes aside)."""
        if not self._affordable(self.ladder.step(k)):
            return None
        allowed = self._allowed(k)
        base = len(self.ladder.promoted[k]) - len(self.extra[k])
        # once the finalists climbed to R the study has its answers: a rung widened now (a new model re-ranked
        # it) would start a chain that ends long after them (at 50 workers, up to twice the makespan); probes
        # reach R without climbing and do not count
        widening = sum(t >= self.probes for _, t in self.ladder.results[-1]) < self.finalists
        if not self.late_widening and k + 2 <= self.ladder.top:  # see worker_defaults
            widening = widening and not any(t >= self.probes for _, t in self.ladder.results[k + 2])
        for tid, reason, info in self._survivors(k, allowed):
            if tid in self.ladder.promoted[k]:
                continue
            if reason == "uncertain":
                if widening and self.extra_spent + self._extra_cost(k) <= self.extra_pool:
                    return tid, reason, info
            elif base < allowed:
                return tid, reason, info
        return None

    def _survivors(self, k: int, quota: int) -> list[tuple[int, str, dict]]:
        """(trial, reason, info) that go on from rung ``k`` on the results so far, best first, when
        ``quota`` may go on by rank."""
        ranked = self.ladder.ranked(k, self.failed)
        if quota == 0:
            return []
        target = self._target(k)
        key = (k, len(self.ladder.results[k]), quota, target)
        if key not in self._cache:
            self._cache[key] = self._rank_rung(k, ranked, quota, target)
        return self._cache[key]

    def _rank_rung(self, k: int, ranked, quota: int, target) -> list[tuple[int, str, dict]]:
        observed_rank = {t: i for i, (_, t) in enumerate(ranked)}
        base = {"rung": k, "rung_epoch": self.rungs[k], "quota": quota, "rung_size": len(ranked)}
        finite = [
            t for v, t in ranked if math.isfinite(v) and all(math.isfinite(x) for x in self.curves[t][: self.rungs[k]])
        ]
        forecast = None if target is None else self._rung_forecast(k, finite, *target)
        if forecast is None:
            return [(t, "rung", dict(base, value=v, rank=i)) for i, (v, t) in enumerate(ranked[:quota])]
        mean, sigma, meta = forecast
        z = self.confidence
        order = sorted(range(len(finite)), key=lambda i: (mean[i], finite[i]))
        m = min(self.finalists, len(finite))
        threshold = float(np.sort(mean + z * sigma)[m - 1])
        # as wide as the forecast's out-of-fold ranking needed to keep the best rows of its training set
        width = max(quota, int(math.ceil(meta["reach"] * len(finite))))
        out, extras = [], []
        for pred_rank, i in enumerate(order):
            t = finite[i]
            info = dict(
                base,
                **meta,
                value=self.curves[t][self.rungs[k] - 1],
                rank=observed_rank[t],
                predicted=float(mean[i]),
                sigma=float(sigma[i]),
                pred_rank=pred_rank,
                threshold=threshold,
                confidence=z,
            )
            if meta["target_epoch"] == self.R and mean[i] - z * sigma[i] > threshold:
                # pruned only by a forecast of the final value itself, never of an intermediate epoch
                self.hopeless.setdefault(t, info)
            elif pred_rank < quota:
                out.append((t, "rung" if observed_rank[t] < quota else "predicted", info))
            elif pred_rank < width or observed_rank[t] < quota / self.eta:
                # beyond the quota by forecast, but within the width the forecast's out-of-fold ranking of its
                # training set needed, or ranked well inside the quota by the observed value (forecast and
                # observation disagree): the rung is widened for it while the pool lasts, best forecast first
                extras.append((t, "uncertain", dict(info, width=width)))
        return out + extras

    # ---------------------------------------------------------------- finalists
    def _promotable(self) -> bool:
        """Some rung below R has a trial to promote now."""
        return any(self._next_promotion(k) is not None for k in range(self.ladder.top))

    def _idle(self) -> bool:
        return not self.running and not self.requeue and self.draws >= self.n and not self._promotable()

    def _finalist_candidates(self):
        """(rung, trial, value) of unpromoted, not hopeless trials: highest rung first, best value first."""
        for k in range(self.ladder.top - 1, -1, -1):
            for value, tid in self.ladder.unpromoted(k, self.failed | set(self.hopeless)):
                if len(self.curves[tid]) == self.rungs[k]:
                    yield k, tid, value

    def _settled(self) -> bool:
        """No rung below R can receive another result: every draw made, nothing queued, no unit in flight
        except towards R, nothing promotable. (With W workers the finalists start here, beside the
        trials heading to R, instead of after them; one worker reaches this state at the same points.)"""
        return (
            not self.requeue
            and self.draws >= self.n
            and all(e == self.R for _, e in self.running.values())
            and not self._promotable()
        )

    def _plan_finalists(self) -> None:
        """When settled: queue the next ``finalists - |at or heading to R|`` candidates one rung on (charged now)."""
        if not self._settled():
            return
        need = self.finalists - len(self.ladder.results[-1]) - len(self.running)
        for k, tid, value in list(self._finalist_candidates()):
            if need <= 0:
                return
            if not self._affordable(self.ladder.step(k)):
                continue
            self.ladder.promote(k, tid)
            self.spent += self.ladder.step(k)
            self.pending.append(
                Decision(
                    tid,
                    CONTINUE,
                    self.rungs[k],
                    "finalist",
                    {
                        "rung": k,
                        "rung_epoch": self.rungs[k],
                        "value": value,
                        "finalists": self.finalists,
                        "reached_R": len(self.ladder.results[-1]),
                    },
                )
            )
            self.requeue.append((tid, self.rungs[k], self.rungs[k + 1]))
            need -= 1

    # ---------------------------------------------------------------- events
    def _flush(self, decisions: list[Decision]) -> list[Decision]:
        self._prefetch()
        earlier, self.pending = self.pending, []
        self._plan_finalists()
        out = earlier + decisions + self.pending
        self.pending = []
        if self.finished:
            for tid, curve in enumerate(self.curves):
                if curve and len(curve) < self.R and tid not in self.failed and tid not in self.stopped:
                    self.stopped.add(tid)
                    k = self.ladder.index(len(curve))
                    if tid in self.hopeless:
                        out.append(Decision(tid, STOP, len(curve), "predicted", self.hopeless[tid]))
                    else:
                        out.append(Decision(tid, STOP, len(curve), "rung", {"final_rung_epoch": self.rungs[k]}))
        return out

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        start, end = take_inflight(self.running, trial_id, self.name, "result for")
        values = check_metrics(trial_id, metrics, start, end)
        self.curves[trial_id] = self.curves[trial_id][:start] + values
        k = self.ladder.index(end)
        info = self.ladder.record(k, trial_id, values[-1])
        self.result_order.append((k, trial_id))
        self._index_result(k, trial_id, len(self.result_order) - 1)
        if end == self.R:
            return self._flush([Decision(trial_id, DONE, end, "completed", info)])
        return self._flush([Decision(trial_id, PAUSE, end, "rung", info)])

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        start, _ = take_inflight(self.running, trial_id, self.name, "failure of")
        self.failed.add(trial_id)
        self._cache.clear()
        return self._flush([Decision(trial_id, FAILED, start, "failed", {"error": str(reason)})])

    @property
    def finished(self) -> bool:
        if not self._idle():
            return False
        # _plan_finalists ran after the last result: any finalist still possible is queued by now
        if self.ladder.reached_top() and len(self.ladder.results[-1]) >= self.finalists:
            return True
        return not any(self._affordable(self.ladder.step(k)) for k, _, _ in self._finalist_candidates())

    def best(self) -> dict | None:
        for k in range(self.ladder.top, -1, -1):
            ranked = self.ladder.ranked(k, self.failed)
            if ranked:
                value, tid = ranked[0]
                return {"trial_id": tid, "config": dict(self.configs[tid]), "value": value, "epoch": self.rungs[k]}
        return None

    def epochs_budget_reference(self) -> int | None:
        return self.cap

    # ---------------------------------------------------------------- state
    def settings(self) -> dict:
        return {
            "R": self.R,
            "eta": self.eta,
            "n": self.n,
            "grace": self.grace,
            "finalists": self.finalists,
            "probes": self.probes,
            "rungs": list(self.rungs),
            "seed": self.seed,
            "cap": self.cap,
            "confidence": self.confidence,
            "share": self.share,
            "warm_share": self.warm_share,
            "min_train": self.min_train,
            "fit_lag": self.fit_lag,
            "models": self.models,
            "widen": self.widen,
            "extra_pool": self.extra_pool,
            "policy_source": self.policy_source,
            "policy_samples": self.policy_samples,
            "policy_tolerance": self.policy_tolerance,
            "predictor": None if self.forecaster is None else self.forecaster.describe(),
        }

    def state_dict(self) -> dict:
        ladder = self.ladder.state_dict()
        return {
            "algorithm": self.name,
            "settings": self.settings(),
            "policy_report": self.policy_report,
            "configs": [dict(c) for c in self.configs],
            "curves": [list(c) for c in self.curves],
            "rung_results": ladder["results"],
            "promoted": ladder["promoted"],
            "extra": [sorted(x) for x in self.extra],
            "failed": sorted(self.failed),
            "stopped": sorted(self.stopped),
            "hopeless": {str(t): info for t, info in self.hopeless.items()},
            # units in flight are lost at a snapshot and suggested again (already charged), before the queued ones
            "requeue": [[t, s, e] for t, (s, e) in self.running.items()] + [list(u) for u in self.requeue],
            "pending": [d.to_dict() for d in self.pending],
            "units": self.units,
            "spent": self.spent,
            "draws": self.draws,
            "result_order": [list(x) for x in self.result_order],
            "ready": [list(key) for key in self.ready],
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        s = state["settings"]
        mine = (self.R, self.eta, self.n, self.grace, self.finalists, self.probes)
        theirs = (s["R"], s["eta"], s["n"], s["grace"], s["finalists"], s.get("probes", 0))
        if theirs != mine:
            raise ConfigError(
                f"default: the saved state was made with other settings (R, eta, n, grace, finalists, "
                f"probes) = {theirs}; this scheduler has {mine}"
            )
        self.ladder.load_state_dict(
            {"epochs": s["rungs"], "results": state["rung_results"], "promoted": state["promoted"]}
        )
        self.extra = [set(int(t) for t in x) for x in state.get("extra", [[] for _ in self.rungs])]
        self.ready = [tuple(int(v) for v in key) for key in state.get("ready", [])]
        self.configs = [dict(c) for c in state["configs"]]
        self.curves = [[float(v) for v in c] for c in state["curves"]]
        self.failed = set(int(t) for t in state["failed"])
        self.stopped = set(int(t) for t in state["stopped"])
        self.hopeless = {int(t): dict(info) for t, info in state["hopeless"].items()}
        self.requeue = [(int(t), int(a), int(b)) for t, a, b in state["requeue"]]
        self.pending = [Decision(**d) for d in state["pending"]]
        self.running, self._cache = {}, {}
        self.units, self.spent, self.draws = int(state["units"]), int(state["spent"]), int(state["draws"])
        self.result_order = [(int(k), int(t)) for k, t in state["result_order"]]
        self._arrived = [[] for _ in self.rungs]
        for pos, (k, t) in enumerate(self.result_order):
            self._index_result(k, t, pos)
        self.sampler.load_state_dict(state["sampler"])


def _store_curves(warm_curves, R: int):
    """Complete minimised store curves [rows, R] (None without a store)."""
    if warm_curves is None:
        return None
    if warm_curves.n_epochs < R:
        raise ConfigError(f"default: the warm curve store has {warm_curves.n_epochs} epochs, fewer than R = {R}")
    store = warm_curves.minimized()[:, :R]
    return store[np.isfinite(store).all(axis=1)]  # curves of a running study's store may stop short of R
