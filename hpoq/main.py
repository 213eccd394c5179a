"""The one CLI: ``python -m hpoq.main SUBCOMMAND ...`` (also the ``hpoq`` console script).

Each subcommand lives in its own module under :mod:`hpoq.cli` and defines ``COMMAND`` (its
name), ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. This module only
parses and dispatches. Heavy imports (torch, dwave, mpi4py) belong inside ``run``.

Under MPI: ``mpiexec -n N python -m hpoq.main run STUDY.yaml`` or ``srun python -m hpoq.main run ...``;
:mod:`hpoq.runtime.mpi_guard` makes a failure on any rank abort the whole job, as ``-m mpi4py`` does.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys

from hpoq import __version__
from hpoq.errors import ConfigError
from hpoq.runtime import mpi_guard


def _command_modules():
    import hpoq.cli as cli_pkg

    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"hpoq.cli.{info.name}")
        if hasattr(module, "COMMAND"):
            yield module


class OneLineParser(argparse.ArgumentParser):
    """argparse, except that a bad command line is one ``hpoq: error:`` line (exit 2), not a usage block."""

    def error(self, message: str):
        self.exit(2, f"hpoq: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hpoq",
        description="Hyperparameter optimisation with learning-curve prediction (Swift-Hyperband, SVR, QUBO-SVR).",
    )
    parser.add_argument("--version", action="version", version=f"hpoq {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of hpoq's own loggers (default WARNING); other libraries stay at WARNING",
    )
    parser.add_argument(
        "--log-level-all",
        action="store_true",
        help="apply --log-level to every library's loggers too (token-like values are masked either way)",
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for module in _command_modules():
        p = sub.add_parser(module.COMMAND, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, turn bad input into one line and exit 2; every line written passes the secret mask."""
    from hpoq.logsetup import mask_std_streams

    before = mask_std_streams()
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = before


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from hpoq.logsetup import configure_logging

    configure_logging(getattr(args, "log_level", "WARNING"), getattr(args, "log_level_all", False))
    try:
        mpi_guard.install(args)  # abort-on-failure and the srun --mpi check, for MPI commands only
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not at interpreter exit
        return code
    except ConfigError as exc:
        print(f"hpoq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpoq: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except OSError as exc:
        if exc.errno not in _PLACE_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"hpoq: error: cannot write {where}{exc.strerror}", file=sys.stderr)
        return 2


# a place the user gave cannot be written (read-only, immutable, full, not a directory): one line, exit 2
_PLACE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR)


def _closed_pipe() -> int:
    """The reader of stdout went away (``hpoq status DIR | head -1``): exit quietly, as SIGPIPE would (141)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout again at exit; let that go nowhere
    except (OSError, ValueError):
        pass
    return 141


def console_main() -> None:
    from hpoq.logsetup import mask_std_streams

    mask_std_streams()  # for the life of the process: a traceback at exit is masked too
    sys.exit(main())


if __name__ == "__main__":
    console_main()
