"""``hpoq generate-data``: write a synthetic MLPF dataset (HDF5 shards + dataset.json)."""

from __future__ import annotations

COMMAND = "generate-data"
HELP = "generate synthetic CLIC-like particle-flow events as HDF5 shards with a dataset.json manifest"


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output directory (train/ and val/ shards, dataset.json)")
    parser.add_argument("--events", type=int, required=True, help="number of events in total (train + val)")
    parser.add_argument("--seed", type=int, required=True, help="master seed; event j uses SeedSequence([seed, j])")
    parser.add_argument("--shards", type=int, default=1, help="number of train shards (default 1)")
    parser.add_argument("--preset", default="clic", help="generator preset: easy | clic | dense (default clic)")
    parser.add_argument(
        "--val-fraction", type=float, default=0.2, help="fraction of events in the val split (default 0.2)"
    )
    parser.add_argument("--compression", default="lzf", help="lzf | gzip | none (default lzf)")
    parser.add_argument("--workers", type=int, default=1, help="processes, one shard each at a time (default 1)")
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="override one generator knob (repeatable), e.g. --param pu_mean=10",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")


def run(args) -> int:
    from hpoq.cli._common import check_dataset_out, parse_params, print_json
    from hpoq.mlpf.writer import generate_dataset
    from hpoq.writable import check_writable_dir

    check_dataset_out(args.out)
    check_writable_dir(args.out, "--out")

    manifest = generate_dataset(
        args.out,
        args.events,
        args.seed,
        preset=args.preset,
        shards=args.shards,
        val_fraction=args.val_fraction,
        compression=args.compression,
        workers=args.workers,
        overwrite=args.overwrite,
        **parse_params(args.param),
    )
    print_json(
        {
            "out": str(args.out),
            "content_hash": manifest["content_hash"],
            "splits": {
                k: {"n_events": v["n_events"], "n_elements": v["n_elements"], "shards": len(v["shards"])}
                for k, v in manifest["splits"].items()
            },
        }
    )
    return 0
