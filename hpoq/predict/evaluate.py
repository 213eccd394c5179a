"""The ``predict-eval`` protocol (issue 2): how well a predictor forecasts the final value.

For a curve table with ``epochs`` epochs and known fraction F:

- target = the value at the last epoch (or ``target_epoch``), in the minimised direction
  (``CurveTable.minimized``; R², MAE and Spearman are the same up to sign as on raw values);
- prefix = the first ``ceil(F x epochs)`` epochs;
- for each seed, one 80/20 split grouped by identical hyperparameter rows
  (``GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)``), so re-runs of a
  configuration never sit on both sides;
- the predictor is built with ``make_predictor(name, seed=seed, **params)`` (``seed`` only if
  it takes one), fitted on the 80% and scored on the 20%.

Result keys (stable, relied on): ``r2``, ``mae``, ``spearman``, ``top_kept`` (the share of the true best
10% kept in the predicted best third; means over seeds), ``r2_min``,
``n``, ``epochs``, ``known_epochs``, ``fit_seconds`` (mean per fit), plus ``r2_std``,
``predictor``, ``seeds``, ``per_seed`` and table facts.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.registry import build_nested, takes

MIN_ROWS = 10


def known_epochs(fraction: float, epochs: int) -> int:
    """ceil(F x epochs), robust to float noise (0.3 x 10 -> 3, not 4), at least 1."""
    return max(1, int(math.ceil(fraction * epochs - 1e-9)))


def hp_groups(configs) -> np.ndarray:
    """Group labels: rows with identical hyperparameters (keys starting with '_' ignored) share one."""
    labels: dict[str, int] = {}
    out = []
    for i, cfg in enumerate(configs):
        items = {k: v for k, v in (cfg or {}).items() if not str(k).startswith("_")}
        key = json.dumps(items, sort_keys=True, default=str) if items else f"__row{i}"
        out.append(labels.setdefault(key, len(labels)))
    return np.asarray(out, dtype=int)


def grouped_split(configs, seed: int, test_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """One 80/20 GroupShuffleSplit over identical-hyperparameter groups (random_state = seed)."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = hp_groups(configs)
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=int(seed))
    train, test = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return np.sort(train), np.sort(test)


def build_predictor(name: str, seed: int, params: dict | None = None, horizon: int | None = None):
    """``make_predictor(name, seed=seed, **params)``, passing ``seed`` (and the target epoch ``horizon`` to an
    extrapolating predictor) only where accepted."""
    from hpoq.predict import make_predictor, predictor_class

    params = dict(params or {})
    if takes(predictor_class(name), "seed"):
        params.setdefault("seed", int(seed))
    if horizon is not None and takes(predictor_class(name), "horizon"):
        params.setdefault("horizon", int(horizon))
    return make_predictor(name, **params)


