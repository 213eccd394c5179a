"""The one dispatcher (:mod:`hpoq.dispatch`): its rules, and the three backends that drive a scheduler through it.

The MPI master (in-process, on fake ranks with the real table trainer), the replay simulator and the resume
of a journal run the same study; with one trial group the master's journal and the simulator's events list
the same units and decisions in the same order, and a job cut at any event resumes to the same end.
"""

from __future__ import annotations

import pytest

from hpoq.dispatch import Dispatch, Dispatcher
from hpoq.errors import InternalError
from hpoq.journal import records
from hpoq.runtime.journal import read_journal, read_records
from hpoq.runtime.resume import replay
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.base import Scheduler
from hpoq.simulate.replay import ReplayBackend
from hpoq.study.build import build_scheduler, load_replay_table
from hpoq.study.spec import StudySpec
from tests.drivers import CountingSampler
from tests.test_master_inprocess import FakeRanks, run_job, table_trainer, write_study


class Ladder(Scheduler):
    """A scheduler written out by hand: trial i trains 0 -> 2 once, ``n`` trials; failures are final."""

    name = "ladder"

    def __init__(self, n: int = 4):
        self.n, self.drawn, self.running, self.done = n, 0, set(), set()

    def suggest(self):
        from hpoq.schedulers.base import WorkUnit

        if self.drawn >= self.n:
            return None
        self.drawn += 1
        self.running.add(self.drawn - 1)
        return WorkUnit(self.drawn - 1, {"x": self.drawn - 1}, 0, 2)

    def on_result(self, trial_id, metrics):
        from hpoq.schedulers.base import Decision

        self.running.discard(trial_id)
        self.done.add(trial_id)
        return [Decision(trial_id, "done", 2, "completed")]

    def on_failure(self, trial_id, reason):
        from hpoq.schedulers.base import Decision

        self.running.discard(trial_id)
        self.done.add(trial_id)
        return [Decision(trial_id, "failed", 0, "failed")]

    @property
    def finished(self):
        return len(self.done) == self.n

    def best(self):
        return None

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def started(d: Dispatcher) -> Dispatch:
    unit = d.next_unit()
    assert unit is not None
    return d.start(unit)


def test_a_failed_unit_is_retried_until_max_retries_then_reported():
    d = Dispatcher(Ladder(), 2, max_retries=1)
    unit = started(d)
    d.release(unit.unit_id)
    assert d.fail(unit, "trainer", "boom") == [] and [u.key for u in d.queue] == [unit.key]
    retry = started(d)
    assert retry.key == unit.key and retry.attempt == 1 and retry.source == "retry"
    d.release(retry.unit_id)
    (decision,) = d.fail(retry, "trainer", "boom again")
    assert decision.action == "failed" and not d.queue
    failures = [e for e in d.drain() if isinstance(e, records.Failure)]
    assert [(f.final, f.attempt) for f in failures] == [(False, 0), (True, 1)]


def test_retries_are_queued_by_kind_and_a_full_disk_is_not_counted():
    d = Dispatcher(Ladder(5), 4, max_retries=0)
    a, b, c, e = (started(d) for _ in range(4))
    for unit in (a, b, c, e):
        d.release(unit.unit_id)
    d.fail(a, "disk-full", "ENOSPC")  # never counted, never final: first in the queue
    d.fail(b, "lost", "job died", final=False)  # first, and alone
    d.fail(c, "timeout", "no result", final=False)  # held for the next job
    d.fail(e, "trainer", "x", final=False)  # last
    assert [(u.trial_id, u.isolate, u.held) for u in d.queue] == [
        (1, True, False),
        (0, False, False),
        (2, False, True),
        (3, False, False),
    ]
    assert d.failures == {1: 1, 2: 1, 3: 1}
    assert [u.trial_id for u in d.held()] == [2]
    # the isolated retry runs alone: nothing else starts while it runs, and it starts only once nothing runs
    lost = started(d)
    assert lost.isolate and d.next_unit() is None and d.isolating()
    d.release(lost.unit_id)
    assert started(d).trial_id == 0
    assert started(d).trial_id == 3  # the held retry is skipped in this job
    d.restart()
    assert [(u.trial_id, u.source, u.held) for u in d.queue][:3] == [
        (0, "resume", False),
        (3, "resume", False),
        (2, "retry", False),
    ]


def test_an_isolated_unit_waits_at_the_head_of_the_queue_for_the_running_ones():
    d = Dispatcher(Ladder(), 3)
    first = started(d)
    d.queue.appendleft(Dispatch(9, {}, 0, 2, isolate=True))
    assert d.next_unit() is None  # it waits for the unit in flight
    d.release(first.unit_id)
    assert started(d).trial_id == 9 and d.next_unit() is None


