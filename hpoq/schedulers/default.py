"""``default``: hpoq's own algorithm — store-tuned asynchronous successive halving.

What it does (one worker reduces it to synchronous successive halving; more workers never wait):

1. **Sample** ``n`` configurations (default: as many as Hyperband at the same R and eta, drawn in
   the same order, so both see the same configurations). A configuration identical to one already
   in the study (same hyperparameters) is not trained twice (``dedupe``).
2. **Rungs** at ``grace * eta**k`` epochs below R, then R (ASHA's rungs, Li et al. 2020).
   A trial is promoted from rung k when it ranks in the top ``floor(|rung k| / eta)`` of the
   results recorded there so far (ties by (value, trial id)); a promotion resumes from the
   checkpoint. New configurations go first, then promotions from the *lowest* rung: with one
   worker every rung is complete before the next is ranked (no eager early promotions, which made
   ASHA spend twice as many epochs on the MLPF table), and with W workers no worker waits while
   any work exists.
3. **Finalists**: when the last unit in flight returns and nothing else is runnable, the best
   unpromoted trials (highest rung first) are promoted together, one rung, as many as trials are
   still missing at R, until ``finalists`` trials reached R (insurance against one unlucky
   ranking). Waiting for that last unit is the only point where workers may idle.
4. **Warm start** (``warm_curves``, the curve store of earlier studies, method.md 3.7): grace and
   finalists are chosen by :func:`~hpoq.schedulers.store_replay.choose_policy`, which replays
   Hyperband and every candidate policy on bootstrap studies drawn from the store and keeps the
   cheapest one that returns configurations as good as Hyperband's there. Curves that cross late
   get a longer grace. Without a store: grace 1, finalists 2.
5. **Predictor pruning of finalists** (``predictor``, default ``svr``, fitted on the store and refit
   as curves of this study reach R): a finalist is not trained on when its predicted final value
   minus ``margin`` x the predictor's cross-validated error cannot beat the best final value found
   so far (reason ``"predicted"``; the decision carries prediction, error, threshold and |D|).

Every decision carries the inputs it used; ``state_dict`` records the policy, how it was chosen,
the predictor settings and all bookkeeping, and a restored scheduler continues identically.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from hpoq.errors import ConfigError, HpoqError, InternalError
from hpoq.registry import Anything, Boolean, Interval, Mapping, Text
from hpoq.schedulers.asha import ASHA
from hpoq.schedulers.base import CONTINUE, STOP, Decision, WorkUnit
from hpoq.schedulers.brackets import check_r_eta, hyperband_budget
from hpoq.schedulers.final_predictor import FinalValuePredictor
from hpoq.schedulers.store_replay import candidate_policies, choose_policy
from hpoq.seeding import derive_rng

log = logging.getLogger(__name__)

#: (grace, finalists) without a warm store (MLPF table, 20 seeds: Hyperband's answer in 19, at 16% of its epochs)
COLD_POLICY = (1, 2)


def config_key(config: dict) -> str:
    """Identity of a configuration: its hyperparameters, without bookkeeping keys (``_row``)."""
    return repr(sorted((k, repr(v)) for k, v in config.items() if not str(k).startswith("_")))


class DefaultScheduler(ASHA):
    """The project's recommended algorithm (registry name ``default``); see the module docstring.

    Parameters: ``R`` (max epochs), ``eta`` (>= 2), ``sampler``, ``seed``, ``n`` (configurations to
    draw; default Hyperband's count), ``grace`` / ``finalists`` (None = chosen from the warm store,
    or the cold policy (1, 2)), ``dedupe`` (skip configurations already in the study),
    ``policy_samples`` (bootstrap studies replayed on the store), ``policy_tolerance`` (allowed mean
    gap to Hyperband on the store, in units of the std of Hyperband's answer there),
    ``predictor`` / ``predictor_params`` (regressor of the final value used to prune finalists;
    ``"none"`` disables it), ``margin`` (multiples of its cross-validated error), ``warm_curves``.
    """

    name = "default"
    parameter_constraints = {"grace": [Interval(int, 1, None), None], "finalists": [Interval(int, 1, None), None],
                             "dedupe": [Boolean()], "policy_samples": [Interval(int, 1, None)],
                             "policy_tolerance": [Interval(float, 0, None)], "margin": [Interval(float, 0, None)],
                             "predictor": [Text(), None], "predictor_params": [Mapping(), None],
                             "warm_curves": [Anything(), None]}

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0, n: int | None = None,
                 grace: int | None = None, finalists: int | None = None, dedupe: bool = True,
                 policy_samples: int = 120, policy_tolerance: float = 0.1, margin: float = 2.0,
                 predictor: str | None = None, predictor_params: dict | None = None, warm_curves=None):
        R, eta = check_r_eta(R, eta)
        for name, value in (("grace", grace), ("finalists", finalists)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise HpoqError(f"default: {name} must be an integer >= 1, got {value!r}")
        if grace is not None and grace > R:
            raise HpoqError(f"default: grace must not exceed R={R}, got {grace}")
        if isinstance(policy_samples, bool) or not isinstance(policy_samples, int) or policy_samples < 1:
            raise HpoqError(f"default: policy_samples must be an integer >= 1, got {policy_samples!r}")
        if not float(policy_tolerance) >= 0 or not float(margin) >= 0:
            raise HpoqError("default: policy_tolerance and margin must be >= 0")
        store = None
        if warm_curves is not None:
            if warm_curves.n_epochs < R:
                raise HpoqError(f"default: the warm curve store has {warm_curves.n_epochs} epochs, fewer than R = {R}")
            store = warm_curves.minimized()[:, :R]
            store = store[np.isfinite(store).all(axis=1)]  # curves of a running study's store may stop short of R
        n_draws = hyperband_budget(R, eta)[0] if n is None else n
        if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
            raise HpoqError(f"default: n (configurations to sample) must be an integer >= 1, got {n!r}")
        self.policy_report: dict = {}
        if store is not None and store.shape[0] >= 2 and (grace is None or finalists is None):
            graces = [grace] if grace is not None else sorted({g for g, _ in candidate_policies(R, eta)})
            counts = [finalists] if finalists is not None else sorted({m for _, m in candidate_policies(R, eta)})
            chosen, self.policy_report = choose_policy(
                store, n_draws, R, eta, derive_rng(seed, "policy"), samples=policy_samples,
                tolerance=float(policy_tolerance), candidates=[(g, m) for g in graces for m in counts])
            source = "store"
        else:
            chosen = (grace or COLD_POLICY[0], finalists or COLD_POLICY[1])
            source = "given" if grace is not None and finalists is not None else (
                "cold default" if store is None else "cold default (store has fewer than 2 complete curves)")
        super().__init__(R=R, eta=eta, sampler=sampler, seed=seed, n=n_draws, grace=chosen[0])
        self.ignored = []
        self.finalists = chosen[1]
        self.policy_source = source
        self.dedupe = bool(dedupe)
        self.policy_samples, self.policy_tolerance, self.margin = policy_samples, float(policy_tolerance), float(margin)
        self.draws = 0                    # configurations drawn from the sampler (duplicates included)
        self.duplicates = 0
        self.keys: set[str] = set()
        self.pruned: set[int] = set()
        name = "svr" if predictor is None else predictor
        self.final_predictor = None
        if name != "none":
            self.final_predictor = FinalValuePredictor(name, dict(predictor_params or {}), seed=seed, R=R,
                                                       store=warm_curves)

    # ---------------------------------------------------------------- sampling
    def _draw(self) -> WorkUnit | None:
        while self.draws < self.n:
            config = self.sampler.sample()
            self.draws += 1
            key = config_key(config)
            if self.dedupe and key in self.keys:
                self.duplicates += 1
                continue
            self.keys.add(key)
            tid = len(self.configs)
            self.configs.append(config)
            self.curves.append([])
            return self._unit(tid, 0, self.rungs[0])
        return None

    def _promotable(self, k: int):
        results = self.rung_results[k]
        quota = len(results) // self.eta
        if quota == 0:
            return None
        for rank, (value, tid) in enumerate(sorted(results)[:quota]):
            if tid not in self.promoted[k] and tid not in self.failed and tid not in self.pruned:
                return tid, {"rung": k, "rung_epoch": self.rungs[k], "value": value, "rank": rank,
                             "rung_size": len(results), "quota": quota}
        return None

    def _finalist_candidates(self):
        """(rung, trial, value) of unpromoted trials, best first: highest rung below R first, then by
        (value, trial id) within a rung."""
        for k in range(len(self.rungs) - 2, -1, -1):
            for value, tid in sorted(self.rung_results[k]):
                if tid not in self.promoted[k] and tid not in self.failed and tid not in self.pruned:
                    yield k, tid, value

    def _finalist_candidate(self):
        return next(self._finalist_candidates(), None)

    def _best_final(self) -> float:
        finals = [v for v, t in self.rung_results[-1] if t not in self.failed]
        return min(finals) if finals else math.inf

    def suggest(self) -> WorkUnit | None:
        if self.requeue:
            tid, start, end = self.requeue.pop(0)
            return self._unit(tid, start, end)
        unit = self._draw()
        if unit is not None:
            return unit
        for k in range(len(self.rungs) - 1):
            found = self._promotable(k)
            if found is not None:
                return self._promote(k, found[0], found[1], "rung")
        return None

    def _plan_finalists(self) -> None:
        """When nothing is in flight or runnable: promote the next ``finalists - |rung R|`` candidates
        at once (queued as the next units, so idle workers take them together), pruning those whose
        predicted final cannot win; the decisions go out with the result that triggered this."""
        if self.running or self.requeue or self.draws < self.n:
            return
        if any(self._promotable(k) is not None for k in range(len(self.rungs) - 1)):
            return
        need = self.finalists - len(self.rung_results[-1])
        for k, tid, value in list(self._finalist_candidates()):
            if need <= 0:
                return
            info = {"rung": k, "rung_epoch": self.rungs[k], "value": value, "finalists": self.finalists,
                    "reached_R": len(self.rung_results[-1])}
            verdict = self._predict_final(tid, k)
            if verdict is not None:
                info.update(verdict)
                if verdict["prunable"]:
                    self.pruned.add(tid)
                    self.stopped.add(tid)
                    self.pending.append(Decision(tid, STOP, self.rungs[k], "predicted", info))
                    continue
            self.promoted[k].add(tid)
            self.pending.append(Decision(tid, CONTINUE, self.rungs[k], "finalist", info))
            self.requeue.append((tid, self.rungs[k], self.rungs[k + 1]))
            need -= 1

    def _predict_final(self, tid: int, k: int) -> dict | None:
        """Prediction inputs for pruning trial ``tid`` at rung ``k`` (None without a usable predictor)."""
        best = self._best_final()
        if self.final_predictor is None or not math.isfinite(best):
            return None
        epoch = self.rungs[k]
        prefix = np.asarray(self.curves[tid][:epoch], dtype=float)
        self.final_predictor.add_study_curves(
            [(self.configs[t], c) for t, c in enumerate(self.curves) if len(c) >= self.R and t not in self.failed])
        try:
            out = self.final_predictor.predict(self.configs[tid], prefix)
        except (ConfigError, InternalError):
            raise  # a configuration error or a bug: the user must see it, never "not pruned"
        except Exception as exc:  # noqa: BLE001 - a failing fit never stops the search: no pruning
            log.warning("default: predictor %r failed for trial %d at epoch %d (%s: %s); trial not pruned",
                        self.final_predictor.name, tid, epoch, type(exc).__name__, exc)
            return None
        if out is None:
            return None
        mean, error, n_train = out
        threshold = best
        return {"predicted_final": mean, "error": error, "margin": self.margin, "threshold": threshold,
                "n_train": n_train, "prefix_epochs": epoch, "predictor": self.final_predictor.name,
                "prunable": bool(mean - self.margin * error > threshold)}

    # ---------------------------------------------------------------- events
    def _flush(self, decisions: list[Decision]) -> list[Decision]:
        # plan finalists after this result; their decisions follow the result's own decisions
        earlier, self.pending = self.pending, []
        self._plan_finalists()
        planned, self.pending = self.pending, earlier
        return super()._flush(decisions + planned)

    @property
    def finished(self) -> bool:
        if self.requeue or self.running or self.draws < self.n:
            return False
        if any(self._promotable(k) is not None for k in range(len(self.rungs) - 1)):
            return False
        # _plan_finalists ran after the last result: any finalist still possible is queued by now
        return len(self.rung_results[-1]) >= self.finalists or self._finalist_candidate() is None

    # ---------------------------------------------------------------- state
    def settings(self) -> dict:
        return {"R": self.R, "eta": self.eta, "n": self.n, "grace": self.grace, "finalists": self.finalists,
                "rungs": list(self.rungs), "dedupe": self.dedupe, "seed": self.seed,
                "policy_source": self.policy_source, "policy_samples": self.policy_samples,
                "policy_tolerance": self.policy_tolerance, "margin": self.margin,
                "predictor": None if self.final_predictor is None else self.final_predictor.describe()}

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["settings"] = self.settings()
        state["policy_report"] = self.policy_report
        state["draws"], state["duplicates"] = self.draws, self.duplicates
        state["keys"] = sorted(self.keys)
        state["pruned"] = sorted(self.pruned)
        return state

    def load_state_dict(self, state: dict) -> None:
        settings = state["settings"]
        if (settings["R"], settings["eta"], settings["n"], settings["grace"], settings["finalists"]) != \
                (self.R, self.eta, self.n, self.grace, self.finalists):
            raise HpoqError("default: the saved state was made with other settings "
                            f"(R, eta, n, grace, finalists) = {(settings['R'], settings['eta'], settings['n'], settings['grace'], settings['finalists'])}")
        super().load_state_dict(dict(state, settings=dict(settings)))
        self.draws, self.duplicates = int(state["draws"]), int(state["duplicates"])
        self.keys = set(state["keys"])
        self.pruned = set(int(t) for t in state["pruned"])
