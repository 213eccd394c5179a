"""hpoq under a real Slurm: ``srun`` launch, ``sbatch`` of the generic job script, preemption with requeue, time limit.

Run against the single-node Slurm of ``bash jobs/local_slurm.sh up`` (``.ci/run`` starts it on CI); skipped
where no Slurm answers. The time-limit job needs Slurm's one-minute minimum and its 30-second limit check, so
it is submitted at the first Slurm test of this module and checked by the last one: its wait overlaps the others.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import mpi_env, mpiexec, slurm_env, slurm_skip_reason

from hpoq.runtime.mpi_guard import launch_mismatch
from hpoq.schedulers.brackets import hyperband_budget
from hpoq.study.build import build_scheduler, load_replay_table
from hpoq.study.spec import load_study

REPO = Path(__file__).resolve().parents[1]
TABLE = str(REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz")
SCRIPT = str(REPO / "jobs" / "slurm_generic.sbatch")
R, ETA = 9, 3
slurm = pytest.mark.slurm
# where a Slurm must be there (.ci/run sets HPOQ_REQUIRE_SLURM=1 after bringing it up) the tests run and fail
needs_slurm = pytest.mark.skipif(
    slurm_skip_reason() is not None and os.environ.get("HPOQ_REQUIRE_SLURM") != "1", reason=str(slurm_skip_reason())
)

# A user-style trainer plugin: the table trainer, `slow_s` seconds per epoch while the file `flag` exists.
SLOW_PLUGIN = textwrap.dedent("""
    import os, time
    from hpoq.trainers.table import TableTrainer

    class SlowWhileFlag(TableTrainer):
        def __init__(self, table, flag, slow_s, **kw):
            super().__init__(table=table, **kw)
            self.flag, self.slow_s = flag, float(slow_s)

        def train(self, config, start_epoch, end_epoch, checkpoint_dir, comm=None):
            if os.path.exists(self.flag):
                time.sleep(self.slow_s * (end_epoch - start_epoch))
            return super().train(config, start_epoch, end_epoch, checkpoint_dir, comm)
""")

# A plugin whose train() raises a BaseException on some rows: it escapes the worker's `except Exception`. Only
# world rank 1 raises: the other ranks then wait in MPI, and only the abort ends the job (two ranks escaping at
# once could end it without an abort line, by the launcher's own clean-up).
ESCAPING_PLUGIN = textwrap.dedent("""
    from mpi4py import MPI
    from hpoq.trainers.table import TableTrainer

    class Escape(BaseException):
        pass

    class EscapingTrainer(TableTrainer):
        def train(self, config, start_epoch, end_epoch, checkpoint_dir, comm=None):
            if int(config["_row"]) % 3 == 0 and MPI.COMM_WORLD.Get_rank() == 1:
                raise Escape(f"row {config['_row']}: not an Exception, so no worker handler catches it")
            return super().train(config, start_epoch, end_epoch, checkpoint_dir, comm)