def test_put_back_runs_a_unit_first_again():
    d = Dispatcher(Ladder(), 2)
    unit = d.next_unit()
    d.put_back(unit)  # its start checkpoint could not be prepared
    assert [(u.trial_id, u.source) for u in d.queue] == [(0, "resume")]
    sent = started(d)
    d.put_back(sent)  # journaled, but its message could not follow
    assert [(u.trial_id, u.source) for u in d.queue] == [(0, "resume")] and not d.inflight
    assert list(d.free) == [sent.group, 1 - sent.group]


def test_scheduler_errors_fail_the_unit_in_on_result_and_stop_the_study_elsewhere():
    class Faulty(Ladder):
        def on_result(self, trial_id, metrics):
            raise ValueError("bad rung")

    d = Dispatcher(Faulty(), 1)
    unit = started(d)
    d.release(unit.unit_id)
    (decision,) = d.result(unit, records.Result(unit.unit_id, 0, 0, 2, [1.0, 0.5]))
    assert decision.action == "failed"
    kinds = [type(e).__name__ for e in d.drain()]
    assert kinds == ["Config", "Unit", "Result", "SchedulerError", "Failure", "Decisions"]
    strict = Dispatcher(Faulty(), 1, tolerate_errors=False)
    unit = started(strict)
    strict.release(unit.unit_id)
    with pytest.raises(ValueError, match="bad rung"):
        strict.result(unit, records.Result(unit.unit_id, 0, 0, 2, [1.0, 0.5]))

    class Broken(Ladder):
        def suggest(self):
            raise KeyError("bracket")

    d = Dispatcher(Broken(), 1)
    with pytest.raises(InternalError, match="cannot continue: suggest"):
        d.next_unit()
    assert isinstance(d.drain()[-1], records.SchedulerError)


def test_background_fits_are_a_protocol_of_the_scheduler_base():
    sched = make_scheduler("hyperband", R=9, eta=3, sampler=CountingSampler(), seed=0)
    assert not sched.background_fits and sched.fitted_models() == []
    sched.attach_fit_executor(object())  # accepted, unused
    with pytest.raises(InternalError, match="no models in the background"):
        sched.on_model_ready((1, 3, 4))
    assert make_scheduler("default", R=9, eta=3, sampler=CountingSampler(), seed=0).background_fits


def _events(recs: list[dict]) -> list[tuple]:
    out = []
    for r in recs:
        if r["type"] == "unit":
            out.append(("unit", r["trial_id"], r["start_epoch"], r["end_epoch"]))
        elif r["type"] == "decision":
            out.extend(("decision", d["trial_id"], d["action"], d["epoch"], d["reason"]) for d in r["decisions"])
    return out


@pytest.mark.parametrize(
    "algorithm",
    [
        {"name": "hyperband", "R": 9, "eta": 3},
        {"name": "asha", "R": 9, "eta": 3},
        {"name": "swift", "R": 9, "eta": 3, "params": {"d": 3}},
        {"name": "default", "R": 27, "eta": 3, "params": {"fit_lag": 2}},
    ],
    ids=lambda a: a["name"],
)
def test_master_replay_and_resume_drive_a_scheduler_alike(tmp_path, algorithm):
    study, out = write_study(tmp_path, algorithm=algorithm, warm_fraction=0.3), tmp_path / "out"
    code, _ = run_job(study, out, lambda plan: FakeRanks(2, table_trainer(plan)), world=2)  # one trial group
    assert code == 0
    recs = read_journal(str(out / "journal.jsonl"))[0]
    master = _events(recs)
    assert master and recs[-1]["status"] == "finished"

    # the simulator, on the same study (as the header resolved it) and one worker
    spec = StudySpec.from_dict(recs[0]["study"])
    table = load_replay_table(spec)
    sim = ReplayBackend(table, build_scheduler(spec, table), R=spec.algorithm.R, keep_events=True).run()
    assert [e[:4] if e[0] == "unit" else e for e in sim.events] == master

    # the resume: the whole journal replays on a fresh scheduler without a divergence, every call counted
    calls = sum(
        r["type"] in ("result", "idle", "model") or (r["type"] == "unit" and r["source"] == "suggest") for r in recs
    )
    typed = read_records(str(out / "journal.jsonl"))[0]
    assert replay(typed, build_scheduler(spec, table), recs[0]["mode"]).replayed == calls
    # a job that died after any number of units resumes to the same units and decisions (its lost unit again)
    for n in (len(master) // 6, len(master) // 3):
        cut = tmp_path / f"died{n}"
        code, _ = run_job(study, cut, lambda plan, n=n: FakeRanks(2, table_trainer(plan), die_after=n), world=2)
        assert code is None
        code, _ = run_job(None, cut, lambda plan: FakeRanks(2, table_trainer(plan)), resume=True, world=2)
        again = read_journal(str(cut / "journal.jsonl"))[0]
        lost = {u for r in again if r["type"] == "resume" for u in r["lost_units"]}
        assert code == 0 and len(lost) == 1
        assert _events([r for r in again if r.get("unit_id") not in lost or r["type"] != "unit"]) == master
