"""Start-up and shut-down of a study on every rank (``hpoq run``).

Rank 0 validates everything first -- the study file, its data, the rank count, the output
directory, and (on resume) the journal replay -- and writes nothing until every worker rank has
built its trainer. Any problem: rank 0 prints ``hpoq: error: ...``, every rank exits with code 2,
and nothing is written. Under ``python -m mpi4py`` a rank exiting with code 2 aborts the job
with code 2, so rank 0 prints its message *before* it tells the workers.
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass

from hpoq import __version__
from hpoq.errors import HpoqError
from hpoq.runtime.book import TrialBook
from hpoq.runtime.groups import TAG_READY, TAG_SETUP, TAG_STOP, GroupLayout, split_groups
from hpoq.runtime.journal import FORMAT_VERSION, JOURNAL_FILE, Journal, read_journal
from hpoq.runtime.resume import Replayed, replay
from hpoq.runtime.signals import StopSignals
from hpoq.seeding import derive_seed
from hpoq.study.spec import StudySpec

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


def _journal_path(out_dir: str) -> str:
    return os.path.join(out_dir, JOURNAL_FILE)


def prepare(study: str | None, out: str | None, resume, world_size: int) -> Plan:
    """Everything rank 0 checks before any rank starts work (raises HpoqError; writes nothing)."""
    from hpoq.study.build import build_scheduler, load_replay_table, trainer_metric
    from hpoq.study.spec import check_study, load_study

    if resume:
        if isinstance(resume, str):
            out_dir = resume
        elif out:
            out_dir = out
        elif study:
            out_dir = load_study(study, check=False).out
        else:
            raise HpoqError("--resume needs the output directory: run --resume OUTDIR")
        path = _journal_path(out_dir)
        if not os.path.isfile(path):
            raise HpoqError(f"--resume: {out_dir!r} has no {JOURNAL_FILE}; nothing to resume")
        records, valid = read_journal(path)
        try:
            spec = StudySpec.from_dict(records[0]["study"])
        except (KeyError, TypeError) as exc:
            raise HpoqError(f"--resume: the journal header in {out_dir!r} has no usable study ({exc})") from None
        spec.out = out_dir
        check_study(spec)
    else:
        if not study:
            raise HpoqError("run: give a study file (run STUDY.yaml) or --resume OUTDIR")
        spec = load_study(study, out=out)
        out_dir = spec.out
        if os.path.exists(_journal_path(out_dir)):
            raise HpoqError(f"output directory {out_dir!r} already holds a study journal; "
                            f"continue it with 'run --resume {out_dir}' or choose another --out")
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise HpoqError(f"output directory {out_dir!r} exists and is not a directory")
    layout = GroupLayout(world_size, spec.ranks_per_trial)
    metric, mode = trainer_metric(spec)
    scheduler = build_scheduler(spec, load_replay_table(spec))
    plan = Plan(spec=spec, out_dir=out_dir, layout=layout, scheduler=scheduler, metric=metric, mode=mode)
    if resume:
        plan.resume = replay(records, scheduler, mode)
        plan.journal_bytes = valid
        plan.records = len(records)
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


def _poll_ready(world, n: int, poll: float) -> list[dict]:
    from mpi4py import MPI

    status = MPI.Status()
    got: list[dict] = []
    while len(got) < n:
        if world.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_READY, status=status):
            got.append(world.recv(source=status.Get_source(), tag=TAG_READY))
        else:
            time.sleep(poll)
    return got


def _error(msg: str) -> None:
    print(f"hpoq: error: {msg}", file=sys.stderr, flush=True)


def master_main(world, study: str | None, out: str | None, resume, progress_enabled: bool | None = None) -> int:
    from hpoq.runtime.outputs import write_outputs

    size = world.Get_size()
    signals = StopSignals(role="master").install()
    try:
        try:
            plan = prepare(study, out, resume, size)
        except HpoqError as exc:
            _error(str(exc))
            for rank in range(1, size):
                world.send({"ok": False}, dest=rank, tag=TAG_SETUP)
            return 2
        spec = plan.spec
        if plan.resume is not None and plan.resume.finished:
            print(f"hpoq: study in {plan.out_dir!r} already finished; nothing to resume", file=sys.stderr, flush=True)
            for rank in range(1, size):
                world.send({"ok": False, "code": 0}, dest=rank, tag=TAG_SETUP)
            book = plan.resume.book
            write_outputs(plan.out_dir, book, plan.scheduler.best(), spec.name, plan.metric, plan.mode)
            return 0
        setup = {"ok": True, "ranks_per_trial": spec.ranks_per_trial, "poll_interval": spec.poll_interval,
                 "trainer": spec.trainer}
        for rank in range(1, size):
            world.send(setup, dest=rank, tag=TAG_SETUP)
        split_groups(world, plan.layout)
        ready = _poll_ready(world, size - 1, min(spec.poll_interval, 0.01))
        errors = [r["error"] for r in ready if not r.get("ok")]
        if errors:
            _error(errors[0])
            layout = plan.layout
            for rank in [layout.leader(g) for g in range(layout.n_groups)] + layout.idle_ranks():
                world.send({"code": 2}, dest=rank, tag=TAG_STOP)
            return 2
        modes = {r["mode"] for r in ready if r.get("mode")}
        if modes and modes != {plan.mode}:
            plan.mode = modes.pop()  # the trainer instance knows its direction best
        metrics = {r["metric"] for r in ready if r.get("metric")}
        if metrics:
            plan.metric = sorted(metrics)[0]
        return _run(world, plan, signals, progress_enabled)
    finally:
        signals.restore()


def _run(world, plan: Plan, signals: StopSignals, progress_enabled) -> int:
    from hpoq.runtime.master import Master
    from hpoq.runtime.outputs import best_record, write_outputs
    from hpoq.runtime.progress import Progress
    from hpoq.schedulers.brackets import hyperband_budget

    spec = plan.spec
    os.makedirs(plan.out_dir, exist_ok=True)
    path = _journal_path(plan.out_dir)
    groups = plan.layout.groups()
    info = {"pid": os.getpid(), "host": socket.gethostname(), "world_size": world.Get_size(), "groups": groups}
    budget = plan.scheduler.epochs_budget_reference() or hyperband_budget(spec.algorithm["R"], spec.algorithm["eta"])[1]
    if plan.resume is None:
        journal = Journal.create(path)
        seeds = {"study": spec.seed, "sampler": derive_seed(spec.seed, "rows") if spec.space == "table"
                 else derive_seed(spec.seed, "space"), "scheduler": spec.seed}
        journal.write("header", version=FORMAT_VERSION, study=spec.to_dict(), seeds=seeds, versions=_versions(),
                      metric=plan.metric, mode=plan.mode, budget=budget, **info)
        book, queue, known = TrialBook(plan.mode), [], ()
    else:
        journal = Journal.open_append(path, plan.journal_bytes)
        r = plan.resume
        journal.write("resume", replayed=r.replayed, from_snapshot=r.from_snapshot, lost_units=r.lost_units,
                      queue=len(r.queue), **info)
        book, queue, known = r.book, r.queue, set(r.book.trials)
        book.running.clear()
    journal.sync()
    progress = Progress(budget, plan.mode, initial=book.epochs_used, enabled=progress_enabled)
    master = Master(world, plan.layout, plan.scheduler, journal, book, out_dir=plan.out_dir,
                    poll_interval=spec.poll_interval, max_retries=spec.max_retries, mode=plan.mode, signals=signals,
                    progress=progress, queue=queue, known_trials=known)
    code, error = 0, None
    try:
        status = master.run()
    except HpoqError as exc:
        status, error, code = "error", str(exc), 2
    finally:
        master.stop_workers(0)
    progress.close(master)
    best = plan.scheduler.best()
    journal.write("end", status=status, best=best_record(best, plan.mode), epochs=book.epochs_used,
                  units=book.units_done, master_cpu_s=round(master.master_seconds, 6),
                  **({"error": error} if error else {}))
    journal.close()
    write_outputs(plan.out_dir, book, best, spec.name, plan.metric, plan.mode,
                  provenance={"study": spec.name, "seed": spec.seed, "algorithm": spec.algorithm["name"]})
    if error:
        _error(error)
    elif status == "interrupted":
        print(f"hpoq: stopped by {signals.last}; continue with: run --resume {plan.out_dir}", file=sys.stderr, flush=True)
    else:
        rec = best_record(best, plan.mode)
        what = "no trial reached R" if rec is None else f"best {plan.metric} {rec['value']:.6g} (trial {rec['trial_id']})"
        print(f"hpoq: study {spec.name!r} finished: {what}; {book.epochs_used} epochs (plain Hyperband: {budget}); "
              f"outputs in {plan.out_dir}", file=sys.stderr, flush=True)
    return code


def run_on_all_ranks(study: str | None, out: str | None, resume, progress: bool | None = None) -> int:
    """Entry point of ``hpoq run`` on every rank (rank 0 master, the others workers)."""
    from mpi4py import MPI

    from hpoq.runtime.worker import worker_main

    world = MPI.COMM_WORLD
    if world.Get_rank() == 0:
        return master_main(world, study, out, resume, progress)
    return worker_main(world)
