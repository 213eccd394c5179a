"""Start-up and shut-down of a study on every rank (``hpoq run``).

Rank 0 validates everything first -- the study file, its data, the rank count, the output
directory (writable; on resume: locked, inputs unchanged, journal replayable) -- and writes
nothing until every worker rank has built its trainer. Any problem: rank 0 prints ``hpoq: error:
...``, every rank exits with code 2, and nothing is written. Under ``python -m mpi4py`` a rank
exiting with code 2 aborts the job with code 2, so rank 0 prints its message *before* it tells the
workers.

The master holds an exclusive lock on the output directory for its whole life
(:mod:`hpoq.runtime.dirlock`). When ranks are left running a unit that timed out, or a second stop
signal left units running, the master writes its ``end`` record (with ``abort``: why) and the
output files and then calls ``MPI_Abort`` with its exit code: the hung ranks would never exit,
and ``mpiexec`` would wait for them forever.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import socket
import sys
from dataclasses import dataclass

from hpoq import __version__
from hpoq.errors import ConfigError, InternalError
from hpoq.journal import records
from hpoq.journal.state import StudyState
from hpoq.runtime.dirlock import LOCK_FILE, DirLock
from hpoq.runtime.gpus import assign_gpus
from hpoq.runtime.groups import TAG_READY, TAG_SETUP, TAG_STOP, GroupLayout, split_groups
from hpoq.runtime.inputs import changed_inputs, fingerprints
from hpoq.runtime.journal import (
    JOURNAL_FILE,
    RESERVE_FILE,
    Journal,
    is_disk_full,
    read_records,
    unstarted,
)
from hpoq.runtime.polling import Backoff, wait_for
from hpoq.runtime.resume import Replayed, replay
from hpoq.runtime.signals import StopSignals
from hpoq.runtime.transport import MPITransport
from hpoq.seeding import derive_seed
from hpoq.study.spec import StudySpec
from hpoq.writable import refuse_foreign_dir

log = logging.getLogger(__name__)


@dataclass
class Plan:
    spec: StudySpec
    out_dir: str
    layout: GroupLayout
    scheduler: object
    metric: str
    mode: str
    resume: Replayed | None = None
    journal_bytes: int = 0
    records: int = 0
    lock: DirLock | None = None
    changed: tuple = ()  # inputs that changed since the start (resume with --allow-changed-inputs)


def _journal_path(out_dir: str) -> str:
    return os.path.join(out_dir, JOURNAL_FILE)


def _resume_dir(study: str | None, out: str | None, resume) -> str:
    if isinstance(resume, str):
        if study:
            raise ConfigError(
                f"run: give a study file or --resume {resume}, not both (a resume takes the study from "
                f"the journal in {resume!r}; 'run {study} --resume' resumes the study's own directory)"
            )
        return resume
    if out:
        return out
    if study:
        from hpoq.study.spec import load_study

        return load_study(study, check=False).out
    raise ConfigError("--resume needs the output directory: run --resume OUTDIR")


def _prepare_resume(study, out, resume, allow_changed: bool) -> tuple:
    """Lock the directory, read its journal and check its inputs: (spec, records, valid bytes, lock, changed)."""
    from hpoq.study.spec import check_study

    out_dir = _resume_dir(study, out, resume)
    path = _journal_path(out_dir)
    if not os.path.isfile(path):
        raise ConfigError(f"--resume: {out_dir!r} has no {JOURNAL_FILE}; nothing to resume")
    if unstarted(path):
        raise ConfigError(
            f"--resume: the study in {out_dir!r} never started (its journal has no header); "
            f"start it again with: run STUDY.yaml --out {out_dir}"
        )
    read_records(path)  # a damaged journal is refused before anything, even a lock file, is made
    lock = DirLock.acquire(out_dir)
    try:
        recs, valid = read_records(path)  # again under the lock: another master may have been appending
        try:
            spec = StudySpec.from_dict(recs[0].study)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"--resume: the journal header in {out_dir!r} has no usable study ({exc})") from None
        spec.out = out_dir
        check_study(spec)
        changed = changed_inputs(recs[0].inputs)
        if changed and not allow_changed:
            raise ConfigError(
                f"--resume: input {changed[0]} since the study started"
                + (f" (and {len(changed) - 1} more)" if len(changed) > 1 else "")
                + "; restore it, or pass --allow-changed-inputs to continue on the new data"
            )
    except BaseException:
        lock.discard()  # a refused resume writes nothing, not even the lock file
        raise
    return spec, recs, valid, lock, tuple(changed)


# what a start that failed before its header was durable may leave (and a rerun replaces)
_START_LEFTOVERS = (LOCK_FILE, RESERVE_FILE)


def _check_fresh_out_dir(out_dir: str) -> None:
    """A new study writes only into a new or empty directory, or one left by a start that never got going.

    Anything else -- a user's files, another tool's output, a study (its journal has a header) --
    is refused in one line before anything is written: the study's outputs (``trials.csv``,
    ``checkpoints/``, ...) would replace or delete what is there.
    """
    journal = _journal_path(out_dir)
    if os.path.exists(journal) and not unstarted(journal):
        raise ConfigError(
            f"output directory {out_dir!r} already holds a study journal; "
            f"continue it with 'run --resume {out_dir}' or choose another --out"
        )

    def ours(rel: str) -> bool:
        return rel in _START_LEFTOVERS or rel == JOURNAL_FILE  # the journal: unstarted, checked above

    refuse_foreign_dir(out_dir, "output directory", ours, "an hpoq study")


def prepare(study: str | None, out: str | None, resume, world_size: int, allow_changed: bool = False) -> Plan:
    """Everything rank 0 checks before any rank starts work (raises ConfigError; writes nothing).

    A resume holds the directory's lock from here on; a refused one lets it go and removes the lock
    file if it made it.
    """
    from hpoq.study.spec import load_study
    from hpoq.writable import check_writable_dir

    lock, changed, recs, valid = None, (), None, 0
    if resume:
        spec, recs, valid, lock, changed = _prepare_resume(study, out, resume, allow_changed)
        out_dir = spec.out
    else:
        if not study:
            raise ConfigError("run: give a study file (run STUDY.yaml) or --resume OUTDIR")
        spec = load_study(study, out=out)
        out_dir = spec.out
        _check_fresh_out_dir(out_dir)
        check_writable_dir(out_dir, "output directory")
    try:
        return _plan(spec, out_dir, world_size, lock, changed, resume, recs, valid)
    except BaseException:
        if lock is not None:
            lock.discard()  # a refused resume writes nothing, not even the lock file
        raise


def _plan(spec: StudySpec, out_dir: str, world_size: int, lock, changed, resume, recs, valid) -> Plan:
    """The scheduler, trial groups and (on resume) the replayed journal of a checked study."""
    from hpoq.schedulers import with_runtime_defaults
    from hpoq.study.build import assemble

    layout = GroupLayout(world_size, spec.ranks_per_trial)
    if not resume:  # resolved once, from this job's trial groups; the header keeps them for every resume
        alg = spec.algorithm
        alg.params = with_runtime_defaults(alg.name, alg.params, layout.n_groups)
    parts = assemble(spec)
    plan = Plan(
        spec=spec,
        out_dir=out_dir,
        layout=layout,
        scheduler=parts.scheduler,
        metric=parts.metric,
        mode=parts.mode,
        lock=lock,
        changed=changed,
    )
    if resume:
        plan.resume = replay(recs, parts.scheduler, parts.mode)
        plan.journal_bytes = valid
        plan.records = len(recs)
    return plan


def _versions() -> dict:
    import numpy

    out = {"hpoq": __version__, "python": platform.python_version(), "numpy": numpy.__version__}
    try:
        import mpi4py
        from mpi4py import MPI

        out["mpi4py"] = mpi4py.__version__
        out["mpi"] = MPI.Get_library_version().splitlines()[0].strip()
    except Exception:  # noqa: BLE001 -- versions are informative only
        pass
    return out


def _poll_ready(transport, n: int, poll: float) -> list[dict]:
    """The ready messages of ``n`` worker ranks (their trainers built, or the error)."""
    backoff, got = Backoff(poll), []
    while len(got) < n:
        source, _ = wait_for(lambda: transport.probe(tag=TAG_READY), backoff)
        got.append(transport.recv(source, TAG_READY))
    return got


def _error(msg: str) -> None:
    print(f"hpoq: error: {msg}", file=sys.stderr, flush=True)


def master_main(
    world,
    study: str | None,
    out: str | None,
    resume,
    progress_enabled: bool | None = None,
    allow_changed_inputs: bool = False,
) -> int:
    size = world.Get_size()
    signals = StopSignals(role="master").install()
    try:
        try:
            plan = prepare(study, out, resume, size, allow_changed_inputs)
        except ConfigError as exc:
            _error(str(exc))
            for rank in range(1, size):
                world.send({"ok": False}, dest=rank, tag=TAG_SETUP)
            return 2
        if plan.resume is not None and plan.resume.finished:
            return _already_finished(world, plan)
        spec = plan.spec
        setup = {
            "ok": True,
            "ranks_per_trial": spec.ranks_per_trial,
            "poll_interval": spec.poll_interval,
            "trainer": spec.trainer.to_dict(),
        }
        for rank in range(1, size):
            world.send(setup, dest=rank, tag=TAG_SETUP)
        split_groups(world, plan.layout)
        try:
            assign_gpus(world, False)  # the workers' collective; the master needs no GPU
        except ConfigError:
            pass  # the workers report it in their ready messages
        if not _workers_ready(world, plan):
            return 2
        return _run(world, plan, signals, progress_enabled)
    finally:
        signals.restore()


def _already_finished(world, plan: Plan) -> int:
    """A resume of a finished study: the workers go home, the output files are written again from the
    journal (they may have been lost or never written); the exit code."""
    from hpoq.runtime.outputs import write_outputs

    print(f"hpoq: study in {plan.out_dir!r} already finished; nothing to resume", file=sys.stderr, flush=True)
    for rank in range(1, world.Get_size()):
        world.send({"ok": False, "code": 0}, dest=rank, tag=TAG_SETUP)
    try:
        write_outputs(plan.out_dir, plan.resume.state, plan.scheduler.best(), plan.spec.name, plan.metric, plan.mode)
    except OSError as exc:
        if not is_disk_full(exc) and exc.errno != errno.EROFS:
            raise
        _error(f"cannot write the output files in {plan.out_dir!r}: {exc.filename}: {exc.strerror}")
        return 2
    return 0


def _workers_ready(world, plan: Plan) -> bool:
    """Wait for every worker's trainer; False (the error printed, the workers stopped) if one failed. The
    trainers' own metric and direction go into ``plan``."""
    ready = _poll_ready(MPITransport(world), world.Get_size() - 1, min(plan.spec.poll_interval, 0.01))
    errors = [r["error"] for r in ready if not r.get("ok")]
    if errors:
        _error(errors[0])
        _stop_all(world, plan.layout, 2)
        return False
    modes = {r["mode"] for r in ready if r.get("mode")}
    if modes and modes != {plan.mode}:
        plan.mode = modes.pop()  # the trainer instance knows its direction best
    metrics = {r["metric"] for r in ready if r.get("metric")}
    if metrics:
        plan.metric = sorted(metrics)[0]
    return True


