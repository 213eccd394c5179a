"""Faults that used to break a study (issue 11), each done for real under ``mpiexec``.

Hung and dying trainer ranks (a plugin whose configurations above a threshold hang or ``os._exit``),
two masters on one directory, changed data on resume, a D-Wave token at DEBUG, unwritable and full
disks (tmpfs mounts; skipped where mounting is not allowed), closed pipes. A study must end within
``max_retries`` + 2 invocations with no outside kill.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import MLPF_TABLE, mpi_cmd, mpi_env, run_mpi, start_mpi

from hpoq.runtime.journal import read_journal
from hpoq.study.build import build_scheduler, load_replay_table
from hpoq.study.spec import load_study

REPO = Path(__file__).resolve().parents[1]
TABLE = str(MLPF_TABLE)
FAULTY = "tests.plugins.faulty:FaultyTableTrainer"
MAX_RETRIES = 1


# -- helpers ------------------------------------------------------------------------------------
def write_study(tmp_path, name="s", trainer_params=None, trainer=FAULTY, **over) -> str:
    doc = {
        "name": name,
        "seed": 4,
        "algorithm": {"name": "hyperband", "R": 9, "eta": 3},
        "trainer": {"name": trainer, "params": {"table": TABLE, "sleep": 0.005, **(trainer_params or {})}},
        "space": "table",
        "poll_interval": 0.005,
        "max_retries": MAX_RETRIES,
    }
    doc.update(over)
    path = Path(tmp_path) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def sampled_configs(study: str) -> dict[int, dict]:
    """Every configuration the study samples, by trial id (the study driven in-process without faults)."""
    spec = load_study(study)
    table = load_replay_table(spec)
    scheduler = build_scheduler(spec, table)
    curves, configs = table.minimized(), {}
    while not scheduler.finished:
        unit = scheduler.suggest()
        configs.setdefault(unit.trial_id, unit.config)
        scheduler.on_result(unit.trial_id, curves[unit.config["_row"], unit.start_epoch : unit.end_epoch].tolist())
    return configs


def top_value_threshold(study: str, param: str = "dropout") -> tuple[float, int]:
    """A threshold of ``param`` that exactly one sampled configuration exceeds, and that configuration's row."""
    ranked = sorted(sampled_configs(study).values(), key=lambda c: c[param])
    return (ranked[-1][param] + ranked[-2][param]) / 2, int(ranked[-1]["_row"])


def early_threshold(study: str, first_trials: int = 9) -> tuple[str, float]:
    """(param, threshold) that exactly one configuration exceeds, one of the first trials (so plenty runs after it)."""
    configs = sampled_configs(study)
    for param in ("dropout", "lr", "weight_decay", "output_dim", "bin_size"):
        ranked = sorted(configs.items(), key=lambda kv: kv[1][param])
        (tid, top), (_, second) = ranked[-1], ranked[-2]
        if tid < first_trials and top[param] > second[param]:
            return param, (top[param] + second[param]) / 2
    raise AssertionError("no hyperparameter singles out an early trial; pick another seed")


run_mpi = functools.partial(run_mpi, timeout=60)  # a faulty study must end within a minute


def hpoq(*args, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hpoq.main", *args],
        capture_output=True,
        text=True,
        env=env or mpi_env(),
        cwd=REPO,
        timeout=timeout,
    )


def records(out) -> list[dict]:
    return read_journal(str(Path(out) / "journal.jsonl"))[0]


def trials_csv(out) -> dict[int, dict]:
    with open(Path(out) / "trials.csv") as fh:
        return {int(r["trial_id"]): r for r in csv.DictReader(fh)}


def until_finished(study: str, out, n: int = 4, limit: int = MAX_RETRIES + 2) -> list[subprocess.CompletedProcess]:
    """run, then run --resume while the study is not finished; at most ``limit`` invocations."""
    procs = [run_mpi(n, "run", study, "--out", str(out))]
    while hpoq("status", str(out)).returncode == 3 and len(procs) < limit:
        procs.append(run_mpi(n, "run", "--resume", str(out)))
    return procs


def bad_trials(out, row: int) -> list[int]:
    return [r["trial_id"] for r in records(out) if r["type"] == "config" and r["config"]["_row"] == row]


