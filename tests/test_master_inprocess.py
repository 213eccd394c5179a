"""The master and the resume in one process: a fake transport stands in for the MPI ranks.

The real :class:`~hpoq.runtime.master.Master`, journal, checkpoints, scheduler and table trainer
run; only the message passing is replaced. Each unit the master sends to a group leader is trained
at once by the real :func:`~hpoq.runtime.worker.run_unit` with a real trainer, and its outcome
waits for the master's next probe -- or never comes (a hung rank), or the "job" dies before it is
delivered (a crash). The same studies also run under ``mpiexec`` in test_runtime.py and test_faults.py.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest
import yaml
from conftest import MLPF_TABLE

from hpoq.dispatch import Dispatch
from hpoq.errors import InternalError
from hpoq.main import main as hpoq_main
from hpoq.runtime.groups import TAG_RESULT, TAG_STOP, TAG_WORK
from hpoq.runtime.journal import read_journal
from hpoq.runtime.launch import prepare, run_master, start_master
from hpoq.runtime.signals import StopSignals
from hpoq.runtime.worker import run_unit
from hpoq.schedulers.brackets import hyperband_budget
from hpoq.study.build import build_scheduler, load_replay_table
from hpoq.study.spec import load_study
from hpoq.trainers import make_trainer

TABLE = str(MLPF_TABLE)
R, ETA = 9, 3


class JobDied(Exception):
    """The fake job ended under the master (a rank's crash takes the whole MPI job down)."""


class FakeRanks:
    """The worker ranks of a job, in-process: a transport for the master (rank 0) with real training."""

    def __init__(self, size: int, trainer, hang=lambda unit: False, die_after: int | None = None):
        self.size, self.rank = size, 0
        self.trainer, self.hang, self.die_after = trainer, hang, die_after
        self.inbox: deque = deque()  # (source, tag, payload) waiting for the master
        self.sent_units, self.stopped, self.aborted = 0, set(), None

    def probe(self, source=None, tag=None):
        for src, t, _ in self.inbox:
            if (source is None or src == source) and (tag is None or t == tag):
                return src, t
        return None

    def recv(self, source, tag):
        for i, (src, t, payload) in enumerate(self.inbox):
            if src == source and t == tag:
                del self.inbox[i]
                return payload
        raise AssertionError(f"no message from {source} with tag {tag}")

    def send(self, obj, dest, tag):
        if tag == TAG_STOP:
            self.stopped.add(dest)
            return
        assert tag == TAG_WORK and dest != 0
        self.sent_units += 1
        if self.die_after is not None and self.sent_units > self.die_after:
            raise JobDied(f"unit {obj['unit_id']} killed its rank")
        if self.hang(obj):
            return  # the rank never answers
        outcome = run_unit(self.trainer, Dispatch.from_message(obj), None)
        self.inbox.append((dest, TAG_RESULT, outcome.to_message()))

    def abort(self, code):
        self.aborted = code


def write_study(tmp_path, trainer=None, **over) -> str:
    doc = {
        "name": "s",
        "seed": 4,
        "algorithm": {"name": "hyperband", "R": R, "eta": ETA},
        "trainer": trainer or {"name": "table", "params": {"table": TABLE}},
        "space": "table",
        "poll_interval": 0.001,
    }
    doc.update(over)
    path = Path(tmp_path) / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def sequential_best(path: str) -> dict:
    spec = load_study(path)
    table = load_replay_table(spec)
    scheduler = build_scheduler(spec, table)
    curves = table.minimized()
    while not scheduler.finished:
        unit = scheduler.suggest()
        scheduler.on_result(unit.trial_id, curves[unit.config["_row"], unit.start_epoch : unit.end_epoch].tolist())
    return scheduler.best()


def run_job(study, out, ranks_of, resume=False, world: int = 4) -> tuple[int, FakeRanks]:
    """One invocation of the study on ``world`` fake ranks: ``ranks_of(plan)`` builds them; (exit code or None,
    ranks)."""
    plan = prepare(None if resume else study, str(out), str(out) if resume else None, world)
    ranks = ranks_of(plan)
    master, journal, budget = start_master(ranks, plan, StopSignals(), progress_enabled=False)
    try:
        code = run_master(plan, master, journal, budget)
    except JobDied:
        return None, ranks  # nothing more is written: the master died with its job
    finally:
        plan.lock.release()
    return code, ranks


def table_trainer(plan):
    return make_trainer(plan.spec.trainer.name, plan.spec.trainer.params)


def records(out) -> list[dict]:
    return read_journal(str(Path(out) / "journal.jsonl"))[0]


def results(recs) -> list[tuple]:
    return [(r["trial_id"], r["start_epoch"], r["end_epoch"]) for r in recs if r["type"] == "result"]


def test_master_runs_a_whole_study(tmp_path):
    study, out = write_study(tmp_path), tmp_path / "out"
    code, ranks = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan)))
    assert code == 0 and ranks.stopped == {1, 2, 3} and ranks.aborted is None
    recs = records(out)
    best, ref = recs[-1]["best"], sequential_best(study)
    assert recs[-1]["status"] == "finished" and best["trial_id"] == ref["trial_id"]
    units = results(recs)
    assert len(units) == len(set(units)) and sum(e - s for _, s, e in units) == hyperband_budget(R, ETA)[1]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"trial-{best['trial_id']:05d}"]


