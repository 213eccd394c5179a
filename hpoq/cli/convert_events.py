"""``hpoq convert-events SRC... --out DIR``: upstream MLPF's CLIC datasets -> hpoq HDF5 shards + dataset.json.

SRC: upstream parquet files (or directories of them), or a built tfds dataset directory
(ArrayRecord; needs tensorflow_datasets). See :mod:`hpoq.mlpf.upstream_data` and the README
(MLPF section) for where to download the datasets.
"""

from __future__ import annotations

COMMAND = "convert-events"
HELP = "convert upstream MLPF CLIC datasets (parquet, or tfds ArrayRecord) to hpoq HDF5 shards with a dataset.json"


def add_arguments(parser) -> None:
    parser.add_argument(
        "src", nargs="+", help="upstream .parquet files, directories of them, or a tfds dataset directory"
    )
    parser.add_argument("--out", required=True, help="output directory (train/ and val/ shards, dataset.json)")
    parser.add_argument(
        "--format", default="auto", help="auto | parquet | tfds (default auto: tfds where dataset_info.json is)"
    )
    parser.add_argument("--split", default="train", help="tfds input: the split to read (default train)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="last fraction of each input's events that go to the val split (default 0.1)",
    )
    parser.add_argument("--compression", default="lzf", help="lzf | gzip | none (default lzf)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")


def run(args) -> int:
    from hpoq.cli._common import check_dataset_out, print_json
    from hpoq.mlpf.upstream_data import convert_events, summary
    from hpoq.writable import check_writable_dir

    check_dataset_out(args.out)
    check_writable_dir(args.out, "--out")

    manifest = convert_events(
        args.src,
        args.out,
        fmt=args.format,
        split=args.split,
        val_fraction=args.val_fraction,
        compression=args.compression,
        overwrite=args.overwrite,
    )
    print_json({"out": str(args.out), **summary(manifest)})
    return 0