def _stop_all(world, layout: GroupLayout, code: int) -> None:
    for rank in [layout.leader(g) for g in range(layout.n_groups)] + layout.idle_ranks():
        world.send({"code": code}, dest=rank, tag=TAG_STOP)


def _open_journal(plan: Plan, info: dict, budget: int) -> Journal:
    """Create (lock, reserve, header) or reopen (resume record) the journal; OSError -> ConfigError."""
    spec, path = plan.spec, _journal_path(plan.out_dir)
    try:
        if plan.resume is None:
            seeds = {
                "study": spec.seed,
                "sampler": derive_seed(spec.seed, "rows") if spec.space == "table" else derive_seed(spec.seed, "space"),
                "scheduler": spec.seed,
            }
            header = records.Header(
                study=spec.to_dict(),
                seeds=seeds,
                versions=_versions(),
                metric=plan.metric,
                mode=plan.mode,
                budget=budget,
                inputs=fingerprints(spec),
                **info,
            )
            return _start_journal(plan, path, header)
        journal = Journal.open_append(path, plan.journal_bytes)
        journal.make_reserve()
        r = plan.resume
        journal.append(
            records.Resume(
                replayed=r.replayed,
                from_snapshot=r.from_snapshot,
                lost_units=r.lost_units,
                counted_lost=[u.unit_id for u in r.lost_counted],
                queue=len(r.queue),
                changed_inputs=list(plan.changed) if plan.changed else None,
                **info,
            )
        )
        journal.sync()
    except OSError as exc:
        where = exc.filename or plan.out_dir
        raise ConfigError(f"cannot write the study in {plan.out_dir!r}: {where}: {exc.strerror}") from None
    return journal


