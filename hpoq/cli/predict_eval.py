"""``hpoq predict-eval``: score a predictor on a curve table (protocol in :mod:`hpoq.predict.evaluate`).

Prints one JSON object with ``--json`` (keys r2, mae, spearman, r2_min, n, epochs, known_epochs,
fit_seconds, ...; the format is relied on), else a short summary line.
"""

from __future__ import annotations

import os

COMMAND = "predict-eval"
HELP = "evaluate a performance predictor on a curve table (grouped 80/20 splits over seeds)"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--table",
        required=True,
        help="curve table (.csv/.csv.gz), HDF5 curve store (.h5), or a shared table name (mlpf, lcbench, ...)",
    )
    parser.add_argument("--metric", help="metric columns <metric>_<epoch> (required for CSV tables)")
    parser.add_argument(
        "--mode", choices=["min", "max"], help="direction of the metric (default min; shared tables know theirs)"
    )
    parser.add_argument("--known", required=True, help="known fraction F of the curve, in (0, 1)")
    parser.add_argument("--predictor", default="default", help="predictor name (default: default)")
    parser.add_argument("--seeds", default="0-4", help="split seeds, e.g. 0-4 or 0,3 (default 0-4)")
    parser.add_argument("--target-epoch", type=int, default=None, help="epoch to predict (default: the last)")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="predictor parameter (repeatable)")
    parser.add_argument("--time-column", help="per-row seconds-per-epoch column (ignored by predictors)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def load_any_table(src: str, metric: str | None, mode: str | None, time_column: str | None = None):
    """A CSV table, an HDF5 store or a shared table name -> CurveTable (ConfigError on bad input)."""
    from hpoq.cli._common import check_time_column
    from hpoq.curves.shared import SHARED_TABLES, load_shared
    from hpoq.curves.table import load_table
    from hpoq.errors import ConfigError

    if not os.path.exists(src) and src in SHARED_TABLES:
        check_time_column(time_column, src, "a shared table")
        table = load_shared(src)
        if metric is not None and metric != table.metric:
            raise ConfigError(f"shared table {src!r} has metric {table.metric!r}, not {metric!r}")
        if mode is not None and mode != table.mode:
            raise ConfigError(f"shared table {src!r} has mode {table.mode!r}, not {mode!r}")
        return table
    if src.endswith((".h5", ".hdf5")):
        from hpoq.curves.store import read_store

        check_time_column(time_column, src, "an HDF5 curve store (its per-row times are used as stored)")
        table = read_store(src)
        if metric is not None and metric != table.metric:
            raise ConfigError(f"curve store {src!r} holds metric {table.metric!r}, not {metric!r}")
        if table.lengths is not None and (table.lengths < table.n_epochs).any():
            full = table.lengths >= table.n_epochs
            dropped = int((~full).sum())
            table = table.subset(full.nonzero()[0])
            table.dropped = dropped
        return table
    if metric is None:
        if not os.path.exists(src):
            raise ConfigError(f"curve table {src!r} does not exist")
        raise ConfigError("--metric is required for a CSV curve table")
    return load_table(src, metric, mode or "min", time_column=time_column)


def run(args) -> int:
    from hpoq.cli._common import parse_fraction, parse_params, parse_seeds, print_json
    from hpoq.predict import predictor_class
    from hpoq.predict.evaluate import evaluate_predictor

    known = parse_fraction(args.known, "--known")
    seeds = parse_seeds(args.seeds)
    params = parse_params(args.param)
    predictor_class(args.predictor)
    table = load_any_table(args.table, args.metric, args.mode, args.time_column)
    result = evaluate_predictor(table, args.predictor, known, seeds, params=params, target_epoch=args.target_epoch)
    result["table"] = args.table
    if args.json:
        print_json(result)
    else:
        print(
            f"{args.predictor} on {args.table} ({table.metric}, "
            f"{result['known_epochs']}/{result['epochs']} epochs known, "
            f"n={result['n']}): R2 {result['r2']:.4f} (min {result['r2_min']:.4f}), MAE {result['mae']:.4g}, "
            f"Spearman {result['spearman']:.4f}, fit {result['fit_seconds']:.3f} s"
        )
    return 0
