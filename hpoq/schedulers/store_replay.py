"""Choosing how aggressively to stop, by replaying candidate schedules on the warm curve store.

The curve store of earlier studies of the same model family (docs/algorithms.md#where-the-savings-come-from,
docs/algorithms.md#hpoqs-default) holds
full learning curves. Instead of (only) training a regressor on them, :func:`choose_policy`
replays Hyperband and every candidate successive-halving policy of
:class:`~hpoq.schedulers.default.DefaultScheduler` on bootstrap samples of the store, and keeps
the cheapest policy whose returned configuration is as good as Hyperband's on those samples.
A policy is ``(grace, finalists)``: the first rung (epochs every configuration gets) and how many
configurations are trained to R at the end. Tables whose curves cross late (the final ranking
shows only after many epochs) get a longer grace; tables ranked by their first epoch get grace 1.

:func:`sh_replay` is the one-worker schedule of the default scheduler in closed form (the tests
check that both give the same epochs and answer).
"""

from __future__ import annotations

import numpy as np

from hpoq.schedulers.brackets import schedule_of
from hpoq.schedulers.rungs import rung_epochs


def sh_replay(curves: np.ndarray, R: int, eta: int, grace: int, finalists: int, scores=None) -> tuple[int, int]:
    """(epochs, index of the returned row) of the default scheduler's rule with one worker.

    ``scores`` (same shape as ``curves``, default ``curves``): what a rung at epoch r ranks by,
    ``scores[:, r - 1]`` (e.g. forecasts of the final value); the answer is the best observed
    final value among the trials that reached R.

    ``curves``: minimised curves [k, >= R] of the k configurations drawn, in sampling order.
    Rung by rung (``rung_epochs(R, eta, grace)``) the best ``floor(n_rung / eta)`` are promoted
    (ties by sampling order); then, while fewer than ``finalists`` configurations reached R, the
    best unpromoted configurations (highest rung first) are promoted one rung together, as many as
    are missing at R, and any rung whose quota grew by that promotes its next best.
    """
    rungs = rung_epochs(R, eta, grace)
    K = len(rungs)
    members: list[list[int]] = [[] for _ in rungs]  # trial indices with a result at rung k
    promoted: list[set[int]] = [set() for _ in rungs]
    k_count = curves.shape[0]
    members[0] = list(range(k_count))
    epochs = k_count * rungs[0]

    scores = curves if scores is None else scores

    def ranked(k):
        col = scores[members[k], rungs[k] - 1]
        order = np.lexsort((np.asarray(members[k]), col))
        return [members[k][i] for i in order]

    def promote(k, t):
        nonlocal epochs
        promoted[k].add(t)
        members[k + 1].append(t)
        epochs += rungs[k + 1] - rungs[k]

    def quota_pass(k_from):
        for k in range(k_from, K - 1):
            quota = len(members[k]) // eta
            if quota > len(promoted[k]):
                for t in ranked(k)[:quota]:
                    if t not in promoted[k]:
                        promote(k, t)

    quota_pass(0)
    while len(members[-1]) < finalists:
        need = finalists - len(members[-1])
        picks = [(k, t) for k in range(K - 2, -1, -1) for t in ranked(k) if t not in promoted[k]][:need]
        if not picks:
            break
        for k, t in picks:
            promote(k, t)
        quota_pass(0)
    final = members[-1]
    best = min(final, key=lambda t: (curves[t, R - 1], t))
    return epochs, best