def top_kept(y_true: np.ndarray, y_pred: np.ndarray, top: float = 0.1, kept: float = 1 / 3) -> float:
    """Share of the true best ``top`` fraction (lowest targets, at least 1) that the predictions rank in their
    best ``kept`` fraction: what a rung that keeps a third by forecast keeps of the winners."""
    n = len(y_true)
    best = np.argsort(y_true, kind="stable")[: max(1, int(round(top * n)))]
    keep = set(np.argsort(y_pred, kind="stable")[: max(1, int(round(kept * n)))].tolist())
    return float(np.mean([i in keep for i in best]))


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """R², MAE, Spearman rank correlation and :func:`top_kept` of predictions."""
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    rho = spearmanr(y_true, y_pred).statistic if np.ptp(y_pred) > 0 and np.ptp(y_true) > 0 else 0.0
    return {
        "r2": float(r2_score(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "spearman": float(rho),
        "top_kept": top_kept(y_true, y_pred),
    }


def _check_protocol(table: CurveTable, predictor: str, known: float, seeds: list, target_epoch) -> tuple[int, int]:
    """(target epoch, known epochs) of the protocol, or ConfigError for bad inputs (before any fit)."""
    from hpoq.predict import predictor_class

    predictor_class(predictor)  # unknown name -> ConfigError before any work
    if not (0.0 < float(known) < 1.0):
        raise ConfigError(f"--known must lie in (0, 1), got {known:g}")
    if not seeds:
        raise ConfigError("no seeds given")
    epochs = table.n_epochs
    target_epoch = epochs if target_epoch is None else int(target_epoch)
    if not (1 <= target_epoch <= epochs):
        raise ConfigError(f"target epoch {target_epoch} outside 1..{epochs}")
    e = known_epochs(known, target_epoch)
    if e >= target_epoch:
        raise ConfigError(f"known fraction {known:g} of {target_epoch} epochs leaves nothing to predict")
    groups = hp_groups(table.configs)
    n_groups = len(set(groups.tolist()))
    if table.n_rows < MIN_ROWS or n_groups < 5:
        raise ConfigError(
            f"too few rows to evaluate: {table.n_rows} rows in {n_groups} distinct configurations "
            f"(need >= {MIN_ROWS} rows and >= 5 configurations)"
        )
    return target_epoch, e


def _one_split(table: CurveTable, model, seed: int, prefixes, targets) -> tuple[dict, dict]:
    """(scores, predictions) of ``model`` fitted on seed ``seed``'s grouped training split."""
    train, test = grouped_split(table.configs, seed)
    t0 = time.perf_counter()
    model.fit([table.configs[i] for i in train], prefixes[train], targets[train])
    fit_s = time.perf_counter() - t0
    pred = model.predict([table.configs[i] for i in test], prefixes[test])
    s = score(targets[test], pred.mean)
    s.update(seed=int(seed), n_train=int(len(train)), n_test=int(len(test)), fit_seconds=fit_s)
    if pred.spread is not None:
        resid = np.abs(targets[test] - pred.mean)
        s["spread_mean"] = float(np.mean(pred.spread))
        s["abs_error_mean"] = float(np.mean(resid))
        s["spread_error_spearman"] = score(resid, pred.spread)["spearman"]
    return s, {"seed": int(seed), "test": test, "y": targets[test], "mean": pred.mean, "spread": pred.spread}


def evaluate_predictor(
    table: CurveTable,
    predictor: str,
    known: float,
    seeds=(0, 1, 2, 3, 4),
    params: dict | None = None,
    target_epoch: int | None = None,
    return_predictions: bool = False,
) -> dict:
    """Run the protocol above; raises :class:`ConfigError` for bad inputs (checked before any fit)."""
    from hpoq.predict import predictor_class

    seeds = list(seeds)
    target_epoch, e = _check_protocol(table, predictor, known, seeds, target_epoch)
    values = table.minimized()
    prefixes, targets = values[:, :e], values[:, target_epoch - 1]
    # a nested sampler (qsvr's) built once, shared by every fit; bad parameters -> ConfigError before any fit
    params = build_nested(predictor_class(predictor), params or {}, "predictor.params")
    build_predictor(predictor, seeds[0], params, target_epoch)
    splits = [
        _one_split(table, build_predictor(predictor, seed, params, target_epoch), seed, prefixes, targets)
        for seed in seeds
    ]
    per_seed = [s for s, _ in splits]
    r2s = np.array([s["r2"] for s in per_seed])
    result = {
        "r2": float(r2s.mean()),
        "mae": float(np.mean([s["mae"] for s in per_seed])),
        "spearman": float(np.mean([s["spearman"] for s in per_seed])),
        "top_kept": float(np.mean([s["top_kept"] for s in per_seed])),
        "r2_min": float(r2s.min()),
        "r2_std": float(r2s.std()),
        "n": int(table.n_rows),
        "epochs": int(table.n_epochs),
        "target_epoch": int(target_epoch),
        "known_epochs": int(e),
        "known": float(known),
        "fit_seconds": float(np.mean([s["fit_seconds"] for s in per_seed])),
        "predictor": predictor,
        "params": dict(params or {}),
        "metric": table.metric,
        "mode": table.mode,
        "dropped": int(table.dropped),
        "seeds": [int(s) for s in seeds],
        "per_seed": per_seed,
    }
    if return_predictions:
        result["predictions"] = [p for _, p in splits]
    return result


__all__ = ["evaluate_predictor", "grouped_split", "hp_groups", "known_epochs", "score", "build_predictor"]
