"""The MPI runtime under real ``mpiexec`` ranks: studies, trial groups, failures, resume, signals."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import mpi_env, run_mpi, start_mpi

from hpoq.curves.store import read_store
from hpoq.schedulers.brackets import hyperband_budget
from hpoq.study.build import build_scheduler, load_replay_table
from hpoq.study.spec import load_study

pytestmark = pytest.mark.mpi

REPO = Path(__file__).resolve().parents[1]
TABLE = str(REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz")
R, ETA = 9, 3


def study_file(tmp_path, name="s", **over) -> str:
    doc = {
        "name": name,
        "seed": 4,
        "algorithm": {"name": "hyperband", "R": R, "eta": ETA},
        "trainer": {"name": "table", "params": {"table": TABLE}},
        "space": "table",
        "poll_interval": 0.005,
    }
    doc.update(over)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


run_mpi = functools.partial(run_mpi, timeout=90)  # a whole study under mpiexec


def journal(out) -> list[dict]:
    return [json.loads(line) for line in Path(out, "journal.jsonl").read_text().splitlines() if line.strip()]


def sequential_best(path: str) -> dict:
    """The same study driven in-process by one worker: the reference answer."""
    spec = load_study(path)
    table = load_replay_table(spec)
    scheduler = build_scheduler(spec, table)
    curves = table.minimized()
    while not scheduler.finished:
        unit = scheduler.suggest()
        assert unit is not None
        scheduler.on_result(unit.trial_id, curves[unit.config["_row"], unit.start_epoch : unit.end_epoch].tolist())
    return scheduler.best()


def result_units(records) -> list[tuple]:
    return [(r["trial_id"], r["start_epoch"], r["end_epoch"]) for r in records if r["type"] == "result"]


def check_complete(out, best_ref: dict) -> list[dict]:
    """A finished study: end record, the reference best, every epoch of plain Hyperband trained once."""
    records = journal(out)
    assert records[-1]["type"] == "end" and records[-1]["status"] == "finished"
    best = yaml.safe_load(Path(out, "best.yaml").read_text())
    assert best["trial_id"] == best_ref["trial_id"] and best["value"] == pytest.approx(best_ref["value"])
    units = result_units(records)
    assert len(units) == len(set(units)), "a finished unit was trained twice"
    assert sum(e - s for _, s, e in units) == hyperband_budget(R, ETA)[1]
    return records


def wait_for(predicate, proc, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"mpiexec ended early: {proc.returncode}\n{proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def n_results(out) -> int:
    path = Path(out, "journal.jsonl")
    return path.read_text().count('"type":"result"') if path.exists() else 0


def test_full_small_study(tmp_path):
    path = study_file(tmp_path)
    out = tmp_path / "out"
    proc = run_mpi(4, "run", path, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    records = check_complete(out, sequential_best(path))
    header = records[0]
    assert header["groups"] == [[1], [2], [3]] and header["study"]["seed"] == 4 and header["versions"]["hpoq"]
    end = records[-1]  # the master's own CPU and its longest pass; hyperband fits no model on the fit thread
    assert 0 < end["master_cpu_s"] and 0 < end["max_dispatch_gap_s"] < end["t"] - header["t"]
    assert end["fit_cpu_s"] == end["fit_wait_s"] == 0 and end["fit_jobs"] == end["fit_waits"] == 0
    configs = [r for r in records if r["type"] == "config"]
    units = [r for r in records if r["type"] == "unit"]
    assert {u["group"] for u in units} == {0, 1, 2}  # every group trained
    with open(out / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(configs) == 9 + 5 + 3
    assert {r["status"] for r in rows} <= {"done", "pruned"}
    store = read_store(str(out / "curves.h5"))
    assert store.n_rows == len(configs) and store.metric == "loss"
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert sorted(os.listdir(out / "checkpoints")) == [f"trial-{best['trial_id']:05d}"]  # the rest were deleted
    # only rank 0 speaks: nothing on stdout, no per-rank noise on stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_two_ranks_per_trial_and_an_idle_rank(tmp_path):
    path = study_file(tmp_path, ranks_per_trial=2)
    out = tmp_path / "out"
    proc = run_mpi(4, "run", path, "--out", str(out))  # master + one group {1, 2} + rank 3 left over
    assert proc.returncode == 0, proc.stderr
    records = check_complete(out, sequential_best(path))
    assert records[0]["groups"] == [[1, 2]]
    assert all(r["ranks"] == [1, 2] for r in records if r["type"] == "unit")


def test_more_trial_groups_than_configurations(tmp_path):
    path = study_file(tmp_path, algorithm={"name": "hyperband", "R": 1, "eta": 3})  # one bracket, one config
    out = tmp_path / "out"
    proc = run_mpi(5, "run", path, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    records = journal(out)
    assert records[-1]["status"] == "finished" and len([r for r in records if r["type"] == "unit"]) == 1


def test_failing_trainer_plugin(tmp_path):
    trainer = {
        "name": "tests.plugins.flaky:FlakyTableTrainer",
        "params": {"table": TABLE, "raise_mod": 7, "nan_mod": 11, "oom_mod": 13, "flaky_mod": 5},
    }
    path = study_file(tmp_path, trainer=trainer, seed=0)  # samples rows of every failure kind
    out = tmp_path / "out"
    proc = run_mpi(4, "run", path, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    records = journal(out)
    assert records[-1]["status"] == "finished"
    rows = {r["trial_id"]: r["config"]["_row"] for r in records if r["type"] == "config"}
    failures: dict[int, list] = {}
    for r in records:
        if r["type"] == "failure":
            failures.setdefault(r["trial_id"], []).append(r)
    kinds = {}
    for tid, fs in failures.items():
        row = rows[tid]
        permanent = row % 7 == 0 or row % 11 == 0 or row % 13 == 0
        if permanent:  # tried twice, then FAILED, never a third time
            assert [(f["attempt"], f["final"]) for f in fs] == [(0, False), (1, True)], fs
        else:  # transient: the first unit fails once, its retry succeeds
            assert row % 5 == 0 and [(f["attempt"], f["final"]) for f in fs] == [(0, False)], fs
        kinds.setdefault(fs[-1]["kind"], []).append(fs[-1]["reason"])
    assert {"trainer", "non-finite", "oom"} <= set(kinds), kinds
    assert any("boom on row" in r for r in kinds["trainer"]) and any("transient" in r for r in kinds["trainer"])
    assert all("non-finite metric nan" in r for r in kinds["non-finite"])
    assert all(r.startswith("out of memory") for r in kinds["oom"])
    with open(out / "trials.csv") as fh:
        status = {int(r["trial_id"]): (r["status"], r["reason"]) for r in csv.DictReader(fh)}
    for tid, row in rows.items():
        if row % 7 == 0 or row % 11 == 0 or row % 13 == 0:
            assert status[tid][0] == "failed" and status[tid][1]
        else:
            assert status[tid][0] in ("done", "pruned")
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["trial_id"] is not None and rows[best["trial_id"]] % 7 and rows[best["trial_id"]] % 11


def test_resume_after_sigkill_of_the_master(tmp_path):
    path = study_file(tmp_path, trainer={"name": "table", "params": {"table": TABLE, "sleep": 0.03}})
    out = tmp_path / "out"
    proc = start_mpi(4, "run", path, "--out", str(out))
    try:
        wait_for(lambda: n_results(out) >= 8, proc)
        pid = journal(out)[0]["pid"]
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    before = journal(out)
    before_text = (out / "journal.jsonl").read_text()
    assert before[-1]["type"] != "end"
    done_before = result_units(before)
    proc = run_mpi(4, "run", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    records = check_complete(out, sequential_best(path))
    resume = next(r for r in records if r["type"] == "resume")
    assert resume["from_snapshot"] is None and resume["replayed"] > 0
    assert result_units(records)[: len(done_before)] == done_before  # nothing finished was lost or redone
    # the units in flight at the kill count as one failed attempt each (the job died: the journal cannot
    # tell a killed master from a rank that took the job down); their isolated re-runs found their start checkpoints
    failures = [r for r in records if r["type"] == "failure"]
    assert sorted(r["unit_id"] for r in failures) == sorted(resume["lost_units"]) == sorted(resume["counted_lost"])
    assert all(r["kind"] == "lost" and not r["final"] for r in failures)
    # the master polls and sleeps: its CPU time is a small share of the time the workers trained
    resumed = records[next(i for i, r in enumerate(records) if r["type"] == "resume") :]
    assert records[-1]["master_cpu_s"] < 0.25 * (records[-1]["t"] - resumed[0]["t"])
    # a journal that does not replay (here: another seed in its header) is refused, nothing appended
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    lines = before_text.splitlines(keepends=True)
    header = json.loads(lines[0])
    header["study"]["seed"] += 1
    (tampered / "journal.jsonl").write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    proc = run_mpi(3, "run", "--resume", str(tampered))
    assert proc.returncode == 2 and "diverged" in proc.stderr
    assert (tampered / "journal.jsonl").read_text().count("\n") == len(lines)
    # a second resume of a finished study changes nothing
    proc = run_mpi(3, "run", "--resume", str(out))
    assert proc.returncode == 0 and "already finished" in proc.stderr
    assert journal(out) == records


@pytest.mark.parametrize("sig, target", [("SIGTERM", "master"), ("SIGUSR1", "mpiexec")])
def test_stop_signal_leaves_a_resumable_directory(tmp_path, sig, target):
    """SIGTERM to the master; SIGUSR1 (Slurm's pre-timeout signal) to mpiexec, which forwards it to every rank."""
    path = study_file(tmp_path, trainer={"name": "table", "params": {"table": TABLE, "sleep": 0.03}})
    out = tmp_path / "out"
    proc = start_mpi(4, "run", path, "--out", str(out))
    try:
        wait_for(lambda: n_results(out) >= 6, proc)
        os.kill(journal(out)[0]["pid"] if target == "master" else proc.pid, getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "run --resume" in err
    records = journal(out)
    assert [r["type"] for r in records[-3:]][1:] == ["snapshot", "end"] and records[-1]["status"] == "interrupted"
    assert any(r["type"] == "stop" and r["signal"] == sig for r in records)
    assert (out / "best.yaml").exists() and (out / "trials.csv").exists()
    units = {r["unit_id"] for r in records if r["type"] == "unit"}
    answered = {r["unit_id"] for r in records if r["type"] in ("result", "failure")}
    assert units == answered  # the running units were allowed to finish
    proc = run_mpi(3, "run", "--resume", str(out))  # fewer ranks than before is fine
    assert proc.returncode == 0, proc.stderr
    records = check_complete(out, sequential_best(path))
    resume = next(r for r in records if r["type"] == "resume")
    assert resume["from_snapshot"] is not None and resume["replayed"] == 0


def test_bad_study_rank_count_and_existing_journal_exit_2_and_write_nothing(tmp_path):
    bad = study_file(tmp_path, "bad", algorithm={"name": "swift", "R": 9, "params": {"knwon_curve": 0.5}})
    out = tmp_path / "out"
    proc = run_mpi(3, "run", bad, "--out", str(out))
    assert proc.returncode == 2
    assert "hpoq: error: algorithm.params.knwon_curve" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    two = study_file(tmp_path, "two", ranks_per_trial=2)
    proc = run_mpi(2, "run", two, "--out", str(out))
    assert proc.returncode == 2 and "cannot form one trial group" in proc.stderr and not out.exists()
    missing = study_file(tmp_path, "missing", trainer={"name": "table", "params": {"table": "nowhere.csv.gz"}})
    proc = run_mpi(3, "run", missing, "--out", str(out))
    assert proc.returncode == 2 and "trainer.params.table" in proc.stderr and not out.exists()
    # without mpiexec (a singleton rank) there is no trial group either
    proc = subprocess.run(
        [sys.executable, "-m", "hpoq.main", "run", two, "--out", str(out)],
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2 and "1 MPI rank(s) cannot form one trial group" in proc.stderr and not out.exists()
    # a fresh study into a directory that holds a journal is refused; the journal is untouched
    good = study_file(tmp_path, "good", algorithm={"name": "hyperband", "R": 1, "eta": 3})
    assert run_mpi(3, "run", good, "--out", str(out)).returncode == 0
    before = (out / "journal.jsonl").read_bytes()
    proc = run_mpi(3, "run", good, "--out", str(out))
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert (out / "journal.jsonl").read_bytes() == before


def test_declared_search_space_with_a_plugin_trainer(tmp_path):
    space = {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1.0},
        "layers": {"type": "int", "low": 1, "high": 4},
        "opt": {"type": "choice", "values": ["adam", "sgd"]},
        "momentum": {"type": "uniform", "low": 0.5, "high": 0.99, "when": {"opt": "sgd"}},
    }
    path = study_file(tmp_path, trainer={"name": "tests.plugins.synthetic:SyntheticTrainer"}, space=space)
    out = tmp_path / "out"
    proc = run_mpi(3, "run", path, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    records = check_complete(out, sequential_synthetic_best(path))
    configs = [r["config"] for r in records if r["type"] == "config"]
    assert all(("momentum" in c) == (c["opt"] == "sgd") for c in configs)
    assert records[0]["metric"] == "loss" and records[0]["seeds"]["sampler"] != records[0]["seeds"]["study"]


def sequential_synthetic_best(path: str) -> dict:
    from tests.plugins.synthetic import SyntheticTrainer

    scheduler = build_scheduler(load_study(path))
    while not scheduler.finished:
        unit = scheduler.suggest()
        scheduler.on_result(
            unit.trial_id,
            [SyntheticTrainer.value(unit.config, e) for e in range(unit.start_epoch + 1, unit.end_epoch + 1)],
        )
    return scheduler.best()
