"""Replay simulation: run any registered algorithm on a recorded curve table (issue 3).

:func:`simulate_run` is one seed of ``hpoq simulate``: it writes the run as a study spec and builds it with
:func:`hpoq.study.build.assemble`, as ``run`` and ``validate`` do (sampler seed ``derive_seed(seed, "rows")``,
so every algorithm sees the same configurations in the same order; scheduler seed = ``seed``), then drives
the scheduler with :class:`~hpoq.simulate.replay.ReplayBackend`.
"""

from __future__ import annotations

import numpy as np

from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.schedulers.brackets import check_r_eta
from hpoq.schedulers.sampling import skipped_draws
from hpoq.simulate.replay import ReplayBackend, ReplayResult, pruned_count
from hpoq.study.build import assemble
from hpoq.study.spec import StudySpec


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
    if predictor is None and predictor_params:
        raise ConfigError("simulate: predictor parameters need the predictor's name (--predictor)")
    spec = StudySpec(
        name="simulate",
        seed=int(seed),
        algorithm={"name": algorithm, "R": R, "eta": eta, "params": dict(params or {})},
        predictor=None if predictor is None else {"name": predictor, "params": dict(predictor_params or {})},
        trainer={"name": "table", "params": {"table": table.source, "metric": table.metric, "mode": table.mode}},
        warm_fraction=warm_fraction,
        dedupe=dedupe,
    )
    parts = assemble(spec, table=table, warm_curves=warm_curves, workers=workers)
    result: ReplayResult = ReplayBackend(table, parts.scheduler, R=R, workers=workers, keep_events=keep_events).run()
    return _entry(parts, result, int(seed), R, keep_events)


def _entry(parts, result: ReplayResult, seed: int, R: int, keep_events: bool) -> dict:
    """The run entry of ``simulate --json`` (:func:`simulate_run`)."""
    table, sampler, warm, scheduler = parts.table, parts.sampler, parts.warm, parts.scheduler
    best = scheduler.best()
    best_row = None if best is None else int(best["config"]["_row"])
    entry = {
        "seed": seed,
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
        for t in scheduler.ledger.trials.values()
        if t.epochs >= R and t.trial_id not in scheduler.stops and t.status != "failed"
    ]
    kept_best = min(kept, default=float("inf"))
    stopped = [
        float(curves[int(scheduler.ledger.trials[t].config["_row"]), R - 1])
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


__all__ = ["simulate_run", "summarize", "table_best", "ReplayBackend"]