""")


# -- helpers ---------------------------------------------------------------------------------------------------
def study_file(tmp_path, name: str, trainer: dict | None = None, **over) -> str:
    doc = {
        "name": name,
        "seed": 4,
        "algorithm": {"name": "hyperband", "R": R, "eta": ETA},
        "trainer": trainer or {"name": "table", "params": {"table": TABLE}},
        "space": "table",
        "poll_interval": 0.01,
    }
    doc.update(over)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def env_with(*paths, report: bool = True) -> dict:
    env = slurm_env()
    env["HPOQ_REPORT"] = "1" if report else "0"  # the job script's HTML report: checked once, skipped elsewhere
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    env["HPOQ_VENV"] = str(Path(sys.executable).parent.parent)
    env["PYTHONFAULTHANDLER"] = "1"  # a hung rank's stack lands in the job log (wait_job sends SIGABRT)
    return env


def journal(out) -> list[dict]:
    return [json.loads(line) for line in Path(out, "journal.jsonl").read_text().splitlines() if line.strip()]


def result_units(records) -> list[tuple]:
    return [(r["trial_id"], r["start_epoch"], r["end_epoch"]) for r in records if r["type"] == "result"]


def n_results(out) -> int:
    path = Path(out, "journal.jsonl")
    return path.read_text().count('"type":"result"') if path.exists() else 0


def sequential_run(path: str) -> tuple[dict, set]:
    """The study driven in-process, uninterrupted, by one worker: (best, set of finished units)."""
    spec = load_study(path)
    table = load_replay_table(spec)
    scheduler = build_scheduler(spec, table)
    curves = table.minimized()
    units = set()
    while not scheduler.finished:
        unit = scheduler.suggest()
        assert unit is not None
        units.add((unit.trial_id, unit.start_epoch, unit.end_epoch))
        scheduler.on_result(unit.trial_id, curves[unit.config["_row"], unit.start_epoch : unit.end_epoch].tolist())
    return scheduler.best(), units


def check_same_as_uninterrupted(out, path: str) -> list[dict]:
    """Finished, with the uninterrupted run's best and its set of finished units, none trained twice."""
    best_ref, units_ref = sequential_run(path)
    records = journal(out)
    assert records[-1]["type"] == "end" and records[-1]["status"] == "finished", records[-1]
    best = yaml.safe_load(Path(out, "best.yaml").read_text())
    assert best["trial_id"] == best_ref["trial_id"] and best["value"] == pytest.approx(best_ref["value"])
    units = result_units(records)
    assert len(units) == len(set(units)), "a finished unit was trained twice"
    assert set(units) == units_ref
    assert sum(e - s for _, s, e in units) == hyperband_budget(R, ETA)[1]
    return records


