"""Where the predictors' error on the MLPF table comes from (issue 2: why `default` stops near R2 0.92 at 25% known).

Same protocol as ``predict-eval`` (grouped 80/20 splits, target = last epoch). Prints three tables:

1. R2 of ``default`` and ``svr`` as the known fraction grows (0.25 ... 0.5): how much curve a
   given R2 needs;
2. the loss of R2 (sum of squared test errors of a category / sum of the test sets' total sum of
   squares, over the seeds) by kind of run, at 25% known. The kinds come from the curves:
   ``plateau`` (at the collapse plateau, loss >= 525, at the last known epoch and at the end),
   ``recovers`` (on the plateau at the last known epoch, ends below it), ``collapses`` (below the
   plateau at the last known epoch, ends on it), ``restarts later`` (the logged curve starts over
   after the known prefix: the run was restarted from scratch and logged as one curve, so the
   final value belongs to an earlier effective epoch), ``tiny lr`` (lr < 2e-5: slow, smooth
   descents whose outcome the prefix hardly shows), ``high lr`` (lr > 0.01: noisy), ``other``;
3. re-runs (identical hyperparameters) whose first 25 epochs agree to within 1 loss unit and whose
   final values still differ: no predictor of (hyperparameters, prefix) can tell them apart, so
   the spread of their final values is a floor under any predictor's error.

    .venv/bin/python benchmarks/mlpf_error_budget.py [--seeds 0-4]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hpoq.cli._common import parse_seeds  # noqa: E402
from hpoq.curves.shared import load_shared  # noqa: E402
from hpoq.predict.evaluate import evaluate_predictor, grouped_split, hp_groups, known_epochs  # noqa: E402

PLATEAU = 525.0  # MLPF's collapse plateau sits at 533-534; runs above 525 have left the healthy range
PREDICTORS = ("default", "svr")


def restart_epochs(curve: np.ndarray, tol: float = 0.1, jump: float = 0.5) -> list[int]:
    """Epochs j at which a (minimised) curve starts over: it jumps by at least ``jump`` x its
    improvement so far to within ``tol`` x that improvement of its first value, and the next
    epoch matches its second value as closely."""
    c = np.asarray(curve, float)
    out: list[int] = []
    for j in range(2, len(c)):
        drop = c[0] - np.min(c[(out[-1] if out else 0) : j])
        if drop <= 0 or abs(c[j] - c[0]) > tol * drop or abs(c[j] - c[j - 1]) < jump * drop:
            continue
        if j + 1 < len(c) and abs(c[j + 1] - c[1]) > tol * drop:
            continue
        out.append(j)
    return out


def kinds(table, e: int) -> np.ndarray:
    v = table.minimized()
    y, last = v[:, -1], v[:, e - 1]
    lr = np.array([float(c.get("lr", np.nan)) for c in table.configs])
    later = np.array([any(j >= e for j in restart_epochs(row)) for row in v])
    out = np.full(len(y), "other", dtype=object)
    out[(last >= PLATEAU) & (y >= PLATEAU)] = "plateau"
    out[(last >= PLATEAU) & (y < PLATEAU)] = "recovers"
    out[(last < PLATEAU) & (y >= PLATEAU)] = "collapses"
    for label, rows in (("restarts later", later), ("tiny lr", lr < 2e-5), ("high lr", lr > 0.01)):
        out[(out == "other") & rows] = label
    return out


def row_losses(result: dict) -> dict[int, float]:
    """Each test row's squared error summed over the seeds, over the seeds' summed total sum of squares
    (so the values add up to 1 - R2 pooled over the seeds)."""
    sse: dict[int, float] = {}
    sst = 0.0
    for p in result["predictions"]:
        sst += float(((p["y"] - p["y"].mean()) ** 2).sum())
        for i, err in zip(p["test"], (p["mean"] - p["y"]) ** 2):
            sse[int(i)] = sse.get(int(i), 0.0) + float(err)
    return {i: s / sst for i, s in sse.items()}


def twin_groups(table, e: int) -> list[np.ndarray]:
    """Rows with the same hyperparameters and (within 1.0 per epoch) the same first ``e`` epochs:
    the same input to any predictor of (hyperparameters, prefix), whose best answer is their mean."""
    v = table.minimized()
    groups = hp_groups(table.configs)
    twins = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        for i in rows:
            mates = rows[np.abs(v[rows, :e] - v[i, :e]).max(axis=1) <= 1.0]
            if len(mates) > 1 and mates[0] == i:
                twins.append(mates)
    return twins


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-4")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    table = load_shared("mlpf")
    v = table.minimized()
    y = v[:, -1]

    print(
        f"MLPF table ({table.n_rows} rows, {table.n_epochs} epochs), grouped 80/20 splits, seeds {args.seeds}, "
        "target = last epoch\n"
    )
    fractions = (0.25, 0.3, 0.35, 0.4, 0.5)
    at25 = {}  # the 25% results, with predictions, for the error budget below
    print(
        "| predictor | " + " | ".join(f"R2 @{f:g} ({known_epochs(f, table.n_epochs)} epochs)" for f in fractions) + " |"
    )
    print("|---" * (1 + len(fractions)) + "|")
    for name in PREDICTORS:
        r2 = []
        for f in fractions:
            res = evaluate_predictor(table, name, f, seeds=seeds, return_predictions=f == 0.25)
            if f == 0.25:
                at25[name] = res
            r2.append(res["r2"])
        print(f"| {name} | " + " | ".join(f"{x:.4f}" for x in r2) + " |")

    e = known_epochs(0.25, table.n_epochs)
    kind = kinds(table, e)
    names = sorted(set(kind.tolist()))
    by_row = {name: row_losses(at25[name]) for name in PREDICTORS}
    by_kind = {
        name: {k: sum(x for i, x in rows.items() if kind[i] == k) for k in names} for name, rows in by_row.items()
    }
    print(f"\nLoss of R2 by kind of run at 25% known ({e} epochs); the losses add up to 1 - R2\n")
    print(
        "| kind | rows in table | "
        + " | ".join(f"{n} R2 loss" for n in PREDICTORS)
        + " | default: its three costliest rows (R2 loss) |"
    )
    print("|---" * (3 + len(PREDICTORS)) + "|")
    for k in sorted(names, key=lambda k: -by_kind["default"][k]):
        top = sorted((i for i in by_row["default"] if kind[i] == k), key=lambda i: -by_row["default"][i])[:3]
        print(
            f"| {k} | {int((kind == k).sum())} | "
            + " | ".join(f"{by_kind[n][k]:.4f}" for n in PREDICTORS)
            + " | "
            + ", ".join(f"{i} ({by_row['default'][i]:.4f})" for i in top)
            + " |"
        )
    print(f"| total (1 - R2) | {table.n_rows} | " + " | ".join(f"{1 - at25[n]['r2']:.4f}" for n in PREDICTORS) + " | |")

    twins = twin_groups(table, e)
    floor, sst = 0.0, 0.0
    for seed in seeds:
        test = grouped_split(table.configs, seed)[1]
        sst += float(((y[test] - y[test].mean()) ** 2).sum())
        floor += sum(float(((y[m] - y[m].mean()) ** 2).sum()) for m in twins if m[0] in set(test.tolist()))
    print(
        f"\nRows that are the same input to any predictor (same hyperparameters, first {e} epochs within 1.0) "
        "but end more than 10 apart\n"
    )
    print("| rows | lr | final values |")
    print("|---|---|---|")
    for m in twins:
        if np.ptp(y[m]) > 10:
            print(
                f"| {', '.join(map(str, m))} | {table.configs[m[0]]['lr']:.2e} | "
                f"{', '.join(f'{x:.1f}' for x in y[m])} |"
            )
    print(
        f"\nFloor on the R2 loss of any predictor of (hyperparameters, {e}-epoch prefix) from these twins alone: "
        f"{floor / sst:.4f} (the ceiling on R2 is at most {1 - floor / sst:.4f})."
    )
    n_restart = sum(1 for row in v if restart_epochs(row))
    print(
        f"\n{n_restart} of {table.n_rows} curves start over at least once (a restarted run logged as one curve); "
        f"{int((kind == 'restarts later').sum())} of them only after epoch {e} and off the plateau."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
