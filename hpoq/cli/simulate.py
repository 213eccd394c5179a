"""``hpoq simulate``: replay an algorithm on a recorded curve table (simulated clock, W workers)."""

from __future__ import annotations

import os

from hpoq.errors import ConfigError

COMMAND = "simulate"
HELP = "replay a search algorithm on a recorded learning-curve table (simulated clock and workers)"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--table",
        required=True,
        help="curve table CSV(.gz), or a shared table name (e.g. mlpf) when hpoq.curves.shared has it",
    )
    parser.add_argument(
        "--metric", default=None, help="metric name: columns <metric>_<epoch> (a shared table has a default)"
    )
    parser.add_argument(
        "--mode", choices=["min", "max"], default=None, help="metric direction (default min, or the shared table's)"
    )
    parser.add_argument(
        "--time-column", default=None, help="per-row seconds-per-epoch column (default: every epoch costs 1)"
    )
    parser.add_argument(
        "--algorithm", required=True, help="search algorithm (hyperband, swift, asha, random, topk-1epoch, default)"
    )
    parser.add_argument(
        "--predictor", default=None, help="predictor name for predictor-driven algorithms (e.g. svr, qsvr)"
    )
    parser.add_argument(
        "--predictor-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="predictor parameter (repeatable), e.g. features=curve",
    )
    parser.add_argument(
        "--R", type=int, default=None, help="maximum epochs per configuration (default: the table's epochs)"
    )
    parser.add_argument("--eta", type=int, default=2, help="discard rate (integer >= 2, default 2)")
    parser.add_argument("--workers", type=int, default=1, help="simulated workers (trial groups), default 1")
    parser.add_argument("--seeds", default="0", help="seeds: 0-9, 3 or 0,2,5 (default 0)")
    parser.add_argument(
        "--warm-fraction",
        default="0",
        metavar="F",
        help="set aside a seeded fraction F in [0,1) of the distinct configurations as an earlier study's curve store",
    )
    parser.add_argument(
        "--warm-curves", default=None, metavar="FILE", help="curve store of earlier studies (HDF5 store or CSV table)"
    )
    parser.add_argument(
        "--dedupe",
        action="store_true",
        help="skip a drawn configuration whose hyperparameters repeat an earlier draw "
        "(every algorithm alike; the draw still counts); off by default",
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="algorithm parameter (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (runs, summary, table_best)")
    parser.add_argument("--trace", action="store_true", help="include each run's best-so-far trace in the JSON")


def _load_shared(name: str, metric, mode):
    """The shared table ``name`` of :mod:`hpoq.curves.shared`, or None if there is no such name."""
    try:
        from hpoq.curves.shared import SHARED_TABLES, load_shared
    except ImportError:
        return None
    spec = SHARED_TABLES.get(name)
    if spec is None:
        return None
    if metric is not None and metric != spec.metric:
        raise ConfigError(f"shared table {name!r} has metric {spec.metric!r}, not {metric!r}")
    if mode is not None and mode != spec.mode:
        raise ConfigError(f"shared table {name!r} has mode {spec.mode!r}, not {mode!r}")
    return load_shared(name)


def load_curves(path_or_name: str, metric, mode, time_column=None):
    """A CurveTable from a CSV path, an HDF5 curve store or a shared-table name."""
    from hpoq.cli._common import check_time_column

    if not os.path.exists(path_or_name):
        table = _load_shared(path_or_name, metric, mode)
        if table is not None:
            check_time_column(time_column, path_or_name, "a shared table")
            return table
    if path_or_name.endswith((".h5", ".hdf5")):
        from hpoq.curves.store import read_store

        check_time_column(time_column, path_or_name, "an HDF5 curve store (its per-row times are used as stored)")
        return read_store(path_or_name)
    if metric is None:
        raise ConfigError(f"--metric is required for the table {path_or_name!r} (not a file or shared table name?)")
    from hpoq.curves.table import load_table

    return load_table(path_or_name, metric, mode or "min", time_column=time_column)


def run(args) -> int:
    from hpoq.cli._common import parse_fraction, parse_params, parse_seeds, print_json
    from hpoq.schedulers import scheduler_parameters
    from hpoq.schedulers.brackets import check_r_eta
    from hpoq.simulate import simulate_run, summarize, table_best

    seeds = parse_seeds(args.seeds)
    warm_fraction = parse_fraction(args.warm_fraction, "--warm-fraction", low_open=False, high_open=True)
    params = parse_params(args.param)
    predictor_params = parse_params(args.predictor_param)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    table = load_curves(args.table, args.metric, args.mode, args.time_column)
    R, eta = check_r_eta(table.n_epochs if args.R is None else args.R, args.eta)
    if table.n_epochs < R:
        raise ConfigError(f"curve table {args.table!r} has {table.n_epochs} epochs, fewer than R = {R}")
    warm_curves = None
    if args.warm_curves:
        warm_curves = load_curves(args.warm_curves, args.metric or table.metric, args.mode or table.mode)
    # validate the algorithm and its parameters before running anything
    scheduler_parameters(args.algorithm)
    options = dict(workers=args.workers, predictor=args.predictor, predictor_params=predictor_params or None)
    options.update(params=params, warm_fraction=warm_fraction, warm_curves=warm_curves, dedupe=args.dedupe)
    runs = [simulate_run(table, args.algorithm, seed, R, eta, **options) for seed in seeds]
    if not args.trace:
        for r in runs:
            r.pop("trace", None)
    out = {
        "algorithm": args.algorithm,
        "table": table.source or args.table,
        "metric": table.metric,
        "mode": table.mode,
        "R": R,
        "eta": eta,
        "workers": args.workers,
        "predictor": args.predictor,
        "params": params,
        "warm_fraction": warm_fraction,
        "warm_curves": args.warm_curves,
        "dedupe": bool(args.dedupe),
        "runs": runs,
        "summary": summarize(runs),
        "table_best": table_best(table, R)["value"],
    }
    if args.json:
        print_json(out)
    else:
        _print_summary(out, len(seeds))
    return 0


def _print_summary(out: dict, seeds: int) -> None:
    s, where = out["summary"], f"R={out['R']}, eta={out['eta']}, workers={out['workers']}, seeds={seeds}"
    print(f"{out['algorithm']} on {out['table']} ({where})")
    print(
        f"  epochs {s['epochs']:.1f}  configs {s['configs']:.1f}  best_final {s['best_final']}  "
        f"makespan {s['makespan']:.1f}  utilization {s['utilization']:.3f}  pruned {s['pruned']:.1f}"
    )
    print(f"  table best at R: {out['table_best']}")
