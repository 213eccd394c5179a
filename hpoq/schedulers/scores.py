"""What ``default``'s stop test ranks a trial by at a checkpoint: its observed value, or a forecast of
its final value (:class:`~hpoq.schedulers.final_predictor.FinalValuePredictor`: any registered
predictor, stacked on the observed value, fitted on the warm store and the study's finished curves).

A forecast score lets the test judge a trial among curves *forecast* alike: a slow starter whose
hyperparameters the forecast recognises is no longer of the kind of the poor fast starters it
trails. For the evidence to be fair, a curve that a forecast model was fitted on is scored by that
model's *out-of-fold* forecast (the folds that did not see it), every other curve by the model itself.
A model for checkpoint ``c`` is used once its training set, the store plus the first finished study
trials (``min_train`` x ``growth``\\ :sup:`j` curves in all), has been complete for ``fit_lag``
results, so decisions are a pure function of the results whether a fit ran inline or in the
background (the MPI master's fit thread, :meth:`prefetch`).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from hpoq.errors import ConfigError, InternalError
from hpoq.schedulers.final_predictor import FinalValuePredictor

log = logging.getLogger("hpoq.schedulers.default")

#: curves a forecast model needs (store and study together) before it scores anything
MIN_TRAIN = 12


class ObservedScore:
    """The value at the checkpoint (lower = better): the ranking Hyperband itself uses."""

    forecaster = None

    def key(self, c: int):
        return None

    def finished(self, key, config, curve) -> None:
        """A study curve reached R (a forecaster's training data grows)."""

    def result_recorded(self, checkpoints) -> None:
        """One more result was recorded (the lag of the next models runs)."""

    def prefetch(self, checkpoints) -> None:
        """Start the background fits the checkpoints will need."""

    def fitted_models(self) -> list:
        return []

    def model_ready(self, key) -> None:
        raise InternalError(f"default: on_model_ready({key}) without a forecaster waiting for reported fits")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict, trials) -> None:
        """Restore from :meth:`state_dict` (``trials``: the scheduler's trials, for their curves)."""

    def scores(self, c: int, rows) -> np.ndarray:
        """Scores at ``c`` of ``rows`` = [(row key, config, curve)]."""
        out = np.array([float(curve[c - 1]) for _, _, curve in rows], dtype=float)
        return np.where(np.isfinite(out), out, math.inf)

    def describe(self) -> dict:
        return {"name": "observed"}


