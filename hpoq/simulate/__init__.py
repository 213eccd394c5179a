"""Replay simulation: run any registered algorithm on a recorded curve table (issue 3).

:func:`simulate_run` is one seed of ``hpoq simulate``: it builds the sampler with
:func:`hpoq.schedulers.sampling.table_sampler_for` (sampler seed ``derive_seed(seed, "rows")``,
so every algorithm sees the same configurations in the same order), the scheduler with
:func:`hpoq.schedulers.make_scheduler` (scheduler seed = ``seed``) and drives it with
:class:`~hpoq.simulate.replay.ReplayBackend`.
"""

from __future__ import annotations

import numpy as np

from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.schedulers import make_scheduler, with_worker_defaults
from hpoq.schedulers.brackets import check_r_eta
from hpoq.schedulers.sampling import skipped_draws, table_sampler_for
from hpoq.simulate.replay import ReplayBackend, ReplayResult, pruned_count


def merge_warm(a: CurveTable | None, b: CurveTable | None) -> CurveTable | None:
    """One warm curve store from two (either may be None); curves cut to the shorter length."""
    if a is None or b is None:
        return a if b is None else b
    e = min(a.n_epochs, b.n_epochs)
    curves = np.vstack([a.minimized()[:, :e], b.minimized()[:, :e]])
    return CurveTable(
        hp_names=list(a.hp_names),
        configs=list(a.configs) + list(b.configs),
        curves=curves,
        metric=a.metric,
        mode="min",
        source=f"{a.source}+{b.source}",
        provenance={"merged": [a.provenance, b.provenance]},
    )


def check_table_for(table: CurveTable, R: int) -> None:
    if table.n_epochs < R:
        raise ConfigError(
            f"curve table {table.source or '(in memory)'} has {table.n_epochs} epochs, fewer than R = {R}"
        )


def simulate_run(
    table: CurveTable,
    algorithm: str,
    seed: int,
    R: int,
    eta: int,
    workers: int = 1,
    predictor: str | None = None,
    predictor_params: dict | None = None,
    params: dict | None = None,
    warm_fraction: float = 0.0,
    warm_curves: CurveTable | None = None,
    keep_events: bool = False,
    dedupe: bool = False,
) -> dict:
    """One replay run; returns the run entry of ``simulate --json``.

    Keys: ``seed``, ``epochs`` (requested, docs/algorithms.md#conventions), ``configs`` (draws, skipped repeats
    included),
    ``duplicates`` (draws skipped as repeats, only with ``dedupe``), ``best_final``
    (value at epoch R of the returned configuration, in the table's own direction), ``best_row``,
    ``makespan`` (simulated time units), ``utilization`` (busy / (workers * makespan)),
    ``pruned`` (trials stopped before R), ``warm_curves`` (rows in the warm store) and
    ``trace`` ([epochs used, best final so far] pairs; plus ``events`` with ``keep_events``).
    """
    R, eta = check_r_eta(R, eta)
    check_table_for(table, R)
    if (params or {}).get("models") == "when_fitted":
        raise ConfigError(
            "simulate: models=when_fitted uses a forecast once the MPI runtime reports its background fit done; "
            "the simulator fits inline, so give models=after_lag (the default) and fit_lag"
        )
    sampler, warm_table = table_sampler_for(table, seed, warm_fraction, dedupe=dedupe)
    warm = merge_warm(warm_table, warm_curves)
    # a warm store with shorter (or partial) curves still feeds the predictors of the early rungs
    scheduler = make_scheduler(
        algorithm,
        R=R,
        eta=eta,
        sampler=sampler,
        seed=seed,
        predictor=predictor,
        predictor_params=predictor_params,
        warm_curves=warm,
        **with_worker_defaults(algorithm, params, workers),
    )
    result: ReplayResult = ReplayBackend(table, scheduler, R=R, workers=workers, keep_events=keep_events).run()
    best = scheduler.best()
    best_row = None if best is None else int(best["config"]["_row"])
    entry = {
        "seed": int(seed),
        "epochs": int(result.epochs),
        "configs": int(getattr(sampler, "drawn", 0)),
        "duplicates": skipped_draws(sampler),
        "best_final": None if best_row is None else float(table.curves[best_row, R - 1]),
        "best_row": best_row,
        "makespan": float(result.makespan),
        "utilization": float(result.utilization),
        "pruned": int(pruned_count(result.decisions)),
        "warm_curves": 0 if warm is None else int(warm.n_rows),
        "trace": result.trace,
    }
    if hasattr(scheduler, "audit_estimate"):
        entry["audit"] = audit_entry(scheduler, table, R)
    if keep_events:
        entry["events"] = result.events
        entry["decisions"] = [d.to_dict() for d in result.decisions]
    return entry


def audit_entry(scheduler, table: CurveTable, R: int) -> dict:
    """``default``'s false-prune estimate, with the true rate a replay knows: the share of *all* stopped
    trials whose value at R in the table beats the best value at R of the trials never stopped."""
    out = dict(scheduler.audit_estimate())
    curves = table.minimized()
    kept = [
        float(curves[int(t.config["_row"]), R - 1])
        for t in scheduler.trials.values()
        if t.epochs >= R and t.trial_id not in scheduler.stops and t.status != "failed"
    ]
    kept_best = min(kept, default=float("inf"))
    stopped = [
        float(curves[int(scheduler.trials[t].config["_row"]), R - 1])
        for t, info in scheduler.stops.items()
        if info["rule"] == "evidence"
    ]
    out["true_rate"] = sum(v < kept_best for v in stopped) / len(stopped) if stopped else None
    return out


def table_best(table: CurveTable, R: int) -> dict:
    """Best value at epoch R over the whole table (own direction) and its row."""
    col = table.minimized()[:, R - 1]
    row = int(np.argmin(col))
    return {"value": float(table.curves[row, R - 1]), "row": row}


def summarize(runs: list[dict]) -> dict:
    """Means over the seeds (and standard deviations of epochs and best_final)."""
    out: dict = {"seeds": len(runs)}
    for key in ("epochs", "configs", "duplicates", "best_final", "makespan", "utilization", "pruned"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    for key in ("epochs", "best_final"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[f"{key}_std"] = float(np.std(values)) if values else None
    return out


__all__ = ["simulate_run", "summarize", "table_best", "merge_warm", "ReplayBackend"]
