"""Campaign scale (issue 25): decision cost per work unit as a study grows, the master at many ranks, and the
journal's readers at 10^5 trials. Prints markdown tables; ``--out DIR`` also writes ``DIR/scale.md``.

1. **replay** (``--parts replay``): every scheduler replayed on the MLPF table (``load_shared("mlpf")``,
   295 rows, R = 100, eta = 2, seed 0, one simulated worker unless ``--workers``) with ``n`` configurations
   (``--sizes``, default 10^3, 10^4, 10^5; the sampler draws the table's rows in one seeded permutation after
   another, as ``simulate --param n=N`` does). Each cell runs in its own process: CPU seconds of the whole replay
   (scheduler, dispatcher, simulated clock) with the predictors' ``fit`` calls timed apart and excluded, per work
   unit; the same over the last tenth of the units (the marginal cost, which grows when a decision's cost grows
   with the study); and the process's peak resident memory (``ru_maxrss``; the interpreter, numpy and the table
   account for the ``base`` column). A cell stops after ``--max-cpu`` CPU seconds (default 600): it then shows
   the units it reached and ``>=`` before its time, and its last-tenth cost is that of the units it ran.
   ``hyperband``, ``swift`` and ``default`` (Hyperband's brackets since its robustness rewrite) draw Hyperband's
   own schedule (163 configurations at R = 100, eta = 2): they have no ``n``, and run once at that size.

2. **master** (``--parts master``): the real master (:class:`hpoq.runtime.master.Master`, its journal, checkpoints and
   dispatcher, built by :func:`hpoq.runtime.launch.prepare` and :func:`~hpoq.runtime.launch.start_master` as ``hpoq
   run`` does) with ``--ranks`` simulated ranks (default 64, 256, 1024; one rank per trial group: ranks - 1 groups)
   on an in-process transport: a unit sent to a leader is trained at once by the real ``table`` trainer through
   :func:`hpoq.runtime.worker.run_unit` (its checkpoint written, as a real rank does) and its outcome waits for the
   master's next probe. Instant units: the master is the bottleneck. The trainer's time is measured apart and taken
   out: units/s = units / (wall time of the master loop - the simulated ranks' time). Journal: records written,
   fsyncs (batches), records per fsync, fsyncs per second and the seconds spent in them.
   ``--master-studies``: ``random`` (n = 20 units per group, every unit R epochs: the master's own cost) and
   ``asha`` (n = 20 configurations per group: the scheduler's cost included).

3. **journal** (``--parts journal``): a study of ``--trials`` configurations (default 10^5; ``asha``, R = 9, eta =
   3, on 1,024 simulated ranks as in part 2, but the ranks answer from the table without writing checkpoints) is
   journaled once, then read: ``hpoq status`` (a fresh process, wall time; and the call alone, in-process), the
   resume of a copy cut at 95% of its lines (a master killed mid-run: no snapshot, no end record) until its master
   is ready to dispatch (:func:`~hpoq.runtime.launch.prepare` and :func:`~hpoq.runtime.launch.start_master`), and
   ``hpoq report`` (in-process); each in its own process, with its peak memory.

4. **mpiexec** (``--parts mpiexec``): the same studies as part 2 under a real ``mpiexec -n N`` (``--mpi-ranks``,
   default 16, 64, 128; oversubscribed on this machine's 2 cores, every rank its own Python process) with the
   ``table`` trainer: units/s over the study loop (first unit record to the end record) and the master's CPU per
   unit (``end.master_cpu_s``), from the journal.

5. **fits** (``--parts fits``): the schedulers that fit models (``--fit-algorithms``, default ``default,swift``;
   one with ``n`` runs at the first of ``--sizes``) replayed as in part 1 with a warm curve store of S curves
   (``--stores``, default 0, 10^3, 10^4, 10^5: the MLPF table's rows repeated in seeded permutations): the CPU of
   each predictor fit, the largest training set a fit saw, and the replay's CPU per unit without its fits.

Targets (this 2-core machine): CPU per unit, fits excluded, <= 1 ms at n = 10^4 and <= 2 ms at n = 10^5 for every
scheduler; peak memory <= 2 GB at 10^5; master with 1,024 simulated ranks >= 2,000 units/s dispatched and journaled;
on a 10^5-trial journal ``status`` <= 2 s, resume ready to dispatch <= 30 s, ``report`` <= 60 s.

Usage: ``python benchmarks/scale.py [--parts replay,fits,master,journal,mpiexec] [--sizes 1000,10000,100000]
[--algorithms asha,...] [--max-cpu 600] [--workers 1] [--ranks 64,256,1024] [--master-studies random,asha]
[--trials 100000] [--mpi-ranks 16,64,128] [--stores 0,1000,10000,100000] [--fit-algorithms default,swift]
[--out benchmarks/results]``.
Run under ``nice -n 10`` on a shared machine; compare
cells as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: column name -> (algorithm, predictor, takes n): as in benchmarks/hpo_replay.py and benchmarks/fingerprint.py
VARIANTS = {
    "asha": ("asha", None, True),
    "random": ("random", None, True),
    "topk-1epoch": ("topk-1epoch", None, True),
    "default": ("default", None, False),
    "default-nopred": ("default", "none", False),
    "hyperband": ("hyperband", None, False),
    "swift": ("swift", None, False),
}
R, ETA, SEED = 100, 2, 0
SIZES = (1_000, 10_000, 100_000)


# -- 1. replay: one cell per process ------------------------------------------------------------
class OutOfTime(Exception):
    """The cell spent its CPU budget: it stops where it is and reports what it ran."""


class FitClock:
    """CPU seconds inside predictors' ``fit`` (outermost call only: an ensemble's inner fits count once)."""

    def __init__(self):
        self.seconds, self.fits, self.longest, self._depth = 0.0, 0, 0.0, 0
        self.sizes: list[int] = []  # training-set rows of each outermost fit

    def wrap(self, cls) -> None:
        fit = cls.__dict__.get("fit")
        if fit is None or getattr(fit, "_timed", False):
            return

        def timed(inner_self, *args, **kwargs):
            if self._depth:
                return fit(inner_self, *args, **kwargs)
            self._depth += 1
            t0 = time.process_time()
            try:
                return fit(inner_self, *args, **kwargs)
            finally:
                self._depth -= 1
                spent = time.process_time() - t0
                self.seconds += spent
                self.longest = max(self.longest, spent)
                self.fits += 1
                if len(args) >= 2:  # fit(configs, X, y)
                    self.sizes.append(len(args[1]))

        timed._timed = True
        cls.fit = timed

    def install(self) -> None:
        """Time the ``fit`` of every registered predictor class and of every class it inherits from."""
        from hpoq.predict import PREDICTORS, predictor_class

        for name in PREDICTORS:
            for cls in predictor_class(name).__mro__:
                if "fit" in cls.__dict__ and cls.__module__.startswith("hpoq."):
                    self.wrap(cls)


def rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def store_of(table, rows: int):
    """A warm curve store of ``rows`` curves: the table's rows repeated in one seeded permutation after another
    (a store of ``rows`` earlier trials of the same model family, as large as a long campaign leaves)."""
    import numpy as np

    from hpoq.seeding import derive_rng

    rng = derive_rng(SEED, "scale-store")
    picks = np.concatenate([rng.permutation(table.n_rows) for _ in range(-(-rows // table.n_rows))])[:rows]
    return table.subset(picks)


def replay_cell(variant: str, n: int | None, workers: int, max_cpu: float, store: int = 0) -> dict:
    """Replay one scheduler at ``n`` configurations (with a warm store of ``store`` curves, if any); CPU, fit CPU,
    units and memory (see the module docstring)."""
    from hpoq.curves.shared import load_shared
    from hpoq.schedulers import make_scheduler, with_worker_defaults
    from hpoq.schedulers.sampling import table_sampler_for
    from hpoq.simulate.replay import ReplayBackend

    algorithm, predictor, takes_n = VARIANTS[variant]
    table = load_shared("mlpf")
    clock = FitClock()
    clock.install()
    sampler, _ = table_sampler_for(table, SEED)
    params = {"n": int(n)} if takes_n else {}
    warm = store_of(table, store) if store else None
    c0 = time.process_time()
    scheduler = make_scheduler(
        algorithm,
        R=R,
        eta=ETA,
        sampler=sampler,
        seed=SEED,
        predictor=predictor,
        warm_curves=warm,
        **with_worker_defaults(algorithm, params, workers),
    )
    build_s = time.process_time() - c0
    base = rss_mb()
    progress: list[tuple[int, float, float]] = []  # (units answered, CPU so far, fit CPU so far)
    on_result = scheduler.on_result
    t0 = time.process_time()

    def counted(trial_id, metrics):
        out = on_result(trial_id, metrics)
        cpu = time.process_time() - t0
        progress.append((len(progress) + 1, cpu, clock.seconds))
        if cpu > max_cpu:
            raise OutOfTime
        return out

    scheduler.on_result = counted
    complete = True
    try:
        ReplayBackend(table, scheduler, R=R, workers=workers).run()
    except OutOfTime:
        complete = False
    cpu = time.process_time() - t0
    units = len(progress)
    tail = progress[-max(units // 10, 1) :] if units else []
    if len(tail) >= 2:
        (u0, c0, f0), (u1, c1, f1) = tail[0], tail[-1]
        last_ms = 1e3 * ((c1 - c0) - (f1 - f0)) / max(u1 - u0, 1)
    else:
        last_ms = float("nan")
    return {
        "variant": variant,
        "n": n if takes_n else int(getattr(sampler, "drawn", 0)),
        "configs": int(getattr(sampler, "drawn", 0)),
        "units": units,
        "complete": complete,
        "cpu_s": cpu,
        "fit_s": clock.seconds,
        "fits": clock.fits,
        "longest_fit_s": clock.longest,
        "largest_fit_rows": max(clock.sizes, default=0),
        "store": int(store),
        "build_s": build_s,
        "per_unit_ms": 1e3 * (cpu - clock.seconds) / max(units, 1),
        "last_tenth_ms": last_ms,
        "base_mb": base,
        "peak_mb": rss_mb(),
        "max_cpu": max_cpu,
    }


def run_cell(variant: str, n: int | None, workers: int, max_cpu: float, store: int = 0) -> dict:
    """:func:`replay_cell` in a fresh process (its own peak memory); a crash is reported as such."""
    cmd = [sys.executable, __file__, "_cell", variant, str(n or 0), str(workers), str(max_cpu), str(store)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode != 0:
        return {"variant": variant, "n": n, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def replay_section(rows: list[dict], workers: int) -> list[str]:
    lines = [
        "## Scheduler CPU per work unit in replay",
        "",
        f"MLPF table (295 rows), R = {R}, eta = {ETA}, seed {SEED}, {workers} simulated worker(s); one process per "
        "cell. CPU: the whole replay (scheduler, dispatcher, simulated clock) without the predictors' fits (timed "
        "apart); last tenth: CPU per unit over the last 10% of the units, the marginal cost; memory: peak RSS of "
        "the cell's process (base: after imports and the table). `>=`: stopped at its CPU budget before the end.",
        "",
        "| algorithm | n | units | CPU s (fits excl.) | CPU/unit ms | last tenth ms/unit | fits | fit CPU s "
        "| base MB | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | {r['n']} | error: {r['error']} | | | | | | | |")
            continue
        ge = "" if r["complete"] else ">= "
        stop = "" if r["complete"] else f" (stopped at {r['max_cpu']:g} s)"
        lines.append(
            f"| {r['variant']} | {r['n']:,} | {r['units']:,}{stop} | {ge}{r['cpu_s'] - r['fit_s']:.1f} | "
            f"{ge}{r['per_unit_ms']:.3f} | {r['last_tenth_ms']:.3f} | {r['fits']} | {r['fit_s']:.1f} | "
            f"{r['base_mb']:.0f} | {r['peak_mb']:.0f} |"
        )
    lines.append("")
    return lines


def fits_section(rows: list[dict]) -> list[str]:
    lines = [
        "## Predictor fits against the store's size",
        "",
        "The schedulers that fit models, replayed as in the table above (`default` and `swift` on Hyperband's "
        "schedule) with a warm curve store of S earlier curves (the MLPF table's rows repeated, one "
        "seeded permutation after another). Per fit: CPU of one outermost `fit` (an ensemble's inner fits and a "
        "cross-validation's folds count in it); rows: the largest training set a fit saw; build: CPU to construct "
        "the scheduler with its store; CPU/unit: the replay without its fits. A fit's cost must not grow with S.",
        "",
        "| algorithm | store S | units | fits | fit CPU s | mean CPU/fit ms | longest fit ms | largest training set "
        "| build s | CPU/unit ms (fits excl.) | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | {r.get('store', '')} | error: {r['error']} |" + " |" * 8)
            continue
        ge = "" if r["complete"] else ">= "
        stop = "" if r["complete"] else f" (stopped at {r['max_cpu']:g} s)"
        lines.append(
            f"| {r['variant']} | {r['store']:,} | {r['units']:,}{stop} | {r['fits']} | {ge}{r['fit_s']:.1f} | "
            f"{1e3 * r['fit_s'] / max(r['fits'], 1):.0f} | {1e3 * r['longest_fit_s']:.0f} | "
            f"{r['largest_fit_rows']:,} | {r['build_s']:.1f} | {ge}{r['per_unit_ms']:.3f} | {r['peak_mb']:.0f} |"
        )
    lines.append("")
    return lines


# -- 2. the master at many simulated ranks ----------------------------------------------------
TABLE = REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz"
#: --master-studies name -> algorithm section of the study (n: configurations per trial group)
MASTER_STUDIES = {
    "random": {"name": "random", "R": 9, "eta": 3},
    "asha": {"name": "asha", "R": 9, "eta": 3},
}
PER_GROUP = 20  # configurations per trial group: every group runs many units


class InstantRanks:
    """The worker ranks of a job in-process, for the master (rank 0): each unit is trained at once by the real
    trainer and answered at the master's next probe, oldest first. :attr:`seconds`: wall time spent training
    (taken out of the master's)."""

    def __init__(self, size: int, trainer, curves=None):
        from collections import deque

        self.size, self.rank, self.trainer = size, 0, trainer
        self.curves = curves  # a table's curves (own direction): answer from them, no trainer, no checkpoints
        self.inbox = deque()  # (source, payload) of results waiting for the master
        self.seconds, self.cpu, self.units, self.stopped = 0.0, 0.0, 0, 0

    def probe(self, source=None, tag=None):
        from hpoq.runtime.groups import TAG_RESULT

        if self.inbox and tag in (None, TAG_RESULT) and source in (None, self.inbox[0][0]):
            return self.inbox[0][0], TAG_RESULT
        return None

    def recv(self, source, tag):
        src, payload = self.inbox.popleft()
        assert src == source, (src, source)
        return payload

    def send(self, obj, dest, tag):
        from hpoq.dispatch import Dispatch
        from hpoq.runtime.groups import TAG_STOP
        from hpoq.runtime.worker import run_unit

        if tag == TAG_STOP:
            self.stopped += 1
            return
        # the ranks run on the master's thread: their CPU is this thread's (thread_time; process_time took up to
        # 0.25 ms a call while the checkpoint remover's thread worked), both clocks read inside the wall window
        t0 = time.perf_counter()
        c0 = time.thread_time()
        if self.curves is None:
            outcome = run_unit(self.trainer, Dispatch.from_message(obj), None).to_message()
        else:
            row, start, end = obj["config"]["_row"], obj["start_epoch"], obj["end_epoch"]
            outcome = {"unit_id": obj["unit_id"], "ok": True, "metrics": self.curves[row, start:end].tolist()}
        self.inbox.append((dest, outcome))
        self.cpu += time.thread_time() - c0
        self.seconds += time.perf_counter() - t0
        self.units += 1

    def abort(self, code):
        raise RuntimeError(f"the master aborted the job ({code})")


class TimeLimit:
    """Stop signals that arrive by themselves once the master loop ran ``seconds`` of CPU: the master then stops
    as for SIGTERM (the units in flight finish, a snapshot is written), which bounds the slow cells."""

    def __init__(self, seconds: float):
        self.seconds, self.t0, self.last = float(seconds), time.process_time(), None

    @property
    def count(self) -> int:
        over = time.process_time() - self.t0 > self.seconds
        if over:
            self.last = "time limit of the benchmark"
        return int(over)

    @property
    def requested(self) -> bool:
        return self.count > 0


def master_cell(name: str, ranks: int, workdir: str, max_cpu: float = 600.0) -> dict:
    """Run study ``name`` on ``ranks`` simulated ranks in-process; throughput and journal figures."""
    import yaml

    from hpoq.runtime.launch import prepare, run_master, start_master
    from hpoq.trainers import make_trainer

    groups = ranks - 1
    algorithm = dict(MASTER_STUDIES[name], params={"n": PER_GROUP * groups})
    doc = {
        "name": f"scale-{name}-{ranks}",
        "seed": SEED,
        "algorithm": algorithm,
        "space": "table",
        "poll_interval": 0.001,
        "trainer": {"name": "table", "params": {"table": str(TABLE)}},
    }
    study = Path(workdir) / f"{name}-{ranks}.yaml"
    study.write_text(yaml.safe_dump(doc))
    out = Path(workdir) / f"out-{name}-{ranks}"
    plan = prepare(str(study), str(out), None, ranks)
    transport = InstantRanks(ranks, make_trainer("table", plan.spec.trainer.params))
    limit = TimeLimit(max_cpu)
    master, journal, budget = start_master(transport, plan, limit, progress_enabled=False)
    syncs = {"n": 0, "records": 0, "seconds": 0.0, "bytes": 0}
    sync = journal.sync

    def counted_sync():
        if journal.dirty:
            syncs["n"] += 1
            syncs["records"] += len(journal._pending)
            syncs["bytes"] += sum(len(b) for b in journal._pending)
            t0 = time.perf_counter()
            sync()
            syncs["seconds"] += time.perf_counter() - t0

    journal.sync = counted_sync
    loop = {}
    run = master.run

    def timed_run():
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return run()
        finally:
            loop["wall"], loop["cpu"] = time.perf_counter() - t0, time.process_time() - c0

    master.run = timed_run
    t0 = time.perf_counter()
    limit.t0 = time.process_time()
    try:
        code = run_master(plan, master, journal, budget)
    finally:
        plan.lock.release()
    total = time.perf_counter() - t0
    units = transport.units
    master_wall = loop["wall"] - transport.seconds
    master_cpu = loop["cpu"] - transport.cpu
    return {
        "study": name,
        "ranks": ranks,
        "groups": groups,
        "n": PER_GROUP * groups,
        "code": code,
        "complete": limit.last is None,
        "max_cpu": max_cpu,
        "units": units,
        "loop_wall_s": loop["wall"],
        "ranks_s": transport.seconds,
        "units_per_s": units / master_wall if master_wall > 0 else float("nan"),
        "master_ms_per_unit": 1e3 * master_wall / max(units, 1),
        "master_cpu_ms_per_unit": 1e3 * master_cpu / max(units, 1),
        "units_per_cpu_s": units / (master_cpu + syncs["seconds"]) if master_cpu > 0 else float("nan"),
        "end_s": total - loop["wall"],
        "records": journal.records,
        "fsyncs": syncs["n"],
        "records_per_fsync": syncs["records"] / max(syncs["n"], 1),
        "fsyncs_per_s": syncs["n"] / master_wall if master_wall > 0 else float("nan"),
        "fsync_s": syncs["seconds"],
        "journal_mb": (out / "journal.jsonl").stat().st_size / 2**20,
    }


def run_master_cell(name: str, ranks: int, max_cpu: float) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hpoq-scale-") as tmp:
        cmd = [sys.executable, __file__, "_master", name, str(ranks), tmp, str(max_cpu)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if proc.returncode != 0:
        return {"study": name, "ranks": ranks, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def master_section(rows: list[dict]) -> list[str]:
    lines = [
        "## The master at many simulated ranks",
        "",
        f"In-process transport, one rank per trial group, instant units of the `table` trainer (MLPF table; R = 9, "
        f"eta = 3, n = {PER_GROUP} configurations per group); the ranks' training time is measured and taken out of "
        "the master's. units/s: units / (the master loop's wall time - the ranks' time), which on a shared machine "
        "also counts the time other processes held the cores; units/s by CPU: units / (the master's CPU seconds + "
        "its seconds in fsync), what one free core gives; end: the end record and output files after the loop; a "
        "cell that ran `--max-cpu` CPU seconds is stopped as by SIGTERM. Target: "
        ">= 2,000 units/s at 1,024 ranks.",
        "",
        "| study | ranks | groups | n | units | units/s | units/s by CPU | master CPU ms/unit | journal records "
        "| fsyncs | records/fsync | fsyncs/s | fsync s | journal MB | end s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['study']} | {r['ranks']} | error: {r['error']} |" + " |" * 12)
            continue
        stop = "" if r["complete"] else f" (stopped at {r['max_cpu']:g} s)"
        lines.append(
            f"| {r['study']} | {r['ranks']:,} | {r['groups']:,} | {r['n']:,} | {r['units']:,}{stop} | "
            f"{r['units_per_s']:,.0f} | {r['units_per_cpu_s']:,.0f} | {r['master_cpu_ms_per_unit']:.3f} | "
            f"{r['records']:,} | {r['fsyncs']:,} | "
            f"{r['records_per_fsync']:.1f} | {r['fsyncs_per_s']:.1f} | {r['fsync_s']:.2f} | {r['journal_mb']:.1f} | "
            f"{r['end_s']:.1f} |"
        )
    lines.append("")
    return lines


# -- 3. the journal's readers at 10^5 trials ------------------------------------------------------
def journal_write(out: str, trials: int, ranks: int = 1024) -> dict:
    """Journal an ``asha`` study of ``trials`` configurations in ``out`` (in-process, instant units answered from
    the table, no checkpoints); the seconds it took and the journal's size."""
    import yaml

    from hpoq.curves.table import load_table
    from hpoq.runtime.launch import prepare, run_master, start_master

    doc = {
        "name": f"scale-journal-{trials}",
        "seed": SEED,
        "algorithm": {"name": "asha", "R": 9, "eta": 3, "params": {"n": int(trials)}},
        "space": "table",
        "poll_interval": 0.001,
        "trainer": {"name": "table", "params": {"table": str(TABLE)}},
    }
    study = Path(out).with_suffix(".yaml")
    study.write_text(yaml.safe_dump(doc))
    t0 = time.perf_counter()
    plan = prepare(str(study), out, None, ranks)
    transport = InstantRanks(ranks, None, load_table(str(TABLE), "loss").curves)
    master, journal, budget = start_master(transport, plan, TimeLimit(1e9), progress_enabled=False)
    try:
        run_master(plan, master, journal, budget)
    finally:
        plan.lock.release()
    path = Path(out) / "journal.jsonl"
    return {"seconds": time.perf_counter() - t0, "records": journal.records, "mb": path.stat().st_size / 2**20}


def cut_journal(src: str, dst: str, fraction: float = 0.95) -> int:
    """Copy study directory ``src`` to ``dst`` with its journal cut after ``fraction`` of its lines (a master
    killed there: no snapshot, no end record); the lines kept."""
    import shutil

    os.makedirs(dst)
    for name in ("journal.jsonl",):
        lines = (Path(src) / name).read_bytes().splitlines(keepends=True)
        keep = int(len(lines) * fraction)
        (Path(dst) / name).write_bytes(b"".join(lines[:keep]))
    if (Path(src) / "checkpoints").is_dir():
        shutil.copytree(Path(src) / "checkpoints", Path(dst) / "checkpoints")
    return keep


def reader_cell(what: str, out: str) -> dict:
    """One reader of study directory ``out``, timed in this process: status, resume or report."""
    t0, c0 = time.perf_counter(), time.process_time()
    if what == "status":
        import contextlib
        import io

        from hpoq.main import main as hpoq_main

        with contextlib.redirect_stdout(io.StringIO()):
            code = hpoq_main(["status", out])
        note = f"exit {code}"
    elif what == "resume":
        from hpoq.curves.table import load_table
        from hpoq.runtime.launch import prepare, start_master

        plan = prepare(None, out, out, 1024)
        transport = InstantRanks(1024, None, load_table(str(TABLE), "loss").curves)
        master, journal, _ = start_master(transport, plan, TimeLimit(1e9), progress_enabled=False)
        note = f"replayed {plan.resume.replayed} calls, {len(master.dispatcher.queue)} units queued"
        journal.close()
        plan.lock.release()
    else:
        from hpoq.report import build_report

        report = build_report(out)
        note = f"{len(report.study.trials)} trials, {report.n_predictions} predictions"
    return {
        "what": what,
        "seconds": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "process_cpu_s": time.process_time(),  # with the interpreter's start and the imports
        "peak_mb": rss_mb(),
        "note": note,
    }


def journal_part(trials: int, where: str | None = None) -> list[str]:
    """Journal the study (in ``where``, kept, unless it holds one already), then time its readers."""
    import tempfile

    tmp = None if where else tempfile.TemporaryDirectory(prefix="hpoq-scale-journal-")
    base = where or tmp.name
    out, cut = os.path.join(base, "study"), os.path.join(base, "killed")
    facts = os.path.join(base, "journaled.json")
    if not os.path.exists(facts):
        Path(facts).write_text(_child("_journal_write", out, str(trials)))
        cut_journal(out, cut)
    wrote = json.loads(Path(facts).read_text())
    print(json.dumps(wrote), file=sys.stderr, flush=True)
    kept = sum(1 for _ in open(os.path.join(cut, "journal.jsonl"), "rb"))
    rows = []
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "hpoq.main", "status", out], capture_output=True, env=env, cwd=REPO)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rows.append(
        {
            "what": "`hpoq status` (a new process)",
            "seconds": time.perf_counter() - t0,
            "cpu_s": cpu,
            "process_cpu_s": cpu,
            "peak_mb": None,
            "note": f"exit {proc.returncode}",
        }
    )
    for what, where_ in (("status", out), ("resume", cut), ("report", out)):
        if what == "resume":  # a resume appends to the journal: each measurement on a fresh copy
            import shutil

            fresh = cut + "-resumed"
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.copytree(cut, fresh)
            where_ = fresh
        row = json.loads(_child("_reader", what, where_))
        row["what"] = {"status": "status, the call alone", "resume": "resume, ready to dispatch"}.get(what, what)
        if what == "resume":
            row["note"] = f"journal cut at {kept:,} lines; " + row["note"]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    if tmp is not None:
        tmp.cleanup()
    lines = [
        "## The journal's readers",
        "",
        f"`asha` R = 9, eta = 3, n = {trials:,} configurations on 1,024 simulated ranks (in-process, instant units "
        f"answered from the MLPF table): {wrote['records']:,} records, {wrote['mb']:.0f} MB, journaled in "
        f"{wrote['seconds']:.0f} s. Each reader in its own process (peak memory of that process); the resume reads "
        "a copy cut at 95% of the lines (a master killed mid-run) until its master is ready to dispatch. Targets: "
        "status <= 2 s, resume <= 30 s, report <= 60 s. On a shared machine the wall time also counts the time "
        "other processes held the cores: the CPU seconds are what a free core gives.",
        "",
        "| reader | wall s | CPU s | CPU s with start-up and imports | peak MB | |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        lines.append(
            f"| {r['what']} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['process_cpu_s']:.1f} | {peak} | {r['note']} |"
        )
    lines.append("")
    return lines


def _child(*args: str) -> str:
    """Run this script with ``args`` in a fresh process; its last line of output."""
    cmd = [sys.executable, __file__, *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


# -- 4. under a real mpiexec --------------------------------------------------------------------
def mpiexec_cell(name: str, ranks: int) -> dict:
    """Run study ``name`` (part 2's, ``PER_GROUP`` configurations per group) under ``mpiexec -n ranks``."""
    import tempfile

    import yaml

    from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path

    groups = ranks - 1
    with tempfile.TemporaryDirectory(prefix="hpoq-scale-mpi-") as tmp:
        doc = {
            "name": f"scale-mpi-{name}-{ranks}",
            "seed": SEED,
            "algorithm": dict(MASTER_STUDIES[name], params={"n": PER_GROUP * groups}),
            "space": "table",
            "poll_interval": 0.01,
            "trainer": {"name": "table", "params": {"table": str(TABLE)}},
        }
        study, out = Path(tmp) / "study.yaml", Path(tmp) / "out"
        study.write_text(yaml.safe_dump(doc))
        cmd = [mpiexec_path(), "-n", str(ranks), sys.executable, "-m", "mpi4py", "-m", "hpoq.main", "run", str(study)]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*cmd, "--out", str(out)], capture_output=True, text=True, env=mpi_child_env(), cwd=REPO, timeout=3600
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"study": name, "ranks": ranks, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
        recs = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    end = recs[-1]
    first = next(r["t"] for r in recs if r["type"] == "unit")
    return {
        "study": name,
        "ranks": ranks,
        "groups": groups,
        "units": end["units"],
        "units_per_s": end["units"] / (end["t"] - first),
        "master_cpu_ms_per_unit": 1e3 * end["master_cpu_s"] / end["units"],
        "wall_s": wall,
    }


def mpiexec_section(rows: list[dict]) -> list[str]:
    lines = [
        "## Under a real mpiexec",
        "",
        f"`mpiexec -n N` on this machine's 2 cores (oversubscribed: every rank a Python process that polls), one "
        f"rank per trial group, the `table` trainer (no sleep; it writes its checkpoint), R = 9, eta = 3, n = "
        f"{PER_GROUP} configurations per group. units/s: units / (end record - first unit record); master CPU: "
        "`end.master_cpu_s` / units; wall: the whole `mpiexec` with start-up.",
        "",
        "| study | ranks | units | units/s | master CPU ms/unit | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['study']} | {r['ranks']} | error: {r['error']} | | | |")
            continue
        lines.append(
            f"| {r['study']} | {r['ranks']} | {r['units']:,} | {r['units_per_s']:,.0f} | "
            f"{r['master_cpu_ms_per_unit']:.3f} | {r['wall_s']:.0f} |"
        )
    lines.append("")
    return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_cell":
        variant, n, workers, max_cpu, store = argv[1], int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5])
        print(json.dumps(replay_cell(variant, n or None, workers, max_cpu, store)))
        return 0
    if argv and argv[0] == "_journal_write":
        print(json.dumps(journal_write(argv[1], int(argv[2]))))
        return 0
    if argv and argv[0] == "_reader":
        print(json.dumps(reader_cell(argv[1], argv[2])))
        return 0
    if argv and argv[0] == "_master":
        print(json.dumps(master_cell(argv[1], int(argv[2]), argv[3], float(argv[4]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="replay")
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument("--algorithms", default=",".join(VARIANTS))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-cpu", type=float, default=600.0, help="CPU seconds per replay cell before it stops")
    ap.add_argument("--stores", default="0,1000,10000,100000", help="warm store sizes of the fits part")
    ap.add_argument("--fit-algorithms", default="default,swift")
    ap.add_argument("--ranks", default="64,256,1024")
    ap.add_argument("--master-studies", default=",".join(MASTER_STUDIES))
    ap.add_argument("--trials", type=int, default=100_000, help="configurations of the journal part's study")
    ap.add_argument("--journal-dir", default=None, help="keep (or reuse) the journal part's study in this folder")
    ap.add_argument("--mpi-ranks", default="16,64,128")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = ["# Campaign scale (benchmarks/scale.py)", ""]
    if "replay" in parts:
        rows = []
        for variant in args.algorithms.split(","):
            for n in sizes if VARIANTS[variant][2] else [None]:
                row = run_cell(variant, n, args.workers, args.max_cpu)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        lines += replay_section(rows, args.workers)
    if "fits" in parts:
        rows = []
        for variant in args.fit_algorithms.split(","):
            for store in [int(s) for s in args.stores.split(",")]:
                n = sizes[0] if VARIANTS[variant][2] else None
                rows.append(run_cell(variant, n, args.workers, args.max_cpu, store))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        lines += fits_section(rows)
    if "master" in parts:
        rows = []
        for name in args.master_studies.split(","):
            for ranks in [int(r) for r in args.ranks.split(",")]:
                row = run_master_cell(name, ranks, args.max_cpu)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        lines += master_section(rows)
    if "mpiexec" in parts:
        rows = []
        for name in args.master_studies.split(","):
            for ranks in [int(r) for r in args.mpi_ranks.split(",")]:
                rows.append(mpiexec_cell(name, ranks))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        lines += mpiexec_section(rows)
    if "journal" in parts:
        lines += journal_part(args.trials, args.journal_dir)
    print("\n".join(lines))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "scale.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