def _make_dirs(path: str) -> list[str]:
    """``os.makedirs(path)``; the folders it created, outermost first."""
    missing, here = [], os.path.abspath(path)
    while not os.path.exists(here):
        missing.append(here)
        here = os.path.dirname(here)
    os.makedirs(path, exist_ok=True)
    return missing[::-1]


def _start_journal(plan: Plan, path: str, header: records.Header) -> Journal:
    """Make the directory, lock it, write the header durably; a failure on the way undoes all of it.

    Until the header is on disk nothing depends on the directory, so a start that fails (a full
    disk, a quota, an I/O error) removes what it made -- journal, space reserve, lock file and the
    folders it created -- and a plain rerun finds the directory as the user left it. (A start killed
    on the way leaves an empty journal, which :func:`_check_fresh_out_dir` lets a rerun replace.)
    """
    created = _make_dirs(plan.out_dir)
    try:
        plan.lock = DirLock.acquire(plan.out_dir)  # another master's ConfigError: nothing of ours to undo
    except BaseException:
        _remove_empty(created)
        raise
    journal = None
    try:
        if os.path.exists(path):
            if not unstarted(path):  # a master started here since prepare() looked
                raise ConfigError(f"output directory {plan.out_dir!r} already holds a study journal")
            os.unlink(path)  # a start that never got going: its empty journal
        journal = Journal.create(path)
        journal.make_reserve()
        journal.append(header)
        journal.sync()
    except BaseException:
        if journal is not None:
            journal.abandon()
            _unlink(journal.reserve_path)
        _unlink(plan.lock.path)
        plan.lock.release()
        plan.lock = None
        _remove_empty(created)
        raise
    return journal


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _remove_empty(folders: list[str]) -> None:
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            return


