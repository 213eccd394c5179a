"""The one CLI: ``python -m hpoq.main SUBCOMMAND ...`` (also the ``hpoq`` console script).

Each subcommand lives in its own module under :mod:`hpoq.cli` and defines ``COMMAND`` (its
name), ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. This module only
parses and dispatches. Heavy imports (torch, dwave, mpi4py) belong inside ``run``.

Under MPI: ``mpiexec -n N python -m hpoq.main run STUDY.yaml`` or ``srun python -m hpoq.main run ...``;
:mod:`hpoq.runtime.mpi_guard` makes a failure on any rank abort the whole job, as ``-m mpi4py`` does.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from hpoq import __version__
from hpoq.errors import HpoqError
from hpoq.runtime import mpi_guard


def _command_modules():
    import hpoq.cli as cli_pkg

    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"hpoq.cli.{info.name}")
        if hasattr(module, "COMMAND"):
            yield module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpoq",
        description="Hyperparameter optimisation with learning-curve prediction (Swift-Hyperband, SVR, QUBO-SVR).",
    )
    parser.add_argument("--version", action="version", version=f"hpoq {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default WARNING)",
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for module in _command_modules():
        p = sub.add_parser(module.COMMAND, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "WARNING")
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        mpi_guard.install(args)  # abort-on-failure and the srun --mpi check, for MPI commands only
        return int(args._run(args) or 0)
    except HpoqError as exc:
        print(f"hpoq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpoq: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
