"""``status OUTDIR``: exit 0 for a finished study, 3 for a resumable one, 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import MLPF_TABLE, mpi_env, mpiexec

REPO = Path(__file__).resolve().parents[1]


def hpoq(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hpoq.main", *args], capture_output=True, text=True, env=mpi_env(), cwd=REPO, timeout=60
    )


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("status")
    study = tmp / "s.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "seed": 1,
                "algorithm": {"name": "hyperband", "R": 9, "eta": 3},
                "trainer": {"name": "table", "params": {"table": str(MLPF_TABLE)}},
                "space": "table",
                "poll_interval": 0.005,
            }
        )
    )
    out = tmp / "out"
    proc = subprocess.run(
        [mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py", "-m", "hpoq.main", "run", str(study), "--out", str(out)],
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_finished_study_exits_0_with_hyperband_accounting(finished_study):
    proc = hpoq("status", str(finished_study), "--json")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["status"] == "finished"
    # plain Hyperband at R=9, eta=3 trains exactly its budget: 17 configurations, 69 epochs
    assert facts["epochs"] == facts["hyperband_budget"] == 69
    assert facts["trials"] == 17
    assert sum(facts["fates"].values()) == 17
    best = yaml.safe_load((finished_study / "best.yaml").read_text())
    assert facts["best"]["trial_id"] == best["trial_id"]


def test_journal_without_end_record_is_resumable(finished_study, tmp_path):
    lines = (finished_study / "journal.jsonl").read_text().splitlines()
    cut = tmp_path / "cut"
    cut.mkdir()
    # a master killed mid-study: no end record, and a torn last line
    (cut / "journal.jsonl").write_text("\n".join(lines[: len(lines) // 2]) + "\n" + lines[len(lines) // 2][:17])
    proc = hpoq("status", str(cut))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "study 's'" in proc.stdout


def test_missing_directory_is_a_one_line_error(tmp_path):
    proc = hpoq("status", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("hpoq: error:") and proc.stderr.count("\n") == 1


def test_status_names_why_a_study_stopped():
    """A unit timeout or a full disk is not 'a signal': status says what the journal says."""
    from hpoq.report.study import _status

    header = {"type": "header", "pid": 1, "host": "h"}
    signal_end = {"type": "end", "status": "interrupted"}
    disk_end = {"type": "end", "status": "interrupted", "reason": "disk full (No space left on device)"}
    hung_end = {
        "type": "end",
        "status": "interrupted",
        "reason": "1 trial group(s) hold a timed-out unit",
        "abort": "ranks [1] hang in unit 7",
    }
    from hpoq.journal.records import from_record
    from hpoq.journal.state import StudyState

    def status(*lines):
        return _status(StudyState.of([from_record(line) for line in lines]))

    assert "stopped by a signal" in status(header, signal_end)[1]
    assert status(header, disk_end)[1].startswith("stopped: disk full")
    detail = status(header, hung_end)[1]
    assert "timed-out unit" in detail and "ranks [1] hang" in detail and "run --resume" in detail
