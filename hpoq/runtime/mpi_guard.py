"""What ``python -m mpi4py`` gives an MPI program, built into ``hpoq.main``, plus a launch check for Slurm.

``srun python -m hpoq.main run STUDY.yaml`` (the design card's command) and ``mpiexec -n N python -m
hpoq.main run ...`` work without ``-m mpi4py``:

- **Abort on failure.** When the MPI world has more than one rank, an uncaught exception or a
  KeyboardInterrupt on any rank makes that rank call ``MPI.COMM_WORLD.Abort(status)`` at exit, so
  the launcher ends every rank instead of leaving the others waiting for a message that never
  comes. This is mpi4py's own mechanism (:func:`mpi4py.run.set_abort_status`, the function
  ``python -m mpi4py`` calls), so running under ``python -m mpi4py`` as well changes nothing.
- **One line for bad input.** A non-zero exit status that ``run`` *returns* is one every rank
  returns together (rank 0 told the others to stop): MPI is finalized instead of aborted, so the
  user reads hpoq's one ``hpoq: error:`` line and no ``Abort(2) on node N`` line per rank.
- **Launch check.** A launcher whose process-management interface does not match the MPI library
  (``srun --mpi=none``, or pmix for the PyPI mpich wheel, which speaks PMI2) starts N processes that
  each see an MPI world of size 1: N studies racing on one output directory. When the launcher says
  it started more than one task (``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ``SLURM_STEP_NUM_TASKS``, else
  ``SLURM_NTASKS``) but the world has one rank, hpoq refuses with one line (printed by task 0 only) and
  exit code 2, before anything is written.

Measured with Debian's slurm-wlm 22.05: the mpich wheel works under ``srun --mpi=pmi2`` (or
``MpiDefault=pmi2`` / ``SLURM_MPI_TYPE=pmi2``); a site MPI with mpi4py built against it under
``srun --mpi=pmix``.
"""

from __future__ import annotations

import functools
import os
import sys

from hpoq.errors import ConfigError

MPI_COMMANDS = frozenset({"run"})  # the subcommands that start MPI; the others never import mpi4py

# where launchers record how many processes they started, most specific first
_TASK_COUNT_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")
_TASK_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")


def _first_int(env, names) -> tuple[str, int] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value.isdigit():
            return name, int(value)
    return None


def launch_mismatch(world_size: int, env=None) -> str | None:
    """The one-line complaint when the launcher started more tasks than the MPI world has, else None."""
    env = os.environ if env is None else env
    if world_size != 1:
        return None
    found = _first_int(env, _TASK_COUNT_VARS)
    if found is None or found[1] <= 1:
        return None
    name, tasks = found
    in_slurm = name.startswith("SLURM_")
    mpi_type = env.get("SLURM_MPI_TYPE", "")
    how = f"srun --mpi={mpi_type}" if in_slurm and mpi_type else ("srun" if in_slurm else "the launcher")
    if name == "SLURM_NTASKS" and "SLURM_STEP_ID" not in env:
        return (
            f"the Slurm job has {tasks} tasks ({name}) but this process is not one of them: start hpoq with "
            f"srun inside the job script (srun python -m hpoq.main run ...)"
        )
    return (
        f"{how} started {tasks} tasks ({name}={tasks}) but MPI sees a world of 1 rank in each, so every task "
        f"would run its own study: the launcher's PMI (srun --mpi=none or a wrong type) does not match this "
        f"MPI library. Use srun --mpi=pmi2 with the PyPI mpich wheel (or MpiDefault=pmi2 / "
        f"SLURM_MPI_TYPE=pmi2), srun --mpi=pmix with a site MPI and mpi4py built against it"
    )


def _is_task_zero(env=None) -> bool:
    found = _first_int(os.environ if env is None else env, _TASK_RANK_VARS)
    return found is None or found[1] == 0


def _abort_status(code) -> None:
    from mpi4py.run import set_abort_status

    set_abort_status(code)


def _abort_on_failure(run):
    """``run(args)`` that, on a multi-rank world, turns any failure into ``MPI.COMM_WORLD.Abort`` at exit."""

    @functools.wraps(run)
    def guarded(args):
        try:
            code = run(args)
        except ConfigError:
            _abort_status(2)  # main() prints it and returns 2, the CLI's bad-input status
            raise
        except BaseException as exc:
            _abort_status(exc if isinstance(exc, (SystemExit, KeyboardInterrupt)) else 1)
            raise
        if code:
            _end_together()
        return code

    return guarded


def _end_together() -> None:
    """Finalize MPI: every rank returns an exit status only when all ranks end together.

    That is :func:`hpoq.runtime.launch.run_on_all_ranks`' contract: rank 0 returns once it told
    every other rank to stop (bad input found before any work, a worker that could not build its
    trainer, the end of a study that stopped with status 2), and the other ranks return only on
    that word. ``MPI_Abort`` is then not needed, and it would print one ``Abort(N) on node ...`` line per
    rank after the one line that says what was wrong. A finalized MPI makes the abort status that
    ``python -m mpi4py`` sets for a non-zero exit a no-op. (A failure that does not end every rank
    -- an exception, a hung rank -- still aborts the job.)
    """
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()


def install(args) -> None:
    """Check the MPI launch of ``args.command`` and, on a multi-rank world, make failures abort the job.

    Called by ``hpoq.main`` right after argument parsing. Commands that do not use MPI are left alone
    (mpi4py is not even imported). Raises ConfigError on task 0 of a mismatched launch; the other tasks
    exit 2 silently, so the user reads the reason once.
    """
    if getattr(args, "command", None) not in MPI_COMMANDS or not hasattr(args, "_run"):
        return
    from mpi4py import MPI

    size = MPI.COMM_WORLD.Get_size()
    problem = launch_mismatch(size)
    if problem:
        if _is_task_zero():
            raise ConfigError(problem)
        sys.exit(2)
    if size > 1:
        args._run = _abort_on_failure(args._run)
