"""Optuna's pruners as the peer: the shared curve tables replayed through Optuna, paired with ours (issue 10).

Each Optuna trial takes the next configuration of the same draw sequence our simulator uses for
the seed (:func:`hpoq.schedulers.sampling.table_sampler_for`: sampler seed ``derive_seed(seed,
"rows")``, the same warm split), and reports its minimised curve epoch by epoch with
``trial.report(value, epoch)``; ``trial.should_prune()`` after every epoch stops it, as in
Optuna's own examples. As many trials as Hyperband draws configurations at the same R and eta
(163 at R = 100, eta = 2), one after the other (one worker). Epochs are the epochs reported
(a pruned trial trained through the epoch it was pruned at); the answer is the completed trial
with the best value at R (Optuna's ``study.best_trial``), so epochs and quality are on the scale
of ``hpoq simulate`` and go into the same table as our algorithms.

Warm (``warm_fraction``): the store of the "earlier study" is added to the Optuna study as
completed trials with their full curves as intermediate values (``study.add_trials``), as an
Optuna user would carry an earlier study over; MedianPruner, PatientPruner and WilcoxonPruner
use them, the SH/Hyperband pruners' rungs do not (they keep rung data in system attributes).

Pruner settings (Optuna's defaults and documented usage, eta = 2 where the pruner has one):
``HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=2)``,
``SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)``, ``MedianPruner()``,
``WilcoxonPruner()``, ``PatientPruner(MedianPruner(), patience=1)`` (the documented example).

Usage: ``benchmarks/peers.py [--seeds 0-19,20-59] [--tables mlpf,...] [--out DIR] [--name peers]``: the
protocol of :mod:`benchmarks.hpo_replay` (same columns, paired with the same Hyperband runs) for the five
pruners, written to ``OUT/NAME.md`` and ``OUT/NAME.json``; then ``benchmarks/peers.py --combine
OUT/hpo_replay_seeds0-19.json,OUT/hpo_replay_seeds20-59.json OUT/peers*.json --out OUT/peers.md`` (our summaries
comma-separated, one per seed set) puts our rows and the pruners' in one table per
(table, mode, seed set) and checks the peer target. Needs the ``bench`` extra (optuna).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpoq.schedulers.brackets import hyperband_budget  # noqa: E402
from hpoq.schedulers.sampling import table_sampler_for  # noqa: E402

#: column name -> pruner factory (R -> pruner)
PRUNERS = {
    "optuna-hyperband": lambda R: _optuna().pruners.HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=2),
    "optuna-sha": lambda R: _optuna().pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
    "optuna-median": lambda R: _optuna().pruners.MedianPruner(),
    "optuna-wilcoxon": lambda R: _optuna().pruners.WilcoxonPruner(),
    "optuna-patient": lambda R: _optuna().pruners.PatientPruner(_optuna().pruners.MedianPruner(), patience=1),
}


def _optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def warm_trials(warm_table, R: int) -> list:
    """The warm store as completed Optuna trials (full curve as intermediate values, value at R)."""
    optuna = _optuna()
    curves = warm_table.minimized()[:, :R]
    return [
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=float(c[R - 1]),
            intermediate_values={e + 1: float(v) for e, v in enumerate(c)},
        )
        for c in curves
        if np.isfinite(c).all()
    ]


def optuna_run(table, pruner: str, seed: int, R: int, eta: int = 2, warm_fraction: float = 0.0) -> dict:
    """One seed of an Optuna pruner on ``table``; returns a run entry shaped like ``simulate --json``'s.

    Keys: ``seed``, ``epochs`` (epochs reported), ``configs`` (trials), ``best_final`` (value at R of
    the best completed trial, table direction), ``best_row``, ``makespan`` (= epochs: one worker),
    ``utilization`` 1.0, ``pruned`` (trials pruned), ``warm_curves``.
    """
    optuna = _optuna()
    if pruner not in PRUNERS:
        raise ValueError(f"unknown pruner {pruner!r}; available: {', '.join(PRUNERS)}")
    sampler, warm = table_sampler_for(table, seed, warm_fraction)
    study = optuna.create_study(
        direction="minimize",
        pruner=PRUNERS[pruner](R),
        sampler=optuna.samplers.RandomSampler(seed=seed),
        study_name=f"replay-{seed}",
    )
    if warm is not None:
        study.add_trials(warm_trials(warm, R))
    curves = table.minimized()
    n_trials = hyperband_budget(R, eta)[0]
    epochs = pruned = 0
    best_value, best_row = np.inf, None
    for _ in range(n_trials):
        row = int(sampler.sample()["_row"])
        trial = study.ask()
        for epoch in range(1, R + 1):
            trial.report(float(curves[row, epoch - 1]), epoch)
            epochs += 1
            if epoch < R and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned += 1
                break
        else:
            final = float(curves[row, R - 1])
            study.tell(trial, final)
            if final < best_value:  # first of equal values wins, as study.best_trial
                best_value, best_row = final, row
    return {
        "seed": int(seed),
        "epochs": int(epochs),
        "configs": int(n_trials),
        "best_final": None if best_row is None else float(table.curves[best_row, R - 1]),
        "best_row": best_row,
        "makespan": float(epochs),
        "utilization": 1.0,
        "pruned": int(pruned),
        "warm_curves": 0 if warm is None else int(warm.n_rows),
    }


def merge_summaries(summaries: list[dict]) -> dict:
    """One hpo_replay.py JSON summary from several runs of other seed sets (``--seeds 0-19`` and ``20-59``)."""
    out: dict = {"tables": {}}
    for summary in summaries:
        for name, modes in summary.get("tables", {}).items():
            for mode, sets in modes.items():
                if mode in ("cold", "warm"):
                    out["tables"].setdefault(name, {}).setdefault(mode, {}).update(sets)
    return out


def combined_tables(ours: dict, peers: list[dict]) -> tuple[str, list]:
    """Markdown: per (table, mode, seed set) our rows and the pruners' rows in one table (all paired with the
    same Hyperband runs), and the peer target: no pruner with fewer epochs at equal-or-better quality than
    ``default``. ``ours`` / ``peers``: the JSON summaries of hpo_replay.py and of peer runs."""
    from benchmarks.hpo_replay import TOLERANCE, fmt_value
    from hpoq.curves.shared import load_shared

    lines, checks = [], []
    head = (
        "| algorithm | epochs | saving vs HB | best_final mean ± std | equal quality | regret mean | regret worst "
        "| seeds worse |"
    )
    cells: dict = {}  # (table, mode, seed set) -> our rows, then every pruner's
    for peer in peers:
        for name, modes in peer["tables"].items():
            for mode, sets in modes.items():
                for label, cell in sets.items() if mode in ("cold", "warm") else ():
                    rows = cells.setdefault(
                        (name, mode, label),
                        dict(ours.get("tables", {}).get(name, {}).get(mode, {}).get(label, {}).get("rows", {})),
                    )
                    rows.update({a: r for a, r in cell["rows"].items() if a.startswith("optuna-")})
    for (name, mode, label), rows in cells.items():
        table = load_shared(name)
        lines += [
            f"### {name}, {mode}, seeds {label} (equal quality: within {TOLERANCE} x Hyperband's seed std)",
            "",
            head,
            "|---|---|---|---|---|---|---|---|",
        ]
        for alg, r in rows.items():
            no = f" ({r['no_answer']} no answer)" if r.get("no_answer") else ""
            value = fmt_value(table, r["quality"], r["std"])
            lines.append(
                f"| {alg} | {r['epochs']:.0f} | {100 * r['saving']:.1f}% | {value} | "
                f"{'yes' if r['equal'] else 'NO'} | {r['regret_mean']:+.4f} | "
                f"{r['regret_worst']:+.4f} | {r['worse']}/{r['seeds']}{no} |"
            )
        lines.append("")
        d = rows.get("default")
        for alg, r in rows.items():
            if alg.startswith("optuna-") and d is not None:
                beats = r["epochs"] < d["epochs"] and r["quality"] <= d["quality"] + 1e-12
                checks.append(
                    (
                        f"{name} {mode} seeds {label}: {alg} not fewer epochs at equal-or-better quality than default",
                        not beats,
                        f"{r['epochs']:.0f} vs {d['epochs']:.0f} epochs; quality gap "
                        f"{r['quality'] - d['quality']:+.4g} (minimised)",
                    )
                )
    lines += ["## Peer target", "", "| target | met | measured |", "|---|---|---|"]
    lines += [f"| {label} | {'yes' if ok else 'NO'} | {detail} |" for label, ok, detail in checks]
    return "\n".join(lines) + "\n", checks


def main(argv=None) -> int:
    """Run the pruners (with hyperband as the pairing reference) through hpo_replay.py's protocol, or with
    ``--combine OURS.json PEERS.json... --out FILE.md`` merge our rows and theirs into one table per cell."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--combine"]:
        import json

        out = Path(args[args.index("--out") + 1])
        files = [a for a in args[1 : args.index("--out")]]
        ours = merge_summaries([json.loads(Path(f).read_text()) for f in files[0].split(",")])
        peers = [json.loads(Path(f).read_text()) for f in files[1:]]
        text, _ = combined_tables(ours, peers)
        out.write_text(
            "# Optuna's pruners beside ours, fair protocol (benchmarks/peers.py)\n\n"
            + __doc__.split("\n\n")[1]
            + "\n\n"
            + text
        )
        print(text)
        return 0
    from benchmarks.hpo_replay import main as replay_main

    if not any(a.startswith("--algorithms") for a in args):
        args += ["--algorithms", ",".join(["hyperband"] + list(PRUNERS))]
    if not any(a.startswith("--name") for a in args):
        args += ["--name", "peers"]
    return replay_main(args + ["--no-makespan"])


if __name__ == "__main__":
    sys.exit(main())