def test_failed_units_are_retried_then_failed(tmp_path):
    trainer = {
        "name": "tests.plugins.flaky:FlakyTableTrainer",
        "params": {"table": TABLE, "raise_mod": 7, "flaky_mod": 5},
    }
    study, out = write_study(tmp_path, trainer=trainer, seed=0), tmp_path / "out"
    code, _ = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan)))
    assert code == 0
    recs = records(out)
    rows = {r["trial_id"]: r["config"]["_row"] for r in recs if r["type"] == "config"}
    failures: dict[int, list] = {}
    for r in recs:
        if r["type"] == "failure":
            failures.setdefault(r["trial_id"], []).append(r["final"])
    assert failures
    for tid, finals in failures.items():
        if rows[tid] % 7 == 0:
            assert finals == [False, True]  # max_retries 1: one retry, then FAILED
        else:
            assert rows[tid] % 5 == 0 and finals == [False]  # flaky: the retry succeeds


@pytest.mark.parametrize("die_after", [5, 15])
def test_resume_after_the_job_died_counts_lost_units_once(tmp_path, die_after):
    study, out = write_study(tmp_path), tmp_path / "out"
    code, _ = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan), die_after=die_after))
    assert code is None
    before = records(out)
    assert before[-1]["type"] != "end"
    sent = {r["unit_id"] for r in before if r["type"] == "unit"}
    lost = sent - {r["unit_id"] for r in before if r["type"] == "result"}
    code, _ = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan)), resume=True)
    assert code == 0
    recs = records(out)
    resume = next(r for r in recs if r["type"] == "resume")
    assert set(resume["counted_lost"]) == lost
    failures = [r for r in recs if r["type"] == "failure"]
    assert {r["unit_id"] for r in failures} == lost and all(r["kind"] == "lost" and not r["final"] for r in failures)
    assert recs[-1]["status"] == "finished" and recs[-1]["best"]["trial_id"] == sequential_best(study)["trial_id"]
    units = results(recs)
    assert units[: len(results(before))] == results(before) and len(units) == len(set(units))
    # the re-runs went out one at a time: no other unit was sent while an isolated one ran
    order = [r for r in recs[len(before) :] if r["type"] in ("unit", "result")]
    isolated = [r["unit_id"] for r in order if r["type"] == "unit" and r.get("isolated")]
    assert len(isolated) == len(lost)
    for uid in isolated:
        i = next(k for k, r in enumerate(order) if r["type"] == "unit" and r["unit_id"] == uid)
        assert order[i + 1]["type"] == "result" and order[i + 1]["unit_id"] == uid


def test_a_hung_unit_times_out_and_the_resume_fails_its_configuration(tmp_path):
    study, out = write_study(tmp_path, unit_timeout=0.2), tmp_path / "out"
    spec = load_study(study)
    hang_row = build_scheduler(spec, load_replay_table(spec)).suggest().config["_row"]  # trial 0's units hang
    hang = lambda unit: unit["config"]["_row"] == hang_row  # noqa: E731
    code, ranks = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan), hang=hang))
    recs = records(out)
    assert ranks.aborted == 0 and recs[-1]["status"] == "interrupted" and "abort" in recs[-1]
    assert [r["kind"] for r in recs if r["type"] == "failure"] == ["timeout"]
    code, ranks = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan), hang=hang), resume=True)
    recs = records(out)
    timeouts = [r for r in recs if r["type"] == "failure"]
    assert [r["final"] for r in timeouts] == [False, True] and {r["trial_id"] for r in timeouts} == {0}
    assert recs[-1]["status"] == "finished" and ranks.aborted == 0  # finished, then the hung rank is aborted
    trial0 = [d for r in recs if r["type"] == "decision" for d in r["decisions"] if d["trial_id"] == 0]
    assert trial0 and trial0[-1]["action"] == "failed"


