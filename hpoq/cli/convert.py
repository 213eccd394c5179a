"""``hpoq convert SRC --out OUT``: write a learning-curve source as a CSV table or an HDF5 store.

SRC is a CSV/CSV.gz table (``--metric`` required), the CIFAR-10 JSON, an LCBench npz, the
TaskSet npz, an HDF5 curve store, the name of a shared table (``mlpf``, ``lcbench``, ...), or a
generated stress table, ``stress<level>`` (:mod:`hpoq.curves.stress`: ``stress0`` never crosses,
``stress1`` has late bloomers with inverted early ranks).
OUT ending in ``.csv`` / ``.csv.gz`` gets the table form, ``.h5`` / ``.hdf5`` the HDF5 store.
"""

from __future__ import annotations

import os

from hpoq.errors import ConfigError

COMMAND = "convert"
HELP = "convert a curve source (CSV, npz, JSON, HDF5 or a shared table name) to a CSV table or an HDF5 store"


def add_arguments(parser) -> None:
    parser.add_argument(
        "src", help="source file, or a shared table name (mlpf, mnist6, cifar10, lcbench, taskset, ...)"
    )
    parser.add_argument("--out", required=True, help="output .csv, .csv.gz, .h5 or .hdf5")
    parser.add_argument("--metric", help="metric name (required for CSV sources; npz/JSON have defaults)")
    parser.add_argument("--mode", choices=["min", "max"], help="direction of the metric (default: the source's)")
    parser.add_argument("--task", help="TaskSet task name or index, or 'all' to pool the 12 tasks")
    parser.add_argument("--configs", help="LCBench configs.csv.gz (default: next to the npz)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args) -> int:
    from hpoq.cli._common import print_json
    from hpoq.curves.convert import convert_source
    from hpoq.curves.shared import SHARED_TABLES, load_shared
    from hpoq.curves.store import write_store
    from hpoq.curves.table import write_table

    out = args.out
    if not out.endswith((".csv", ".csv.gz", ".h5", ".hdf5")):
        raise ConfigError(f"--out {out!r}: expected a .csv, .csv.gz, .h5 or .hdf5 file name")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ConfigError(f"--out {out!r}: directory {out_dir!r} does not exist")
    from hpoq.cli._common import check_out_file
    from hpoq.writable import check_writable_dir

    shared = not os.path.exists(args.src) and args.src in SHARED_TABLES
    check_out_file(out, [str(SHARED_TABLES[args.src].path) if shared else args.src, args.configs], args.overwrite)
    check_writable_dir(out_dir, "--out")
    if shared:
        options = {"task": args.task} if args.task is not None and args.src == "taskset" else {}
        table = load_shared(args.src, **options)
        if args.metric is not None and args.metric != table.metric:
            raise ConfigError(
                f"shared table {args.src!r} has metric {table.metric!r}; convert the source file for another metric"
            )
    elif not os.path.exists(args.src) and args.src.startswith("stress"):
        from hpoq.curves.stress import load_stress

        table = load_stress(args.src)
    else:
        table = convert_source(args.src, metric=args.metric, mode=args.mode, task=args.task, configs=args.configs)
    if args.mode is not None:
        table.mode = args.mode
    if out.endswith((".h5", ".hdf5")):
        write_store(out, table)
    else:
        write_table(out, table)
    summary = {
        "out": os.path.abspath(out),
        "rows": table.n_rows,
        "epochs": table.n_epochs,
        "metric": table.metric,
        "mode": table.mode,
        "dropped": table.dropped,
        "hp_names": table.hp_names,
    }
    if args.json:
        print_json(summary)
    else:
        print(
            f"wrote {out}: {table.n_rows} rows x {table.n_epochs} epochs of {table.metric} ({table.mode}), "
            f"{table.dropped} dropped"
        )
    return 0