def sbatch(args: list[str], env: dict) -> str:
    proc = subprocess.run(
        ["sbatch", "--parsable", *args], check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def job_info(job: str, env: dict) -> dict:
    proc = subprocess.run(
        ["scontrol", "-o", "show", "job", job], check=False, capture_output=True, text=True, env=env, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return dict(kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv)


def wait_job(job: str, env: dict, states: set, timeout: float, log=None) -> dict:
    """Poll until the job's state is in ``states``; fails with the job's output after ``timeout`` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        info = job_info(job, env)
        if info["JobState"] in states:
            return info
        time.sleep(0.5)
    # faulthandler (PYTHONFAULTHANDLER=1) writes every hung rank's stack into the job log on SIGABRT
    subprocess.run(["scancel", "--signal=ABRT", job], check=False, env=env, timeout=30)
    time.sleep(3)
    subprocess.run(["scancel", job], check=False, env=env, timeout=30)
    text = Path(log).read_text() if log and Path(log).exists() else ""
    raise AssertionError(f"job {job} still {info['JobState']} after {timeout} s\n{text}")


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- the time-limited job, submitted early ----------------------------------------------------------------------
class TimeLimitJob:
    """A study slowed down by a flag file, under ``--time=1`` and no USR1 warning, so it hits its time limit."""

    def __init__(self, tmp: Path):
        (tmp / "slow_plugin.py").write_text(SLOW_PLUGIN)
        self.flag = tmp / "slow"
        self.flag.touch()
        # 69 epochs x 3 s over 2 trial groups: over 100 s, longer than the limit (60 s + up to 30 s check period)
        trainer = {
            "name": "slow_plugin:SlowWhileFlag",
            "params": {"table": TABLE, "flag": str(self.flag), "slow_s": 3.0},
        }
        self.study = study_file(tmp, "timelimit", trainer)
        self.reference = study_file(tmp, "reference")  # the same study on the plain table trainer: same units
        self.out = tmp / "out"
        self.log = tmp / "job.out"
        self.env = env_with(tmp, report=False)
        self.args = ["-p", "cpu", "-n", "3", "-o", str(self.log), SCRIPT, self.study, str(self.out)]
        self.submitted = time.monotonic()
        self.job = sbatch(["--time=1", "--signal=B:USR1@0", *self.args], self.env)


@pytest.fixture(scope="module")
def timelimit_job(tmp_path_factory):
    job = TimeLimitJob(tmp_path_factory.mktemp("timelimit"))
    yield job
    subprocess.run(["scancel", job.job], check=False, env=job.env, timeout=30)


@pytest.fixture(autouse=True)
def _start_timelimit_job_first(request):
    """Submit the minute-long time-limit job at the first Slurm test, so its wait overlaps the others."""
    if not request.node.get_closest_marker("slurm"):
        return
    if slurm_skip_reason() is not None:  # only reached where HPOQ_REQUIRE_SLURM=1
        pytest.fail(f"HPOQ_REQUIRE_SLURM=1 but {slurm_skip_reason()}")
    request.getfixturevalue("timelimit_job")


# -- launch check (no Slurm needed) ------------------------------------------------------------------------------
def test_launch_mismatch_names_the_cause_and_stays_quiet_on_good_launches():
    none = {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4"}
    msg = launch_mismatch(1, none)
    assert "4 tasks" in msg and "--mpi=pmi2" in msg and "--mpi=pmix" in msg and "\n" not in msg
    assert "srun --mpi=pmix started" in launch_mismatch(1, {**none, "SLURM_MPI_TYPE": "pmix"})
    assert launch_mismatch(4, {**none, "PMI_SIZE": "4"}) is None  # srun --mpi=pmi2: one world of 4
    assert launch_mismatch(1, {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1", "SLURM_NTASKS": "1"}) is None
    assert launch_mismatch(1, {}) is None  # a plain python process
    # mpiexec inside an allocation: hydra's PMI_SIZE wins over the job's SLURM_NTASKS
    assert launch_mismatch(1, {"PMI_SIZE": "1", "SLURM_NTASKS": "5"}) is None
    assert "OMPI_COMM_WORLD_SIZE=3" in launch_mismatch(1, {"OMPI_COMM_WORLD_SIZE": "3"})
    # hpoq started in the batch shell instead of under srun
    assert "not one of them" in launch_mismatch(1, {"SLURM_NTASKS": "5", "SLURM_JOB_ID": "7"})


@pytest.mark.mpi
def test_without_slurm_mpiexec_ranks_abort_and_a_fake_srun_none_launch_is_refused(tmp_path):
    """The guard where no Slurm runs: mpiexec without -m mpi4py aborts on an escaping exception, and two processes
    with the environment `srun -n 2 --mpi=none` gives its tasks (each a singleton MPI world) are refused."""
    (tmp_path / "escaping_plugin.py").write_text(ESCAPING_PLUGIN)
    trainer = {"name": "escaping_plugin:EscapingTrainer", "params": {"table": TABLE, "sleep": 0.01}}
    env = env_with(tmp_path)
    proc = subprocess.run(
        [
            mpiexec(),
            "-n",
            "3",
            sys.executable,
            "-m",
            "hpoq.main",
            "run",
            study_file(tmp_path, "s", trainer),
            "--out",
            str(tmp_path / "out"),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=240,
    )
    # the job ended (the other ranks wait in MPI until the abort) with the abort status of an exception; the
    # "Abort(1) on node 1" line itself is not asserted: mpiexec drops it now and then (its output forwarding
    # ends with the job; 2 runs in 8 under load)
    assert proc.returncode == 1 and "not an Exception" in proc.stderr, proc.stderr
    tasks = []
    for rank in range(2):
        task_env = {
            **mpi_env(),
            "SLURM_JOB_ID": "1",
            "SLURM_STEP_ID": "0",
            "SLURM_STEP_NUM_TASKS": "2",
            "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(rank),
        }
        tasks.append(
            subprocess.Popen(
                [sys.executable, "-m", "hpoq.main", "run", study_file(tmp_path, "t"), "--out", str(tmp_path / "none")],
                stderr=subprocess.PIPE,
                text=True,
                env=task_env,
                cwd=REPO,
            )
        )
    errs = [t.communicate(timeout=120)[1] for t in tasks]
    assert [t.returncode for t in tasks] == [2, 2]
    assert errs[0].count("hpoq: error:") == 1 and "2 tasks" in errs[0] and errs[1] == "", errs
    assert not (tmp_path / "none").exists()


def _dead_controller_conf(tmp_path) -> Path:
    """A slurm.conf whose controller port nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        f"ClusterName=dead\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={port}\n"
        "NodeName=n1 CPUs=1 State=UNKNOWN\nPartitionName=p Nodes=n1 Default=YES\n"
    )
    return conf


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="no Slurm client commands to leave without a controller")
def test_slurm_tests_skip_without_a_controller_and_fail_only_where_one_is_required(tmp_path):
    """Client commands installed, no controller answering: the Slurm tests skip, naming the cause; with
    HPOQ_REQUIRE_SLURM=1 (CI once its Slurm is up) they fail instead."""
    env = mpi_env()
    env["SLURM_CONF"] = str(_dead_controller_conf(tmp_path))
    env.pop("HPOQ_REQUIRE_SLURM", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "slurm", "-p", "no:cacheprovider", __file__]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " skipped" in proc.stdout and "error" not in proc.stdout.lower() and "passed" not in proc.stdout
    assert "no Slurm controller answers" in proc.stdout
    env["HPOQ_REQUIRE_SLURM"] = "1"
    proc = subprocess.run([*cmd, "-x"], capture_output=True, text=True, env=env, cwd=REPO, timeout=240)
    assert proc.returncode == 1 and "HPOQ_REQUIRE_SLURM=1 but no Slurm controller answers" in proc.stdout