def hyperband_replay(curves: np.ndarray, R: int, eta: int) -> int:
    """Index of the configuration Hyperband returns when it samples the rows of ``curves`` in order."""
    pos, best = 0, None
    n_rows = curves.shape[0]
    for bracket in schedule_of(R, eta):
        T = [(pos + i) % n_rows for i in range(bracket.n)]
        pos += bracket.n
        for n_i, r_i in bracket.rounds:
            T.sort(key=lambda t: (curves[t, r_i - 1], t))
            if r_i == R and (best is None or curves[T[0], R - 1] < curves[best, R - 1]):
                best = T[0]
            T = T[: max(n_i // eta, 1)]
    return best


def study_rows(n_store: int, n: int, pool_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Row sequence of one replayed study: a random ``pool_fraction`` of the store is the study's
    configuration pool, drawn like :class:`~hpoq.schedulers.sampling.TableRowSampler` draws a table
    (uniformly without replacement, a new permutation when the pool is exhausted), ``n`` draws."""
    pool = rng.choice(n_store, size=max(2, min(n_store, int(round(pool_fraction * n_store)))), replace=False)
    passes = -(-n // pool.size)
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:n]


def candidate_policies(R: int, eta: int, finalists=(2, 3, 4)) -> list[tuple[int, int]]:
    """(grace, finalists) pairs: every rung below R as the grace, each number of finalists."""
    graces = rung_epochs(R, eta)[:-1] or [R]
    return [(g, m) for g in graces for m in finalists]


def choose_policy(
    store_curves: np.ndarray,
    n: int,
    R: int,
    eta: int,
    rng: np.random.Generator,
    samples: int = 60,
    tolerance: float = 0.1,
    candidates=None,
    pool_fraction: float = 0.5,
    confidence: float = 1.0,
    min_match: float = 0.9,
    scores=None,
) -> tuple[tuple[int, int], dict]:
    """The cheapest candidate that matches Hyperband on ``samples`` studies replayed on the store
    (see :func:`study_rows`; every draw is trained, repeats included): its mean
    gap to Hyperband's returned final value plus ``confidence`` standard errors is within
    ``tolerance`` x the std of Hyperband's value, and it returns a configuration at least as good
    as Hyperband's in at least ``min_match`` of the studies.

    ``scores``: what the candidates' rungs rank by (see :func:`sh_replay`; default the curves;
    Hyperband always ranks by the observed values).

    Returns ``((grace, finalists), report)``; ``report`` lists every candidate's mean epochs and
    mean gap to Hyperband (in minimised metric units) for the decision log.
    """
    curves = np.asarray(store_curves, dtype=float)[:, :R]
    curves = np.where(np.isfinite(curves), curves, np.inf)
    candidates = candidate_policies(R, eta) if candidates is None else list(candidates)
    hb_values, gaps, costs = [], {c: [] for c in candidates}, {c: [] for c in candidates}
    n_store = curves.shape[0]
    for _ in range(samples):
        rows = study_rows(n_store, n, pool_fraction, rng)
        hb_values.append(curves[rows[hyperband_replay(curves[rows], R, eta)], R - 1])
        sub = curves[rows]  # every draw is trained, repeats included (dedupe off, as in the benchmarks)
        sub_scores = None if scores is None else np.asarray(scores, dtype=float)[rows]
        for c in candidates:
            epochs, idx = sh_replay(sub, R, eta, c[0], c[1], sub_scores)
            gaps[c].append(sub[idx, R - 1] - hb_values[-1])
            costs[c].append(epochs)
    hb_values = np.asarray(hb_values)
    finite = hb_values[np.isfinite(hb_values)]
    hb_std = float(np.std(finite)) if finite.size else 0.0
    limit = tolerance * hb_std
    table = []
    for c in candidates:
        g = np.asarray(gaps[c])
        g = g[np.isfinite(g)]
        gap = float(np.mean(g)) if g.size else float("inf")
        # the mean gap's standard error: a policy must match Hyperband with some confidence
        se = float(np.std(g) / np.sqrt(g.size)) if g.size > 1 else float("inf")
        table.append(
            {
                "grace": c[0],
                "finalists": c[1],
                "epochs": float(np.mean(costs[c])),
                "gap": gap,
                "gap_se": se,
                "match": float(np.mean(g <= 0)) if g.size else 0.0,
                "ok": bool(gap + confidence * se <= limit and (g.size and np.mean(g <= 0) >= min_match)),
            }
        )
    ok = [row for row in table if row["ok"]]
    if ok:
        pick = min(ok, key=lambda row: (row["epochs"], row["finalists"], row["grace"]))
    else:  # nothing matches Hyperband on the store: take the candidate closest to it
        pick = min(table, key=lambda row: (row["gap"], row["epochs"]))
    report = {
        "samples": samples,
        "n": n,
        "store_rows": int(curves.shape[0]),
        "hyperband_std": hb_std,
        "limit": limit,
        "candidates": table,
    }
    return (pick["grace"], pick["finalists"]), report