def test_a_scheduler_bug_ends_the_study_with_its_traceback(tmp_path):
    """An unexpected exception from suggest() is a bug, not bad input: journaled, then raised (exit 1, not 2)."""
    study, out = write_study(tmp_path), tmp_path / "out"
    plan = prepare(study, str(out), None, 4)
    ranks = FakeRanks(4, table_trainer(plan))
    master, journal, budget = start_master(ranks, plan, StopSignals(), progress_enabled=False)
    real, calls = master.scheduler.suggest, []

    def buggy_suggest():
        calls.append(1)
        if len(calls) > 3:
            raise ValueError("off by one in the bracket table")
        return real()

    master.scheduler.suggest = buggy_suggest
    try:
        with pytest.raises(InternalError, match="off by one") as info:
            run_master(plan, master, journal, budget)
    finally:
        plan.lock.release()
    assert isinstance(info.value.__cause__, ValueError)  # the scheduler's own traceback is kept
    recs = records(out)
    assert any(r["type"] == "scheduler_error" and "ValueError" in r["error"] for r in recs)
    assert recs[-1]["type"] == "end" and recs[-1]["status"] == "error" and ranks.stopped == {1, 2, 3}


def test_default_fits_on_the_fit_thread_and_the_end_record_times_them(tmp_path):
    """``default`` fits its forecast models on the master's fit thread; the end record splits the loop thread's
    CPU (``master_cpu_s``) from the fits' (``fit_cpu_s``) and gives the waits and the longest pass of the loop.
    With ``fit_lag`` set, a model is used that many results after its data is complete (a fit not done by then
    is waited for)."""
    algorithm = {"name": "default", "R": 27, "eta": 3, "params": {"fit_lag": 2}}
    study, out = write_study(tmp_path, algorithm=algorithm, warm_fraction=0.5), tmp_path / "out"
    code, _ = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan)))
    assert code == 0
    end = records(out)[-1]
    assert end["status"] == "finished" and end["best"]["epoch"] == 27
    assert end["fit_jobs"] > 0 and end["fit_cpu_s"] > 0 and end["master_cpu_s"] > 0
    assert 0 <= end["fit_waits"] <= end["fit_jobs"] and end["fit_wait_s"] >= 0
    assert end["max_dispatch_gap_s"] >= end["fit_wait_s"] / max(end["fit_waits"], 1) >= 0


def test_default_never_waits_for_a_fit_and_a_resume_replays_the_models(tmp_path, capsys):
    """The runtime's default ``fit_lag: null``: a model is used once the fit thread has it (journaled as a
    ``model`` record), so the loop never waits for a fit, here with units much shorter than a fit; every
    forecast decision names a model journaled before it, and a job killed midway resumes through the same
    models in the same order (the resume checks every replayed decision against the journal)."""
    algorithm = {"name": "default", "R": 27, "eta": 3}
    trainer = {"name": "table", "params": {"table": TABLE, "sleep": 0.002}}
    study, out = write_study(tmp_path, algorithm=algorithm, trainer=trainer, warm_fraction=0.5), tmp_path / "out"
    probe = prepare(study, str(tmp_path / "probe"), None, 4)
    assert probe.lock is None  # a fresh study locks its directory when its master starts
    assert probe.scheduler.scorer.fit_lag is None
    code, _ = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan), die_after=60))
    assert code is None
    code, _ = run_job(None, out, lambda plan: FakeRanks(4, table_trainer(plan)), resume=True)
    assert code == 0
    recs = records(out)
    assert recs[0]["study"]["algorithm"]["params"]["fit_lag"] is None
    ends = [r for r in recs if r["type"] == "end"]
    assert ends[-1]["status"] == "finished"
    assert all(e.get("fit_waits", 0) == 0 for e in ends)
    seen, used = set(), 0
    for r in recs:
        if r["type"] == "model":
            seen.add(tuple(r["key"]))
        elif r["type"] == "decision":
            for d in r["decisions"]:
                model = (d.get("info") or {}).get("model")
                if model:  # "svr:e->T@N"
                    e, rest = model.split(":")[1].split("->")
                    T, N = rest.split("@")
                    assert (int(e), int(T), int(N)) in seen, f"{model} used before it was journaled"
                    used += 1
    assert seen and used
    capsys.readouterr()
    assert hpoq_main(["status", str(out), "--json"]) == 0  # status shows default's audit
    audit = json.loads(capsys.readouterr().out)["audit"]
    stops = sum(1 for r in recs if r["type"] == "decision" for d in r["decisions"] if d["reason"] == "evidence")
    assert audit["stops"] <= stops and audit["stops"] + audit["audited"] + audit["pending"] > 0