# -- Slurm ------------------------------------------------------------------------------------------------------
@slurm
@needs_slurm
def test_srun_gives_the_same_best_as_mpiexec(tmp_path):
    """The design card's launch, `srun -n 4 python -m hpoq.main run` (no -m mpi4py), against mpiexec. One trial
    group of 3 ranks and ``fit_lag: 4``: with several groups the order in which results arrive, and with the
    runtime's ``fit_lag: null`` the moment a fit is done, steer default's decisions, so two runs need not agree
    whatever the launcher."""
    env = env_with()
    doc = yaml.safe_load((REPO / "examples" / "mlpf-table.yaml").read_text())
    doc["ranks_per_trial"] = 3
    doc["algorithm"]["params"] = {"fit_lag": 4}
    doc["trainer"]["params"]["table"] = TABLE
    study = str(tmp_path / "mlpf-table.yaml")
    Path(study).write_text(yaml.safe_dump(doc))
    via_srun = subprocess.run(
        ["srun", "-n", "4", sys.executable, "-m", "hpoq.main", "run", study, "--out", str(tmp_path / "srun")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert via_srun.returncode == 0, via_srun.stderr
    via_mpiexec = subprocess.run(
        [mpiexec(), "-n", "4", sys.executable, "-m", "hpoq.main", "run", study, "--out", str(tmp_path / "mpiexec")],
        check=False,
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=120,
    )
    assert via_mpiexec.returncode == 0, via_mpiexec.stderr
    header = journal(tmp_path / "srun")[0]
    assert header["world_size"] == 4 and header["groups"] == [[1, 2, 3]]  # one world, not 4 worlds of 1
    a, b = (yaml.safe_load((tmp_path / d / "best.yaml").read_text()) for d in ("srun", "mpiexec"))
    assert (a["trial_id"], a["value"], a["config"]) == (b["trial_id"], b["value"], b["config"])


@slurm
@needs_slurm
def test_srun_with_the_wrong_mpi_type_is_refused_in_one_line(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            "srun",
            "-n",
            "4",
            "--mpi=none",
            sys.executable,
            "-m",
            "hpoq.main",
            "run",
            study_file(tmp_path, "s"),
            "--out",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env_with(),
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hpoq: error:")]
    assert len(errors) == 1 and "4 tasks" in errors[0] and "--mpi=pmi2" in errors[0], proc.stderr
    assert not out.exists()  # nothing written


@slurm
@needs_slurm
def test_an_uncaught_exception_on_one_rank_ends_the_srun_job(tmp_path):
    """Without -m mpi4py: the failing rank aborts COMM_WORLD instead of leaving the master waiting forever."""
    (tmp_path / "escaping_plugin.py").write_text(ESCAPING_PLUGIN)
    trainer = {"name": "escaping_plugin:EscapingTrainer", "params": {"table": TABLE, "sleep": 0.01}}
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            "srun",
            "-n",
            "3",
            sys.executable,
            "-m",
            "hpoq.main",
            "run",
            study_file(tmp_path, "s", trainer),
            "--out",
            str(tmp_path / "out"),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env_with(tmp_path),
        cwd=REPO,
        timeout=240,
    )
    assert proc.returncode != 0
    assert "not an Exception" in proc.stderr and "MPI_Abort" in proc.stderr, proc.stderr
    assert time.monotonic() - t0 < 200  # about 4 s; without the abort the master waits forever


@slurm
@needs_slurm
def test_sbatch_of_the_generic_script_on_a_cpu_partition(tmp_path):
    path = study_file(tmp_path, "cpu")
    out, log = tmp_path / "out", tmp_path / "job.out"
    env = env_with()
    job = sbatch(["-p", "cpu", "-n", "3", "--time=10", "-o", str(log), SCRIPT, path, str(out)], env)
    info = wait_job(job, env, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 240, log)
    assert info["JobState"] == "COMPLETED", log.read_text()
    assert info["Partition"] == "cpu" and info["NumTasks"] == "3"
    records = check_same_as_uninterrupted(out, path)
    assert records[0]["world_size"] == 3
    assert (out / "report.html").exists()  # the script writes the report after the run


@slurm
@needs_slurm
def test_usr1_preemption_requeues_and_resumes_to_the_uninterrupted_result(tmp_path):
    """`scancel --signal=USR1 --full` mid-study: USR1 reaches the ranks twice (slurmstepd, and the batch shell's
    trap through srun), which is one stop: running units finish, snapshot, requeue + StartTime=now, resume."""
    trainer = {"name": "table", "params": {"table": TABLE, "sleep": 0.2}}  # about 7 s: USR1 lands mid-study
    path = study_file(tmp_path, "preempt", trainer)
    out, log = tmp_path / "out", tmp_path / "job.out"
    env = env_with(report=False)
    job = sbatch(["-p", "cpu", "-n", "3", "--time=10", "-o", str(log), SCRIPT, path, str(out)], env)
    wait_for(lambda: n_results(out) >= 6, "6 finished units before the signal", timeout=240)
    done_before = set(result_units(journal(out)))
    subprocess.run(["scancel", "--full", "--signal=USR1", job], check=True, env=env, timeout=30)
    info = wait_job(job, env, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 240, log)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", log.read_text()
    assert "second stop signal" not in log.read_text() and "again within" not in log.read_text()
    records = check_same_as_uninterrupted(out, path)
    # started again at once, not after Slurm's hold of cred_expire + 1 = 121 s (the helper job's StartTime=now)
    first_end = next(r for r in records if r["type"] == "end")["t"]
    restarted = datetime.strptime(info["StartTime"], "%Y-%m-%dT%H:%M:%S").timestamp()
    assert restarted - first_end < 100, (info["StartTime"], first_end)
    stop = next(i for i, r in enumerate(records) if r["type"] == "stop")
    assert records[stop]["signal"] == "SIGUSR1"
    first_run = records[:stop]
    assert done_before <= set(result_units(first_run))  # no unit finished before the signal was lost
    end_1 = next(r for r in records if r["type"] == "end")
    assert end_1["status"] == "interrupted"
    before_end = records[: records.index(end_1)]
    units = {r["unit_id"] for r in before_end if r["type"] == "unit"}
    assert units == {r["unit_id"] for r in before_end if r["type"] in ("result", "failure")}  # running units finished
    assert "abort" not in end_1 and [r["signal"] for r in before_end if r["type"] == "stop"] == ["SIGUSR1"]
    resume = next(r for r in records if r["type"] == "resume")
    assert resume["from_snapshot"] is not None and resume["replayed"] == 0
    text = log.read_text()
    assert "requeueing job" in text and "restart 1" in text
    assert "continue with: run --resume" not in text and "the job script (slurm_generic.sbatch) says next" in text


@slurm
@needs_slurm
@pytest.mark.timeout(600)
def test_a_job_that_hits_its_time_limit_resumes_on_a_second_submission(timelimit_job):
    job = timelimit_job
    info = wait_job(job.job, job.env, {"TIMEOUT", "COMPLETED", "FAILED", "CANCELLED"}, 200, job.log)
    assert info["JobState"] == "TIMEOUT" and info["Restarts"] == "0", job.log.read_text()
    first = journal(job.out)
    done_before = result_units(first)
    assert done_before, "no unit finished before the time limit"
    assert not any(r["type"] == "end" and r["status"] == "finished" for r in first)
    assert any(r["type"] == "stop" and r["signal"] == "SIGTERM" for r in first)  # the limit's SIGTERM reached it
    assert "requeueing" not in job.log.read_text()  # TERM stops without a requeue: resubmitting is the user's call
    # no line of the script's is asserted here: at the time limit Slurm SIGKILLs the script KillWait seconds after
    # its SIGTERM, and a unit still finishing (this job's are slow on purpose) outlasts that
    assert "continue with: run --resume" not in job.log.read_text()  # the script's line says how, not the master
    job.flag.unlink()  # the second submission trains at table speed
    second = sbatch(["--time=10", *job.args], job.env)
    info = wait_job(second, job.env, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 240, job.log)
    assert info["JobState"] == "COMPLETED", job.log.read_text()
    records = check_same_as_uninterrupted(job.out, job.reference)
    assert result_units(records)[: len(done_before)] == done_before  # nothing finished before the limit redone
    assert any(r["type"] == "resume" for r in records) and "restart 0) on cpu: run --resume" in job.log.read_text()


@slurm
@needs_slurm
def test_scontrol_requeue_is_reported_as_a_requeue_and_the_job_resumes_by_itself(tmp_path):
    """`scontrol requeue JOB`: Slurm sends TERM and requeues; the log says so (not "resume it with the same
    sbatch command", which would put a second job on the directory), and the requeued job finishes the study."""
    trainer = {"name": "table", "params": {"table": TABLE, "sleep": 0.2}}
    path = study_file(tmp_path, "requeued", trainer)
    out, log = tmp_path / "out", tmp_path / "job.out"
    env = env_with(report=False)
    job = sbatch(["-p", "cpu", "-n", "3", "--time=10", "-o", str(log), SCRIPT, path, str(out)], env)
    wait_for(lambda: n_results(out) >= 4, "4 finished units before the requeue", timeout=240)
    subprocess.run(["scontrol", "requeue", job], check=True, env=env, timeout=30)
    info = wait_job(job, env, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 240, log)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", text
    assert f"hpoq: Slurm requeued job {job}" in text and "do not resubmit" in text, text
    assert "resume it with the same sbatch command" not in text
    assert "continue with: run --resume" not in text and "the job script (slurm_generic.sbatch) says next" in text
    records = check_same_as_uninterrupted(out, path)
    assert any(r["type"] == "stop" and r["signal"] == "SIGTERM" for r in records)


# -- GPUs on a mocked 4-GPU node (tests/fake_cuda.py): srun, with and without jobs/gpu_bind.sh --------------------
FAKE_CUDA = str(REPO / "tests" / "fake_cuda.py")
GPU_CHECK = str(REPO / "benchmarks" / "gpu_check.py")


def fake_gpu_env(**extra) -> dict:
    pytest.importorskip("torch", reason="the GPU path needs torch (pip install 'hpoq[mlpf]')")
    env = env_with(REPO / "tests" / "plugins")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update(HPOQ_FAKE_GPUS="4", **extra)
    return env


@slurm
@needs_slurm
@pytest.mark.parametrize("bind", [True], ids=["srun + gpu_bind.sh"])
def test_srun_gives_every_worker_rank_its_own_gpu_for_1_2_4_ranks_per_trial(bind, tmp_path):
    """Without gpu_bind.sh the node split is the one tests/test_gpu.py checks under mpiexec for 1, 2, 4 ranks
    per trial, and srun's study below (2 per trial); with it, each rank sees one GPU, its own."""
    out = tmp_path / "map.json"
    env = fake_gpu_env(**({"CUDA_VISIBLE_DEVICES": "0,1,2,3"} if bind else {}))
    wrap = ["bash", str(REPO / "jobs" / "gpu_bind.sh")] if bind else []
    cmd = ["srun", "-n", "5", "--kill-on-bad-exit=1", *wrap, sys.executable, "-m", "mpi4py", FAKE_CUDA, "--script"]
    cmd.append(GPU_CHECK)
    proc = subprocess.run(
        [*cmd, "--probe-device-map", str(out)], capture_output=True, text=True, env=env, cwd=REPO, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    assert sorted({r["rpt"] for r in records}) == [1, 2, 4] and not [r for r in records if "error" in r]
    for rpt in (1, 2, 4):
        workers = [r for r in records if r["rpt"] == rpt and r["group"] is not None]
        assert len(workers) == 4
        master = next(r for r in records if r["rpt"] == rpt and r["rank"] == 0)
        assert master["index"] is None
        if bind:  # each rank sees only its own GPU: cuda:0, a different one for each
            assert master["visible"] == "" and {r["device"] for r in workers} == {"cuda:0"}
            assert sorted(r["visible"] for r in workers) == ["0", "1", "2", "3"]
        else:
            assert sorted(r["device"] for r in workers) == [f"cuda:{i}" for i in range(4)]


@slurm
@needs_slurm
def test_a_study_under_srun_with_a_memory_request_trains_each_worker_on_its_own_gpu(tmp_path):
    """`srun --mem=1G` (the local Slurm declares the machine's RealMemory) of a study on a mocked 4-GPU node,
    2 ranks per trial: every worker rank of the study on its own GPU, NCCL, bf16."""
    record = tmp_path / "probe.jsonl"
    trainer = {"name": "gpu_probe:GpuProbe", "params": {"table": TABLE, "record": str(record)}}
    path = study_file(tmp_path, "gpus", trainer, ranks_per_trial=2, algorithm={"name": "hyperband", "R": 3, "eta": 3})
    cmd = ["srun", "-n", "5", "--mem=1G", sys.executable, "-m", "mpi4py", FAKE_CUDA, "run", path]
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path / "out")], capture_output=True, text=True, env=fake_gpu_env(), timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    device_of = {}
    for r in lines:
        device_of.setdefault(r["rank"], set()).add(r["device"])
    assert sorted(device_of) == [1, 2, 3, 4] and all(len(v) == 1 for v in device_of.values())
    assert sorted(next(iter(v)) for v in device_of.values()) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert {(r["backend"], r["dist_backend"], r["bf16"]) for r in lines} == {("torch", "nccl", True)}


@slurm
@needs_slurm
def test_gpu_bind_refusing_a_task_ends_the_srun_step_in_one_line_per_task(tmp_path):
    env = fake_gpu_env(CUDA_VISIBLE_DEVICES="0,1,2")  # 3 GPUs for 4 worker tasks
    cmd = ["srun", "-n", "5", "--kill-on-bad-exit=1", "bash", str(REPO / "jobs" / "gpu_bind.sh")]
    cmd += [sys.executable, "-m", "mpi4py", FAKE_CUDA, "--script", GPU_CHECK, "--probe-device-map", str(tmp_path / "m")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=180)
    errors = [x for x in proc.stderr.splitlines() if "hpoq: error: gpu_bind.sh" in x]
    assert proc.returncode != 0 and len(errors) == 1 and "task 4 is worker 4" in errors[0], proc.stderr
    assert not (tmp_path / "m").exists()
