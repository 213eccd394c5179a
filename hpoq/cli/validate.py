"""``hpoq validate``: check a study file (keys, types, names, data files) without running it."""

from __future__ import annotations

COMMAND = "validate"
HELP = "check a study file without running it (exit 0 if valid, 2 with the first problem otherwise)"


def add_arguments(parser) -> None:
    parser.add_argument("study", help="study file (YAML)")
    parser.add_argument(
        "--ranks",
        type=int,
        default=None,
        metavar="N",
        help="also check that N MPI ranks can form at least one trial group",
    )
    parser.add_argument(
        "--build",
        action="store_true",
        help="also build the scheduler and the trainer as the ranks would (loads the table, "
        "warm curves and the trainer's data; slower)",
    )


def run(args) -> int:
    from hpoq.cli._common import print_json
    from hpoq.errors import ConfigError
    from hpoq.study.build import assemble, load_replay_table, trainer_metric
    from hpoq.study.spec import load_study

    spec = load_study(args.study)
    if args.ranks is not None:
        from hpoq.runtime.groups import GroupLayout

        GroupLayout(args.ranks, spec.ranks_per_trial)
    if args.build:
        from hpoq.trainers import make_trainer

        assemble(spec)
        try:
            make_trainer(spec.trainer.name, spec.trainer.params)
        except ConfigError as exc:
            raise ConfigError(f"trainer: {exc}") from None
        except Exception as exc:  # noqa: BLE001 -- a plugin's own error, reported in one line
            raise ConfigError(f"trainer {spec.trainer.name!r} cannot be built: {type(exc).__name__}: {exc}") from None
    elif spec.space == "table":
        load_replay_table(spec)  # table readable, R within its epochs
    metric, mode = trainer_metric(spec)
    print_json(
        {
            "valid": True,
            "study": spec.name,
            "algorithm": spec.algorithm.to_dict(),
            "trainer": spec.trainer.name,
            "metric": metric,
            "mode": mode,
            "ranks_per_trial": spec.ranks_per_trial,
            "out": spec.out,
        }
    )
    return 0
