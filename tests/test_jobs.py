"""Cluster defects of issue 21 that need no Slurm (the Slurm side is in tests/test_slurm.py): copies of one
stop signal are one stop, a missing or empty MLPF dataset is refused before anything is written, the
swift + svr example fits its predictor, and the generic job script's log is ignored by git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import MLPF_TABLE, mpi_env, run_mpi, start_mpi

from hpoq.runtime.signals import COPY_WINDOW_S, StopSignals

REPO = Path(__file__).resolve().parents[1]


def records(out) -> list[dict]:
    path = Path(out, "journal.jsonl")
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


# ---------------------------------------------------------------- item 6: one preemption, one stop


def test_copies_of_one_signal_are_one_stop_and_a_later_or_other_signal_is_a_second():
    now = [100.0]
    s = StopSignals(role="worker", clock=lambda: now[0])
    s.receive("SIGUSR1")
    now[0] += 0.01  # slurmstepd's copy and the batch script's forwarded one, 10 ms apart on the local Slurm
    s.receive("SIGUSR1")
    assert (s.count, s.copies, s.last) == (1, 1, "SIGUSR1")
    now[0] += COPY_WINDOW_S + 0.5  # the same signal again later: a person insisting
    s.receive("SIGUSR1")
    assert s.count == 2
    t = StopSignals(role="worker", clock=lambda: now[0])
    t.receive("SIGUSR1")
    t.receive("SIGTERM")  # USR1's warning, then the time limit's TERM: a second stop at once
    assert (t.count, t.last) == (2, "SIGTERM")


def test_the_handler_counts_real_signals_delivered_twice():
    s = StopSignals(role="worker").install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert (s.count, s.copies) == (1, 1)
    finally:
        s.restore()


@pytest.mark.mpi
def test_usr1_delivered_twice_is_one_stop_that_lets_running_units_finish(tmp_path):
    doc = {
        "name": "twice",
        "seed": 4,
        "algorithm": {"name": "hyperband", "R": 9, "eta": 3},
        "trainer": {"name": "table", "params": {"table": str(MLPF_TABLE), "sleep": 0.3}},
        "space": "table",
        "poll_interval": 0.01,
    }
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    proc = start_mpi(3, "run", str(study), "--out", str(out))
    try:
        t0 = time.monotonic()
        while sum(r["type"] == "result" for r in records(out)) < 2:
            assert proc.poll() is None and time.monotonic() - t0 < 120, "the study did not start"
            time.sleep(0.05)
        master = records(out)[0]["pid"]
        os.kill(master, signal.SIGUSR1)
        time.sleep(0.01)
        os.kill(master, signal.SIGUSR1)  # the copy `scancel --signal=USR1 --full` also delivers
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    recs = records(out)
    end = recs[-1]
    assert end["type"] == "end" and end["status"] == "interrupted" and "abort" not in end, end
    assert [r["signal"] for r in recs if r["type"] == "stop"] == ["SIGUSR1"]
    units = {r["unit_id"] for r in recs if r["type"] == "unit"}
    assert units == {r["unit_id"] for r in recs if r["type"] in ("result", "failure")}  # none lost
    assert "second stop signal" not in err and "stopped by SIGUSR1" in err


# ---------------------------------------------------------------- item 8: a missing or empty MLPF dataset


def _mlpf_study(tmp_path, data) -> Path:
    doc = {
        "name": "mlpf-nodata",
        "seed": 0,
        "algorithm": {"name": "hyperband", "R": 3, "eta": 3},
        "trainer": {"name": "mlpf", "params": {"data": str(data), "R": 3, "backend": "none"}},
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        "poll_interval": 0.01,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _hpoq(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "hpoq.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), cwd=REPO, timeout=120)


@pytest.mark.mpi
def test_a_missing_or_empty_mlpf_dataset_is_one_line_exit_2_before_anything_is_written(tmp_path, capsys):
    pytest.importorskip("torch", reason="the MLPF trainer needs torch (pip install 'hpoq[mlpf]')")
    from hpoq.main import main
    from hpoq.mlpf.writer import generate_dataset

    empty = tmp_path / "empty"
    empty.mkdir()
    no_val = tmp_path / "no-val"
    generate_dataset(no_val, 20, seed=1, preset="easy", shards=1, val_fraction=0.0)
    cases = [(tmp_path / "missing", "does not exist"), (empty, "dataset.json is missing"), (no_val, "val split")]
    for data, why in cases:  # the CLI in-process (one torch import for the three)
        study = _mlpf_study(tmp_path, data)
        capsys.readouterr()
        assert main(["validate", str(study), "--build"]) == 2
        valid = capsys.readouterr()
        assert valid.out == "", valid.out
        assert valid.err.count("\n") == 1 and "trainer.params.data" in valid.err and why in valid.err, valid.err
    # the run (the case: no directory; the others fail in the same trainer check): refused by the
    # workers' trainers before the master writes anything
    study = _mlpf_study(tmp_path, cases[0][0])
    out = tmp_path / "out"
    proc = run_mpi(3, "run", str(study), "--out", str(out), timeout=120)
    errors = [x for x in proc.stderr.splitlines() if x.startswith("hpoq: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "does not exist" in errors[0], proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    assert not out.exists(), f"the run wrote {list(out.iterdir())}"


# ---------------------------------------------------------------- item 9: swift + svr fits its predictor


@pytest.mark.mpi
def test_the_swift_svr_example_fits_and_uses_its_predictor(tmp_path):
    out = tmp_path / "out"
    example = REPO / "examples" / "mlpf-table-swift-2ranks.yaml"
    proc = run_mpi(5, "run", str(example), "--out", str(out), timeout=240)
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    end = recs[-1]
    assert end["predictor_fits"] > 0, end  # swift fits in the master loop: not fit_jobs (the fit thread's)
    predicted = [d for r in recs if r["type"] == "decision" for d in r["decisions"] if d["reason"] == "predicted"]
    assert predicted and {d["info"]["predictor"] for d in predicted} == {"svr"}
    report = _hpoq("report", str(out))
    assert report.returncode == 0, report.stderr
    assert (out / "report" / "predictions.png").exists()


# ---------------------------------------------------------------- item 11: the job log


def test_the_generic_job_scripts_log_is_ignored_by_git(tmp_path):
    script = (REPO / "jobs" / "slurm_generic.sbatch").read_text()
    assert "#SBATCH --output=hpoq-%j.out" in script
    probe = REPO / "hpoq-4242.out"
    probe.write_text("a job log\n")
    try:
        proc = subprocess.run(
            ["git", "check-ignore", "-q", str(probe)], cwd=REPO, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, "hpoq-<job>.out in the submit directory is not ignored"
    finally:
        probe.unlink()


def test_every_example_and_the_study_the_juwels_script_names_validate(capsys):
    from hpoq.main import main

    juwels = (REPO / "jobs" / "slurm_juwels_booster.sbatch").read_text()
    named = [w for w in juwels.split() if w.startswith("examples/") and w.endswith(".yaml")]
    assert named and all((REPO / n).is_file() for n in named), named
    for example in sorted((REPO / "examples").glob("*.yaml")):
        capsys.readouterr()
        assert main(["validate", str(example)]) == 0, (example.name, capsys.readouterr().err)