def _run(world, plan: Plan, signals: StopSignals, progress_enabled) -> int:
    transport = MPITransport(world)
    try:
        master, journal, budget = start_master(transport, plan, signals, progress_enabled)
    except ConfigError as exc:
        _error(str(exc))
        _stop_all(world, plan.layout, 2)
        return 2
    return run_master(plan, master, journal, budget)


def start_master(transport, plan: Plan, signals: StopSignals, progress_enabled=None):
    """Open the journal (header or resume record) and build the :class:`Master`: (master, journal, budget).

    Needs no MPI beyond ``transport``: in-process tests pass a fake one. Raises ConfigError when the
    directory cannot be written or is locked by another master.
    """
    from hpoq.dispatch import Dispatcher
    from hpoq.runtime.master import LoopSettings, Master
    from hpoq.runtime.progress import Progress
    from hpoq.schedulers.brackets import hyperband_budget

    spec = plan.spec
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "world_size": transport.size,
        "groups": plan.layout.groups(),
    }
    budget = plan.scheduler.epochs_budget_reference() or hyperband_budget(spec.algorithm.R, spec.algorithm.eta)[1]
    journal = _open_journal(plan, info, budget)
    if plan.changed:
        log.warning("resuming on changed inputs (--allow-changed-inputs): %s", "; ".join(plan.changed))
    if plan.resume is None:
        state, queue, lost = StudyState(plan.mode), [], []
    else:
        r = plan.resume
        state, queue, lost = r.state, r.queue, r.lost_counted
        state.running.clear()
    dispatcher = Dispatcher(
        plan.scheduler,
        plan.layout.n_groups,
        max_retries=spec.max_retries,
        queue=queue,
        failures={tid: t.failures for tid, t in state.trials.items()},
        next_unit_id=state.next_unit_id,
        known_trials=[tid for tid, t in state.trials.items() if t.config],
        ranks=plan.layout.ranks,
    )
    progress = Progress(budget, plan.mode, initial=state.epochs_used, enabled=progress_enabled)
    settings = LoopSettings(plan.out_dir, spec.poll_interval, plan.mode, spec.unit_timeout)
    master = Master(
        transport, plan.layout, dispatcher, journal, state, settings, signals=signals, progress=progress, lost=lost
    )
    return master, journal, budget


def run_master(plan: Plan, master, journal: Journal, budget: int) -> int:
    """Run the master to its end, then the end record, outputs and closing line; the exit code."""
    from hpoq.runtime.master import JournalDead

    error, status, bug = None, "finished", None
    try:
        status = master.run()
    except ConfigError as exc:
        status, error = "error", str(exc)
    except InternalError as exc:  # a bug: journaled as the end of the study, then raised with its traceback
        status, error, bug = "error", f"{type(exc).__name__}: {exc}", exc
    except JournalDead as exc:
        status, error = (
            "dead",
            (
                f"the journal in {plan.out_dir!r} cannot be written ({exc}); it ends at its last "
                f"complete record: free space, then {how_to_continue(plan.out_dir)}"
            ),
        )
    if master.progress is not None:
        master.progress.close(master)
    code = _end(plan, master, journal, status, error, budget, quiet=bug is not None)
    if bug is not None:
        raise bug
    return code