class ForecastScore(ObservedScore):
    """Forecasts of the final value (see the module docstring); observed values where no model exists yet.

    ``finals``: the study's row keys ("trial", id) with their (config, curve), in the order they reached
    R, each with the count of results recorded when it arrived (the scheduler keeps this list)."""

    def __init__(self, forecaster: FinalValuePredictor, R: int, fit_lag: int | None):
        self.forecaster, self.R = forecaster, int(R)
        self.fit_lag = None if fit_lag is None else int(fit_lag)
        self.finals: list[tuple[tuple, dict, list, int]] = []  # (row key, config, curve, result index)
        self.results = 0  # results recorded so far
        # fit_lag None: the keys the runtime reported fitted, in order (a model is used only once reported)
        self.ready: list[tuple[int, int, int]] | None = [] if fit_lag is None else None
        self._reported = 0  # fitted_models: the background fits before this one were all reported (not state)
        self.failed: str | None = None  # the predictor's error, once a fit failed: observed values rank from then on

    def finished(self, key, config, curve) -> None:
        self.finals.append((key, config, curve, self.results))

    def result_recorded(self, checkpoints) -> None:
        self.results += 1
        self.prefetch(checkpoints)

    def _usable(self, lag: int) -> list:
        return [f for f in self.finals if f[3] <= self.results - lag]

    def key(self, c: int, lag: int | None = None):
        """(c, R, N) of the model scoring checkpoint ``c`` now, or None (also once a fit failed)."""
        if self.failed is not None:
            return None
        if self.ready is not None and lag is None:
            return max((k for k in self.ready if k[0] == c), default=None)
        lag = self.fit_lag if lag is None else lag
        target = self.forecaster.target(c, [self.R], {self.R: len(self._usable(lag))})
        return None if target is None else (c, self.R, target[1])

    def _study(self) -> list:
        return [(config, curve) for _, config, curve, _ in self.finals]

    def _training_keys(self, N: int) -> dict:
        keys = [("store", i) for i in self.forecaster.store_rows[:N]]
        keys += [f[0] for f in self.finals[: N - len(keys)]]
        return {k: i for i, k in enumerate(keys)}

    def scores(self, c: int, rows) -> np.ndarray:
        key = self.key(c)
        if key is None:
            return super().scores(c, rows)
        try:
            return self._forecast_scores(c, key, rows)
        except (ConfigError, InternalError):
            raise  # a configuration error or a bug: the user must see it
        except Exception as exc:  # noqa: BLE001 - a failing fit never stops the search: observed values rank
            self.failed = f"{type(exc).__name__}: {exc}"
            log.warning(
                "default: predictor %r failed at checkpoint %d (%s); ranking by observed values from now on, "
                "trial not pruned by forecast",
                self.forecaster.name,
                c,
                self.failed,
            )
            return super().scores(c, rows)

    def _forecast_scores(self, c: int, key, rows) -> np.ndarray:
        study = self._study()
        oof, index = self.forecaster.out_of_fold(*key, study), self._training_keys(key[2])
        out = np.empty(len(rows))
        fresh = [i for i, (k, _, _) in enumerate(rows) if k not in index]
        for i, (k, _, _) in enumerate(rows):
            if k in index:
                out[i] = oof[index[k]]
        if fresh:
            configs = [rows[i][1] for i in fresh]
            prefixes = np.asarray([np.asarray(rows[i][2][:c], dtype=float) for i in fresh])
            finite = np.isfinite(prefixes).all(axis=1)
            mean = np.full(len(fresh), math.inf)
            if finite.any():
                ok = np.flatnonzero(finite)
                mean[ok], _ = self.forecaster.forecast(
                    *key, study, [configs[i] for i in ok], prefixes[ok].reshape(len(ok), c)
                )
            out[fresh] = mean
        return np.where(np.isfinite(out), out, math.inf)

    def prefetch(self, checkpoints) -> None:
        """Start background fits of the models the checkpoints will use once their lag has passed."""
        if self.forecaster.executor is None:
            return
        for c in checkpoints:
            key = self.key(c, lag=0)
            if key is not None:
                self.forecaster.prefetch(*key, self._study())

    def fitted_models(self) -> list[tuple[int, int, int]]:
        """``fit_lag=None``: keys of the background fits done and not yet reported, in the order they started."""
        if self.ready is None:
            return []
        out, ready, fc = [], set(self.ready), self.forecaster
        while self._reported < len(fc.started) and fc.started[self._reported] in ready:
            self._reported += 1
        for key in fc.started[self._reported :]:
            if key in ready:
                continue
            future = fc.futures.get(key)
            if key not in fc.models and (future is None or not future.done()):
                break  # one fit thread: the fits end in the order they started
            out.append(key)
        return out

    def model_ready(self, key) -> None:
        if self.ready is None:
            raise InternalError(f"default: on_model_ready({key}) with fit_lag={self.fit_lag}")
        if key not in self.ready:
            self.ready.append(key)

    def state_dict(self) -> dict:
        return {
            "finals": [[k[1], pos] for k, _, _, pos in self.finals],
            "results": self.results,
            "ready": None if self.ready is None else [list(k) for k in self.ready],
        }

    def load_state_dict(self, state: dict, trials) -> None:
        self.finals = [
            (("trial", int(t)), trials[int(t)].config, trials[int(t)].curve, int(pos)) for t, pos in state["finals"]
        ]
        self.results = int(state["results"])
        if self.ready is not None:
            self.ready = [tuple(int(v) for v in k) for k in state["ready"] or []]

    def describe(self) -> dict:
        return {"name": "forecast", "fit_lag": self.fit_lag, **self.forecaster.describe()}