def one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("hpoq: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def wait_for(predicate, proc, timeout=30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"mpiexec ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def journal_has(out, text: str) -> bool:
    path = Path(out) / "journal.jsonl"
    return path.exists() and text in path.read_text()


# -- 1. hung units --------------------------------------------------------------------------------
@pytest.mark.mpi
def test_hung_unit_times_out_and_its_configuration_fails(tmp_path):
    study = write_study(tmp_path, trainer_params={"fault": "hang"}, unit_timeout=2)
    above, row = top_value_threshold(study)
    study = write_study(tmp_path, trainer_params={"fault": "hang", "above": above}, unit_timeout=2)
    out = tmp_path / "out"
    procs = until_finished(study, out)
    assert hpoq("status", str(out)).returncode == 0, [p.stderr for p in procs]
    assert len(procs) <= MAX_RETRIES + 2 and all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    recs = records(out)
    (tid,) = bad_trials(out, row)
    timeouts = [r for r in recs if r["type"] == "failure" and r["trial_id"] == tid]
    assert [r["kind"] for r in timeouts] == ["timeout"] * (MAX_RETRIES + 1)
    assert [r["final"] for r in timeouts] == [False] * MAX_RETRIES + [True]
    assert "unit_timeout" in timeouts[0]["reason"]
    ends = [r for r in recs if r["type"] == "end"]
    assert all("abort" in e for e in ends) and ends[-1]["status"] == "finished"  # the journal says why it aborted
    rows = trials_csv(out)
    assert rows[tid]["status"] == "failed"
    assert {r["status"] for t, r in rows.items() if t != tid} <= {"done", "pruned"}
    assert not [r for r in recs if r["type"] == "failure" and r["trial_id"] != tid]


@pytest.mark.mpi
def test_two_stop_signals_end_a_job_whose_unit_hangs(tmp_path):
    """No unit_timeout: one SIGTERM waits for the hung unit; the second aborts the job, journaled."""
    study = write_study(tmp_path, trainer_params={"fault": "hang"})
    above, _ = top_value_threshold(study)
    study = write_study(tmp_path, trainer_params={"fault": "hang", "above": above})
    out = tmp_path / "out"
    proc = start_mpi(3, "run", study, "--out", str(out))
    try:
        wait_for(lambda: journal_has(out, '"type":"idle"') or journal_has(out, '"start_epoch":3'), proc)
        time.sleep(0.5)
        master = records(out)[0]["pid"]
        os.kill(master, signal.SIGTERM)
        time.sleep(1.5)
        assert proc.poll() is None  # the first signal waits for the running (hung) unit, as it should
        os.kill(master, signal.SIGTERM)
        proc.wait(timeout=20)  # the second one ends mpiexec and every rank
    finally:
        if proc.poll() is None:
            proc.kill()
    end = records(out)[-1]
    assert end["type"] == "end" and end["status"] == "interrupted" and "second stop signal" in end["abort"]
    assert hpoq("status", str(out)).returncode == 3


@pytest.mark.mpi
def test_one_stop_signal_ends_a_job_whose_unit_hangs_once_the_unit_times_out(tmp_path):
    study = write_study(tmp_path, trainer_params={"fault": "hang"}, unit_timeout=2)
    above, row = top_value_threshold(study)
    study = write_study(tmp_path, trainer_params={"fault": "hang", "above": above}, unit_timeout=2)
    out = tmp_path / "out"
    proc = start_mpi(3, "run", study, "--out", str(out))
    try:
        wait_for(lambda: journal_has(out, f'"_row":{row}'), proc)
        (tid,) = bad_trials(out, row)
        wait_for(lambda: any(r["type"] == "unit" and r["trial_id"] == tid for r in records(out)), proc)
        os.kill(records(out)[0]["pid"], signal.SIGTERM)
        proc.wait(timeout=30)  # no second signal, no outside kill: the timeout frees the master
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    recs = records(out)
    kinds = [r["type"] for r in recs]
    assert "stop" in kinds and recs[-1]["type"] == "end" and recs[-1]["status"] == "interrupted"
    assert [r["kind"] for r in recs if r["type"] == "failure"] == ["timeout"] and "abort" in recs[-1]
    assert hpoq("status", str(out)).returncode == 3


# -- 2. a rank that dies -----------------------------------------------------------------------------
@pytest.mark.mpi
def test_dying_rank_counts_as_failed_attempt_and_the_study_finishes(tmp_path):
    study = write_study(tmp_path, trainer_params={"fault": "exit"})
    above, row = top_value_threshold(study)
    study = write_study(tmp_path, trainer_params={"fault": "exit", "above": above})
    out = tmp_path / "out"
    procs = until_finished(study, out)
    assert procs[0].returncode != 0 and (out / ".hpoq.lock").exists()  # a stale lock does not block the resume
    assert hpoq("status", str(out)).returncode == 0, [p.stderr[-2000:] for p in procs]
    assert len(procs) <= MAX_RETRIES + 2
    recs = records(out)
    (tid,) = bad_trials(out, row)
    mine = [r for r in recs if r["type"] == "failure" and r["trial_id"] == tid]
    assert [(r["kind"], r["final"]) for r in mine] == [("lost", False)] * MAX_RETRIES + [("lost", True)]
    rows = trials_csv(out)
    assert rows[tid]["status"] == "failed"
    assert {r["status"] for t, r in rows.items() if t != tid} <= {"done", "pruned"}  # bystanders lost once, not failed
    isolated = [r for r in recs if r["type"] == "unit" and r.get("isolated")]
    assert isolated and all(r["source"] == "retry" for r in isolated)
    resumes = [r for r in recs if r["type"] == "resume"]
    assert all(sorted(r["counted_lost"]) == sorted(r["lost_units"]) for r in resumes)


# -- 3. one master per directory ------------------------------------------------------------------------
@pytest.mark.mpi
def test_second_master_is_refused_and_the_first_finishes_intact(tmp_path):
    study = write_study(tmp_path, trainer="table", trainer_params={"sleep": 0.03})
    out = tmp_path / "out"
    first = start_mpi(4, "run", study, "--out", str(out))
    try:
        wait_for(lambda: journal_has(out, '"type":"result"'), first)
        second = run_mpi(2, "run", "--resume", str(out))
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    line = one_error_line(second)
    header = records(out)[0]
    assert second.returncode == 2 and str(out) in line and "in use by another master" in line
    assert f"pid {header['pid']}" in line and f"host {header['host']}" in line
    assert first.returncode == 0, first.stderr
    recs = records(out)
    assert recs[-1]["status"] == "finished" and not [r for r in recs if r["type"] in ("resume", "failure")]
    assert recs[-1]["epochs"] == 69  # plain Hyperband R=9 eta=3: nothing lost to the refused master


# -- 4. changed inputs ------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_resume_refuses_a_replaced_table(tmp_path):
    table = tmp_path / "table.csv.gz"
    shutil.copy(TABLE, table)
    study = write_study(tmp_path, trainer="table", trainer_params={"table": str(table), "sleep": 0.02})
    out = tmp_path / "out"
    proc = start_mpi(3, "run", study, "--out", str(out))
    try:
        wait_for(lambda: journal_has(out, '"type":"result"'), proc)
        os.kill(records(out)[0]["pid"], signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert hpoq("status", str(out)).returncode == 3
    header = records(out)[0]
    assert header["inputs"]["trainer.params.table"]["path"] == str(table)
    table.write_bytes(_other_table())
    before = (out / "journal.jsonl").read_bytes()
    refused = run_mpi(3, "run", "--resume", str(out))
    assert refused.returncode == 2 and "trainer.params.table" in one_error_line(refused)
    assert "changed" in one_error_line(refused) and "--allow-changed-inputs" in one_error_line(refused)
    assert (out / "journal.jsonl").read_bytes() == before  # nothing written
    allowed = run_mpi(3, "run", "--resume", str(out), "--allow-changed-inputs")
    resume = next(r for r in records(out) if r["type"] == "resume")
    assert resume["changed_inputs"] and "trainer.params.table" in resume["changed_inputs"][0], allowed.stderr


def test_fingerprints_cover_the_dataset_manifest_and_warm_curves(tmp_path):
    from hpoq.runtime.inputs import changed_inputs, fingerprint, fingerprints

    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.json").write_text(json.dumps({"content_hash": "abc"}))
    (data / "shard.h5").write_bytes(b"x" * 10)
    warm = tmp_path / "warm.csv"
    warm.write_text("a,loss_1\n1,0.5\n2,0.4\n")
    study = write_study(tmp_path, trainer="table", warm_curves={"path": str(warm), "metric": "loss"})
    recorded = fingerprints(load_study(study))
    assert set(recorded) == {"trainer.params.table", "warm_curves"} and changed_inputs(recorded) == []
    warm.write_text("a,loss_1\n1,0.5\n2,0.3\n")
    assert [c.split()[0] for c in changed_inputs(recorded)] == ["warm_curves"]
    before = {"data": fingerprint(str(data))}
    assert before["data"]["kind"] == "manifest"
    (data / "shard.h5").write_bytes(b"y" * 10)  # the manifest stands for the events (its content hash)
    assert changed_inputs(before) == []
    (data / "dataset.json").write_text(json.dumps({"content_hash": "def"}))
    assert changed_inputs(before) and "changed" in changed_inputs(before)[0]
    shutil.rmtree(data)
    assert "is gone" in changed_inputs(before)[0]


def _other_table() -> bytes:
    """The MLPF table with its rows in reverse order: same columns, other data behind every _row."""
    import gzip

    lines = gzip.decompress(Path(TABLE).read_bytes()).decode().splitlines()
    return gzip.compress(("\n".join([lines[0]] + lines[:0:-1]) + "\n").encode())


# -- 5. secrets in logs ----------------------------------------------------------------------------------------
SECRET = "SECRET-0123456789abcdef0123456789abcdef01234567"


def tiny_table(tmp_path) -> Path:
    """12 curves of 8 epochs: enough for predict-eval, small enough that QSVR fits in a moment."""
    table = tmp_path / "tiny.csv"
    table.write_text(
        "a,b,"
        + ",".join(f"loss_{e}" for e in range(1, 9))
        + "\n"
        + "".join(
            f"{i / 12},{(i * 7 % 12) / 12}," + ",".join(f"{i / 12 + 1 / e:.5f}" for e in range(1, 9)) + "\n"
            for i in range(12)
        )
    )
    return table


def test_dwave_token_never_reaches_stderr_at_debug(tmp_path):
    table = tiny_table(tmp_path)
    env = dict(mpi_env(), DWAVE_API_TOKEN=SECRET, DWAVE_API_ENDPOINT="file:///nonexistent/sapi/v2/")
    proc = hpoq(
        "--log-level",
        "DEBUG",
        "predict-eval",
        "--table",
        str(table),
        "--metric",
        "loss",
        "--known",
        "0.5",
        "--predictor",
        "qsvr",
        "--param",
        "sampler=dwave",
        "--seeds",
        "0",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dwave.cloud" not in proc.stderr and "urllib3" not in proc.stderr  # other libraries stay at WARNING
    assert "falling back to " in proc.stderr and "D-Wave solver" in proc.stderr
    assert "SECRET" not in proc.stderr + proc.stdout and "0123456789abcdef" not in proc.stderr


def test_log_level_all_shows_the_dwave_config_with_the_token_masked():
    code = (
        "import sys; from hpoq.logsetup import configure_logging; configure_logging('DEBUG', all_loggers=True)\n"
        "from dwave.cloud import Client\n"
        "with Client.from_config() as client: pass\n"
    )
    env = dict(mpi_env(), DWAVE_API_TOKEN=SECRET, DWAVE_API_ENDPOINT="file:///nonexistent/sapi/v2/")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = [ln for ln in proc.stderr.splitlines() if "Config loaded" in ln]
    assert loaded and "'token': '***'" in loaded[0]
    assert "SECRET" not in proc.stderr and "0123456789abcdef" not in proc.stderr


# -- 6. unwritable and full disks ----------------------------------------------------------------------------------
@contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({probe.stderr.strip() or 'not root'}); the full-disk and "
            "read-only cases need one"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_unwritable_output_places_give_one_line_and_exit_2(tmp_path):
    study = write_study(tmp_path, trainer="table")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    proc = hpoq("run", study, "--out", str(a_file / "out"))
    assert proc.returncode == 2 and "is not a directory" in one_error_line(proc)
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as ro:
        for argv, what in (
            (["run", study, "--out", str(ro / "out")], "output directory"),
            (["generate-data", "--out", str(ro / "data"), "--events", "10", "--seed", "0"], "--out"),
            (["convert", "mlpf", "--out", str(ro / "t.csv")], "--out"),
        ):
            proc = hpoq(*argv)
            line = one_error_line(proc)
            assert proc.returncode == 2 and what in line and "Read-only file system" in line, (argv, proc.stderr)
    immutable = tmp_path / "immutable"
    immutable.mkdir()
    if subprocess.run(["chattr", "+i", str(immutable)], capture_output=True).returncode == 0:
        try:
            proc = hpoq("run", study, "--out", str(immutable / "out"))
            line = one_error_line(proc)
            assert proc.returncode == 2 and "Operation not permitted" in line and "immutable" in line
            assert list(immutable.iterdir()) == []
        finally:
            subprocess.run(["chattr", "-i", str(immutable)], capture_output=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "immutable", "ro", "s.yaml"]


@pytest.mark.mpi
def test_full_disk_stops_like_sigterm_and_resumes(tmp_path):
    study = write_study(tmp_path, trainer_params={"fault": "fill"})
    param, above = early_threshold(study)
    study = write_study(tmp_path, trainer_params={"fault": "fill", "param": param, "above": above})
    with tmpfs(tmp_path / "disk", "4m") as disk:
        out = disk / "out"
        full = run_mpi(4, "run", study, "--out", str(out))
        line = one_error_line(full)
        assert full.returncode == 2 and "disk full" in line and "run --resume" in line, full.stderr
        recs = records(out)  # a clean journal: every line a record
        assert [r for r in recs if r["type"] == "stop" and "disk full" in (r.get("reason") or "")]
        assert recs[-1]["type"] == "end" and recs[-1]["status"] == "interrupted"
        assert hpoq("status", str(out)).returncode == 3
        done_before = [(r["trial_id"], r["start_epoch"]) for r in recs if r["type"] == "result"]
        (out / "filler.bin").unlink()  # space is freed
        (out / "filler.bin").mkdir()  # and the plugin cannot fill it again
        again = run_mpi(4, "run", "--resume", str(out))
        assert again.returncode == 0, again.stderr
        recs = records(out)
        assert recs[-1]["status"] == "finished" and recs[-1]["epochs"] == 69
        done = [(r["trial_id"], r["start_epoch"]) for r in recs if r["type"] == "result"]
        assert done[: len(done_before)] == done_before and len(done) == len(set(done))
        assert not [r for r in recs if r["type"] == "failure" and r.get("counted", True)]


@pytest.mark.mpi
def test_full_disk_inside_a_trainer_is_not_the_trials_fault(tmp_path):
    study = write_study(tmp_path, trainer_params={"ballast_kb": 256})
    with tmpfs(tmp_path / "disk", "3m") as disk:
        out = disk / "out"
        full = run_mpi(3, "run", study, "--out", str(out))
        assert full.returncode == 2 and "disk full" in one_error_line(full), full.stderr
        recs = records(out)
        disk_full = [r for r in recs if r["type"] == "failure"]
        assert disk_full and all(r["kind"] == "disk-full" and r["counted"] is False for r in disk_full)
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        again = run_mpi(3, "run", "--resume", str(out))
        assert again.returncode == 0, again.stderr
        rows = trials_csv(out)
        assert {r["status"] for r in rows.values()} <= {"done", "pruned"}


# -- 7. smaller items -------------------------------------------------------------------------------------------
def test_closed_pipe_exits_quietly(tmp_path):
    study = write_study(tmp_path, trainer="table")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpoq.main", "validate", study],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=mpi_env(),
        cwd=REPO,
    )
    proc.stdout.close()  # the reader went away, as `| head -1` does after its line
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == "" and proc.returncode == 141


def test_dropped_table_rows_are_counted_in_one_warning(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,loss_1,loss_2\n1,0.5,0.4\n2,nan,0.3\n3,x,0.2\n4,0.1,inf\n5,0.3,0.2\n")
    proc = hpoq(
        "simulate",
        "--table",
        str(table),
        "--metric",
        "loss",
        "--algorithm",
        "random",
        "--R",
        "2",
        "--param",
        "n=2",
        "--json",
    )
    warnings = [ln for ln in proc.stderr.splitlines() if "dropped" in ln]
    assert proc.returncode == 0, proc.stderr
    assert len(warnings) == 1 and "3 of 5 rows dropped" in warnings[0]
    assert json.loads(proc.stdout)["runs"]


def test_journal_on_a_full_disk_keeps_whole_records_and_writes_again_from_its_reserve(tmp_path):
    from hpoq.runtime.journal import Journal, JournalWriteError

    with tmpfs(tmp_path / "disk", "256k") as disk:
        journal = Journal.create(str(disk / "journal.jsonl"))
        journal.make_reserve(64 * 1024)
        journal.write("header", version=1, study={}, pad="h" * 100)
        journal.sync()
        with open(disk / "filler.bin", "wb", buffering=0) as fh:  # another writer takes the rest of the disk
            try:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            except OSError:
                pass
        with pytest.raises(JournalWriteError) as err:
            for i in range(1000):  # fills the journal's last page, then needs a new one
                journal.write("idle", pad="x" * 200, i=i)
                journal.sync()
        assert err.value.errno == 28
        written, valid = read_journal(str(disk / "journal.jsonl"))
        assert (disk / "journal.jsonl").stat().st_size == valid  # cut back to the last whole record
        assert journal.release_reserve() and not (disk / ".hpoq.reserve").exists()
        journal.sync()  # the failed batch, in the reserve's space
        journal.write("end", status="interrupted")
        journal.close()
        after, _ = read_journal(str(disk / "journal.jsonl"))
        assert after[: len(written)] == written and after[len(written)]["i"] == written[-1]["i"] + 1
        assert after[-1]["type"] == "end"


# == issue 20: nothing a user types may cost them data =============================================================
def tree(root: Path) -> dict:
    """Every entry under ``root``: relative path -> (kind, bytes, mtime_ns) -- what 'nothing changed' compares."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            out[str(path.relative_to(root))] = ("link", os.readlink(path), st.st_mtime_ns)
            continue
        kind = "dir" if path.is_dir() else "file"
        out[str(path.relative_to(root))] = (kind, None if kind == "dir" else path.read_bytes(), st.st_mtime_ns)
    return out


def user_dir(path: Path) -> Path:
    """A user's directory holding files with the names hpoq writes (and folders it deletes)."""
    (path / "checkpoints" / "trial-00001").mkdir(parents=True)
    (path / "checkpoints" / "trial-00001" / "model.pt").write_bytes(b"the user's model")
    for name in ("trials.csv", "best.yaml", "curves.h5", "notes.txt", "report.html"):
        (path / name).write_text(f"the user's {name}\n")
    (path / "report").mkdir()
    (path / "report" / "curves.png").write_bytes(b"the user's figure")
    (path / "train").mkdir()
    (path / "train" / "shard-00000-of-00001.h5").write_bytes(b"the user's shard-named file")
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """A finished table study (its directory, study file and a copy of its table)."""
    tmp = tmp_path_factory.mktemp("finished")
    table = tmp / "table.csv.gz"
    shutil.copy(TABLE, table)
    study = write_study(tmp, trainer="table", trainer_params={"table": str(table), "sleep": 0.0})
    out = tmp / "out"
    proc = run_mpi(3, "run", study, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return {"out": out, "study": Path(study), "table": table}


def _parquet_input(tmp_path: Path) -> str:
    """Two events in upstream MLPF's parquet layout (``convert-events`` input); skips without awkward."""
    pytest.importorskip("awkward")
    pytest.importorskip("pyarrow")
    import numpy as np
    from test_convert_events import _event, write_upstream_parquet

    path = tmp_path / "clic_1.parquet"
    rng = np.random.default_rng(0)
    write_upstream_parquet(path, [_event(rng, 3, 4), _event(rng, 2, 5)])
    return str(path)


# every subcommand that writes to --out: (target) -> argv; a new one must add its case here
OUT_CASES = {
    "run": lambda tmp, finished, target: mpi_cmd(3, "run", str(finished["study"]), "--out", str(target)),
    "report": lambda tmp, finished, target: hpoq_cmd(
        "report", str(finished["out"]), "--out", str(target / "report.html" if target.is_dir() else target)
    ),
    "convert": lambda tmp, finished, target: hpoq_cmd(
        "convert", "mlpf", "--out", str(target / "trials.csv" if target.is_dir() else target)
    ),
    "generate-data": lambda tmp, finished, target: hpoq_cmd(
        "generate-data", "--out", str(target), "--events", "20", "--seed", "0"
    ),
    "convert-events": lambda tmp, finished, target: hpoq_cmd(
        "convert-events", _parquet_input(tmp), "--out", str(target)
    ),
}


def hpoq_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "hpoq.main", *args]


def _commands_with_out() -> list[str]:
    from hpoq.main import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(n for n, p in sub.choices.items() if any("--out" in a.option_strings for a in p._actions))


@pytest.mark.mpi
@pytest.mark.parametrize("target", ["user-file", "user-dir"])
@pytest.mark.parametrize("command", _commands_with_out())
def test_no_subcommand_writes_over_a_users_file_or_into_a_users_directory(tmp_path, finished, command, target):
    """The targets' sweep: every subcommand with --out, pointed at a user's file or non-study directory."""
    assert command in OUT_CASES, f"subcommand {command!r} writes --out: add its case to OUT_CASES"
    home = tmp_path / "home"
    home.mkdir()
    if target == "user-file":
        place = home / "mine.csv"
        place.write_text("the user's table\n1,2,3\n")
    else:
        place = user_dir(home / "mine")
    argv = OUT_CASES[command](tmp_path, finished, place)
    before, study_before = tree(home), tree(finished["out"])
    time.sleep(0.01)  # a rewrite of the same bytes would still move the mtimes
    proc = subprocess.run(argv, capture_output=True, text=True, env=mpi_env(), cwd=REPO, timeout=120)
    line = one_error_line(proc)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert str(place) in line or place.name in line, line
    assert tree(home) == before  # nothing of the user's deleted, modified or added to
    assert tree(finished["out"]) == study_before


@pytest.mark.mpi
def test_run_into_a_users_directory_deletes_nothing_and_a_new_or_empty_one_works(tmp_path, finished):
    mine = user_dir(tmp_path / "mine")
    before = tree(mine)
    proc = run_mpi(3, "run", str(finished["study"]), "--out", str(mine))
    line = one_error_line(proc)
    assert "is not empty and is not an hpoq study" in line and "checkpoints/" in line
    assert tree(mine) == before
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        proc = run_mpi(3, "run", str(finished["study"]), "--out", str(out))
        assert proc.returncode == 0 and records(out)[-1]["status"] == "finished", proc.stderr


def test_report_never_writes_over_the_studys_inputs_or_bookkeeping(tmp_path, finished, capsys):
    from hpoq.main import main

    out = finished["out"]
    places = {
        out / "journal.jsonl": "journal.jsonl",
        out / "trials.csv": "trials.csv",
        finished["study"]: "the study file",
        finished["table"]: "an input of the study (trainer.params.table)",
        out / "checkpoints" / "r.html": "checkpoints",
        out / "checkpoints.html": "the figures' folder",
    }
    watched = [out, finished["study"].parent]
    before = [tree(w) for w in watched]
    for target, what in places.items():
        assert main(["report", str(out), "--out", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and what in err and "never writes there" in err, (target, err)
    assert [tree(w) for w in watched] == before
    again = tmp_path / "r.html"  # an hpoq report (and its figures) may be replaced
    for _ in range(2):
        assert main(["report", str(out), "--out", str(again)]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["best_so_far.png", "curves.png"]


# -- a start that fails before its header is durable -----------------------------------------------------------
@pytest.mark.mpi
def test_a_start_on_a_full_disk_leaves_nothing_and_a_rerun_works_once_space_is_freed(tmp_path):
    study = write_study(tmp_path, trainer="table")
    with tmpfs(tmp_path / "disk", "512k") as disk:  # the journal fits, its 1 MiB space reserve does not
        (disk / "empty").mkdir()
        for out in (disk / "out", disk / "empty"):
            proc = run_mpi(3, "run", study, "--out", str(out))
            line = one_error_line(proc)
            assert proc.returncode == 2 and "No space left on device" in line, proc.stderr
        assert sorted(p.name for p in disk.rglob("*")) == ["empty"]  # as the user left it
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)  # space is freed
        for out in (disk / "out", disk / "empty"):
            again = run_mpi(3, "run", study, "--out", str(out))
            assert again.returncode == 0 and records(out)[-1]["status"] == "finished", again.stderr


@pytest.mark.mpi
def test_a_start_killed_before_its_header_leaves_a_directory_a_rerun_accepts(tmp_path):
    """SIGKILL of the master at the first fallocate (its space reserve: the journal exists, still empty)."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("no strace to kill the master at a chosen system call")
    from conftest import mpiexec

    study = write_study(tmp_path, trainer="table")
    out = tmp_path / "out"
    python = [sys.executable, "-m", "mpi4py", "-m", "hpoq.main", "run", study, "--out", str(out)]
    killed_master = [
        strace,
        "-qq",
        "-f",
        "-o",
        "/dev/null",
        "-e",
        "trace=fallocate",
        "-e",
        "inject=fallocate:signal=KILL",
    ]
    argv = [mpiexec(), "-n", "1", *killed_master, *python, ":", "-n", "2", *python]
    proc = subprocess.run(argv, capture_output=True, text=True, env=mpi_env(), cwd=REPO, timeout=60)
    assert proc.returncode != 0
    left = sorted(p.name for p in out.iterdir())
    assert left == [".hpoq.lock", ".hpoq.reserve", "journal.jsonl"] and (out / "journal.jsonl").stat().st_size == 0
    resumed = run_mpi(3, "run", "--resume", str(out))
    assert "never started" in one_error_line(resumed) and resumed.returncode == 2
    again = run_mpi(3, "run", study, "--out", str(out))
    assert again.returncode == 0 and records(out)[-1]["status"] == "finished", again.stderr


# -- one line under mpiexec ------------------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("launcher", ["plain", "mpi4py"])
def test_bad_input_under_mpiexec_is_one_line_without_abort_lines(tmp_path, launcher):
    from conftest import mpiexec

    good = write_study(tmp_path, trainer="table")
    bad_seed = tmp_path / "bad.yaml"
    bad_seed.write_text(Path(good).read_text().replace("seed: 4", "seed: x"))
    (tmp_path / "broken_plugin.py").write_text("class T(:\n")
    plugin = write_study(tmp_path, name="p", trainer="broken_plugin:T")
    unbuildable = write_study(tmp_path, name="u", trainer_params={"fault": "no-such-fault"})  # fails on the workers
    mine = user_dir(tmp_path / "mine")
    cases = [
        (["run", str(bad_seed)], "seed must be an integer"),
        (["run", plugin], "broken_plugin"),
        (["run", unbuildable, "--out", str(tmp_path / "u-out")], "cannot build trainer"),
        (["run", good, "--out", str(mine)], "is not an hpoq study"),
        (["run", "--resume", str(tmp_path / "nowhere")], "nothing to resume"),
    ]
    env = dict(mpi_env(), PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    head = [mpiexec(), "-n", "3", sys.executable] + (["-m", "mpi4py"] if launcher == "mpi4py" else [])
    for args, message in cases:
        proc = subprocess.run(
            [*head, "-m", "hpoq.main", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
        )
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in one_error_line(proc), proc.stderr
        assert "Abort" not in proc.stderr and proc.stdout == ""


# -- HDF5 on a full disk ---------------------------------------------------------------------------------------
def test_hdf5_writers_on_a_full_disk_say_one_line_and_leave_nothing(tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        data = ["generate-data", "--out", str(disk / "d"), "--events", "400", "--seed", "0"]
        for argv in (
            ["convert", "mlpf", "--out", str(disk / "t.h5")],
            data,
            [*data, "--shards", "3", "--workers", "2"],
        ):
            proc = hpoq(*argv)
            line = one_error_line(proc)
            assert proc.returncode == 2 and "No space left on device" in line, (
                argv,
                proc.returncode,
                proc.stderr[-2000:],
            )
            assert list(disk.iterdir()) == [], argv  # no temporary file, no empty folder


def test_a_report_on_a_full_disk_says_one_line_and_leaves_nothing(tmp_path, finished, capsys):
    from hpoq.main import main

    with tmpfs(tmp_path / "disk", "64k") as disk:
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True)
        assert main(["report", str(finished["out"]), "--out", str(disk / "r.html")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "No space left on device" in err, err
        assert [p.name for p in disk.iterdir()] == ["filler"]  # no figure, no folder for them


@pytest.mark.mpi
def test_curves_h5_on_a_full_disk_is_one_line_and_the_journal_stays_whole(tmp_path):
    """Output files rewritten from the journal with three pages free: trials.csv and best.yaml fit, curves.h5 not."""
    study = write_study(tmp_path, trainer="table")
    with tmpfs(tmp_path / "disk", "8m") as disk:
        out = disk / "out"
        assert run_mpi(3, "run", study, "--out", str(out)).returncode == 0
        journal, curves = (out / "journal.jsonl").read_bytes(), (out / "curves.h5").read_bytes()
        assert len(curves) > 4 * 4096
        (disk / "spacer").write_bytes(b"\0" * 3 * 4096)
        filler = subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True)
        assert b"No space left" in filler.stderr
        (disk / "spacer").unlink()
        proc = run_mpi(3, "run", "--resume", str(out))  # a finished study: its output files are written again
        line = one_error_line(proc)
        assert proc.returncode == 2 and "curves.h5" in line and "No space left on device" in line, proc.stderr
        assert (out / "journal.jsonl").read_bytes() == journal and (out / "curves.h5").read_bytes() == curves
        assert sorted(p.name for p in out.iterdir() if p.name.startswith(".") and "tmp" in p.name) == []
        (disk / "filler").unlink()
        assert hpoq("status", str(out)).returncode == 0


# -- journal and status ----------------------------------------------------------------------------------------
@pytest.mark.mpi
def test_a_trial_that_completed_after_a_lost_unit_keeps_no_failure_reason(tmp_path):
    study = write_study(tmp_path, trainer="table", trainer_params={"sleep": 0.05})
    out = tmp_path / "out"
    proc = start_mpi(3, "run", study, "--out", str(out))
    try:
        wait_for(lambda: journal_has(out, '"type":"result"'), proc)
        os.kill(records(out)[0]["pid"], signal.SIGKILL)  # the master dies with units in flight
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    again = run_mpi(3, "run", "--resume", str(out))
    assert again.returncode == 0, again.stderr
    recs = records(out)
    lost = {r["trial_id"] for r in recs if r["type"] == "failure" and r["kind"] == "lost"}
    assert lost, "the kill must have caught a unit in flight"
    rows = trials_csv(out)
    for tid in lost:
        assert rows[tid]["status"] in ("done", "pruned") and not rows[tid]["reason"].startswith("lost"), rows[tid]


def _take_pid(pid: int, tries: int = 200):
    """A real process (``sleep``) with pid ``pid``, by setting the kernel's last pid (root); None if it did not land."""
    for _ in range(tries):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
                fh.write(str(pid - 1))
        except OSError:
            return None
        child = subprocess.Popen(["sleep", "120"])
        if child.pid == pid:
            return child
        child.kill()
        child.wait()
    return None


@pytest.mark.mpi
def test_status_asks_the_directory_lock_not_the_headers_pid(tmp_path):
    study = write_study(tmp_path, trainer="table", trainer_params={"sleep": 0.2})
    out = tmp_path / "out"
    proc = start_mpi(3, "run", study, "--out", str(out))
    try:
        wait_for(lambda: journal_has(out, '"type":"result"'), proc)
        running = hpoq("status", str(out))
        assert running.returncode == 3 and ": running (" in running.stdout
        master = records(out)[0]["pid"]
        os.kill(master, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    impostor = _take_pid(master)  # the dead master's pid now belongs to another process
    if impostor is None:
        pytest.skip("cannot place a process at a chosen pid here (needs root and /proc/sys/kernel/ns_last_pid)")
    try:
        status = hpoq("status", str(out), "--json")
        facts = json.loads(status.stdout)
        assert status.returncode == 3 and facts["status"] == "no end record", facts
        assert "no master holds the directory's lock" in facts["detail"]
    finally:
        impostor.kill()
        impostor.wait()


# -- secrets ---------------------------------------------------------------------------------------------------
ENV_SECRET = "env-secret-value-0451"  # not in D-Wave's ABC-hex shape: known from its variable's name
CONF_SECRET = "conf-secret-plain-7741"  # a dwave.conf token of a non-standard shape
STUDY_SECRET = "study-secret-key-2208"  # a plugin's api_key in the study file


@contextmanager
def echoing_endpoint():
    """A local SAPI endpoint that answers 401 with the token it was sent in its body (as some do)."""
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f'{{"error_code": 401, "error_msg": "Invalid token: {self.headers.get("X-Auth-Token")}"}}'.encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sapi/v2/"
    finally:
        server.shutdown()


@pytest.mark.mpi
def test_no_secret_is_written_anywhere_but_the_journal_header(tmp_path):
    """Environment, dwave.conf and study secrets through run (a plugin that echoes them when it fails), status,
    report, validate, a bad --param and a 401 that echoes the token at DEBUG with --log-level-all."""
    qsvr_eval = ["predict-eval", "--table", str(tiny_table(tmp_path)), "--metric", "loss", "--known", "0.5"]
    qsvr_eval += ["--seeds", "0", "--predictor", "qsvr"]
    with echoing_endpoint() as endpoint:
        conf = tmp_path / "dwave.conf"
        conf.write_text(f"[defaults]\ntoken = {CONF_SECRET}\nendpoint = {endpoint}\n")
        env = dict(mpi_env(), HPOQ_TEST_API_KEY=ENV_SECRET, DWAVE_CONFIG_FILE=str(conf))
        env.pop("DWAVE_API_TOKEN", None)
        env.pop("DWAVE_API_ENDPOINT", None)
        study = write_study(
            tmp_path,
            trainer="tests.plugins.keyed:KeyedTableTrainer",
            trainer_params={"api_key": STUDY_SECRET, "refuse_above": 0.45},
        )
        out = tmp_path / "out"
        runs = [
            subprocess.run(
                mpi_cmd(3, "run", study, "--out", str(out)),
                capture_output=True,
                text=True,
                env=env,
                cwd=REPO,
                timeout=120,
            )
        ]
        failures = [r for r in records(out) if r["type"] == "failure"]
        assert failures and runs[0].returncode == 0, runs[0].stderr  # the plugin did fail, and said so
        for argv in (
            ["status", str(out)],
            ["status", str(out), "--json"],
            ["report", str(out)],
            ["validate", study],
            [*qsvr_eval, "--param", f"num_reads={ENV_SECRET}"],
            ["--log-level", "DEBUG", "--log-level-all", *qsvr_eval, "--param", "sampler=dwave"],
        ):
            runs.append(hpoq(*argv, env=env, timeout=120))
        assert "Invalid token: ***" in runs[-1].stderr  # the endpoint did echo the token, masked
    secrets = (ENV_SECRET, CONF_SECRET, STUDY_SECRET)
    for proc in runs:
        for secret in secrets:
            assert secret not in proc.stdout + proc.stderr, (proc.args, secret)
    header, *rest = (out / "journal.jsonl").read_text().splitlines()
    assert STUDY_SECRET in header  # the journal header keeps the study as the user wrote it: resume needs it
    assert all(s not in line for line in rest for s in secrets)
    assert "***" in " ".join(r["reason"] for r in failures)
    for path in out.rglob("*"):
        if path.is_file() and path.name != "journal.jsonl":
            data = path.read_bytes()
            assert all(s.encode() not in data for s in secrets), path


# -- the closing line under a job script that requeues --------------------------------------------------------
def _job_script_env() -> dict:
    """The environment jobs/slurm_generic.sbatch gives its ranks for the master's closing line (read from the
    script itself, so the test fails when the script stops exporting it)."""
    text = (REPO / "jobs" / "slurm_generic.sbatch").read_text()
    line = next(x for x in text.splitlines() if x.startswith("export HPOQ_JOB_SCRIPT="))
    name, value = line.removeprefix("export ").split("=", 1)
    return dict(mpi_env(), **{name: value})


def _stopped(out: Path, study: str | None, sig, env: dict) -> str:
    """Start (or resume) the study, stop the master with ``sig`` after a result; its stderr."""
    argv = ["run", study, "--out", str(out)] if study else ["run", "--resume", str(out)]
    journal = out / "journal.jsonl"
    results = lambda: sum(r["type"] == "result" for r in records(out)) if journal.exists() else 0  # noqa: E731
    before = results()
    proc = subprocess.Popen(
        mpi_cmd(3, *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    try:
        wait_for(lambda: results() > before, proc)
        os.kill(next(r for r in reversed(records(out)) if r["type"] in ("header", "resume"))["pid"], sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and records(out)[-1]["status"] == "interrupted", err
    return err


@pytest.mark.mpi
def test_a_stop_under_the_slurm_job_script_leaves_what_comes_next_to_the_script(tmp_path):
    """`scontrol requeue` (TERM) and the script's USR1 requeue: the master must not say "continue with run
    --resume" (a second job on a directory Slurm resumes); a plain mpiexec user still reads it."""
    study = write_study(tmp_path, trainer="table", trainer_params={"sleep": 0.05})
    out = tmp_path / "out"
    for sig, env in ((signal.SIGTERM, _job_script_env()), (signal.SIGUSR1, _job_script_env())):
        err = _stopped(out, study if not out.exists() else None, sig, env)
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"hpoq: stopped by {sig.name}; it resumes from {out} when the job is requeued"), err
        assert "job script (slurm_generic.sbatch) says next which" in last and "run --resume" not in err, err
    err = _stopped(out, None, signal.SIGTERM, mpi_env())  # no job script: the user resumes by hand
    assert err.strip().splitlines()[-1] == f"hpoq: stopped by SIGTERM; continue with: run --resume {out}", err
    again = run_mpi(3, "run", "--resume", str(out))
    assert again.returncode == 0 and records(out)[-1]["status"] == "finished", again.stderr