def _end(plan: Plan, master, journal: Journal, status: str, error: str | None, budget: int, quiet: bool = False) -> int:
    """End record, output files, the closing line; MPI_Abort when ranks cannot be stopped."""
    from hpoq.runtime.master import fit_stats
    from hpoq.runtime.outputs import best_record, write_outputs

    spec, state = plan.spec, master.state
    best = plan.scheduler.best()
    code = 2 if error or master.stop_reason and master.stop_reason.startswith("disk full") else 0
    abort = master.hung_ranks_reason()
    if status != "dead":
        extra = {"error": error} if error else {}
        extra.update({"reason": master.stop_reason} if master.stop_reason else {})
        extra.update({"abort": abort} if abort else {})
        journal.append(
            records.End(
                status=status,
                best=best_record(best, plan.mode),
                epochs=state.epochs_used,
                units=state.units_done,
                master_cpu_s=round(master.master_seconds, 6),
                **fit_stats(master.fit_pool, master.scheduler),
                max_dispatch_gap_s=round(master.max_pass_seconds, 6),
                **extra,
            )
        )
        try:
            journal.close()
            write_outputs(
                plan.out_dir,
                state,
                best,
                spec.name,
                plan.metric,
                plan.mode,
                provenance={"study": spec.name, "seed": spec.seed, "algorithm": spec.algorithm.name},
            )
        except OSError as exc:
            if not is_disk_full(exc) and exc.errno != errno.EROFS:
                raise
            error = error or f"the disk of {plan.out_dir!r} is full ({exc.strerror}); free space, then resume"
            code = 2
    if not quiet:  # an internal error speaks with its traceback instead
        _closing_line(plan, master, status, error, state, best, budget, abort)
    if abort:
        sys.stderr.flush()
        master.transport.abort(code)  # never returns: hung ranks cannot be stopped otherwise
    master.stop_workers(code)
    return code


#: set by jobs/slurm_generic.sbatch (to its name): after a stop, the job script decides what comes next
JOB_SCRIPT_ENV = "HPOQ_JOB_SCRIPT"


def how_to_continue(out_dir: str) -> str:
    """How an interrupted study goes on, as the master can truthfully say it.

    Under a job script that requeues or resubmits (``HPOQ_JOB_SCRIPT``) the master cannot know: the script
    requeues on its USR1, Slurm requeues by itself after ``scontrol requeue`` (a SIGTERM like the time
    limit's), and the script decides only after the master has ended. It says which in its next line; a
    "run --resume" here would tell the user to start a second job on a directory Slurm is about to resume.
    """
    script = os.environ.get(JOB_SCRIPT_ENV, "").strip()
    if script:
        return (
            f"it resumes from {out_dir} when the job is requeued or submitted again: the job script ({script}) "
            f"says next which"
        )
    return f"continue with: run --resume {out_dir}"


def _closing_line(
    plan: Plan, master, status: str, error: str | None, state, best, budget: int, abort: str | None
) -> None:
    from hpoq.runtime.outputs import best_record

    again = how_to_continue(plan.out_dir)
    if error:
        _error(error)
    elif master.stop_reason and master.stop_reason.startswith("disk full"):
        _error(f"{master.stop_reason}: stopped as for SIGTERM; free space, then {again}")
    elif status == "interrupted":
        why = master.signals.last if master.signals.requested else master.stop_reason
        print(f"hpoq: stopped by {why}; {again}", file=sys.stderr, flush=True)
    else:
        rec = best_record(best, plan.mode)
        what = (
            "no trial reached R" if rec is None else f"best {plan.metric} {rec['value']:.6g} (trial {rec['trial_id']})"
        )
        print(
            f"hpoq: study {plan.spec.name!r} finished: {what}; {state.epochs_used} epochs "
            f"(plain Hyperband: {budget}); "
            f"outputs in {plan.out_dir}",
            file=sys.stderr,
            flush=True,
        )
    if abort:
        print(f"hpoq: aborting the MPI job: {abort}", file=sys.stderr, flush=True)


def run_on_all_ranks(
    study: str | None, out: str | None, resume, progress: bool | None = None, allow_changed_inputs: bool = False
) -> int:
    """Entry point of ``hpoq run`` on every rank (rank 0 master, the others workers)."""
    from mpi4py import MPI

    from hpoq.runtime.worker import worker_main

    world = MPI.COMM_WORLD
    if world.Get_rank() == 0:
        return master_main(world, study, out, resume, progress, allow_changed_inputs)
    return worker_main(world)
