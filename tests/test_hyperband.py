"""Exact Hyperband schedules and budgets (method.md 2), and its invariants under hypothesis."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpoq.errors import ConfigError
from hpoq.schedulers import make_scheduler
from hpoq.schedulers.base import CONTINUE, DONE, PAUSE, STOP
from hpoq.schedulers.brackets import hyperband_budget, hyperband_schedule, s_max_of
from hpoq.schedulers.hyperband import Hyperband
from hpoq.schedulers.sampling import DedupeSampler
from tests.drivers import CountingSampler, Driver, decisions_of, drive, span, units_of


def synthetic_curve(x: int, epochs: int) -> np.ndarray:
    """A decreasing curve whose level depends on x pseudo-randomly (crossings included)."""
    rng = np.random.default_rng(x)
    level, rate = rng.uniform(0, 1), rng.uniform(0.05, 0.5)
    return level + np.exp(-rate * np.arange(1, epochs + 1)) * rng.uniform(0, 2)


def synthetic(R: int):
    """The curves :func:`drive` serves: ``synthetic_curve`` of the configuration's x."""
    return lambda config: synthetic_curve(config["x"], R)


def test_schedule_r100_eta2_matches_method_table():
    expected = {
        6: (64, [(64, 2), (32, 3), (16, 6), (8, 12), (4, 25), (2, 50), (1, 100)]),
        5: (38, [(38, 3), (19, 6), (9, 12), (4, 25), (2, 50), (1, 100)]),
        4: (23, [(23, 6), (11, 12), (5, 25), (2, 50), (1, 100)]),
        3: (14, [(14, 12), (7, 25), (3, 50), (1, 100)]),
        2: (10, [(10, 25), (5, 50), (2, 100)]),
        1: (7, [(7, 50), (3, 100)]),
        0: (7, [(7, 100)]),
    }
    got = {s: (n, rounds) for s, n, rounds in hyperband_schedule(100, 2)}
    assert got == expected


@pytest.mark.parametrize(
    "R,eta,brackets,configs,epochs",
    [
        (100, 2, 7, 163, 3213),
        (300, 2, 9, 608, 15380),
        (35, 2, 6, 84, 872),
        (50, 2, 6, 84, 1245),
        (100, 3, 5, 143, 1944),
    ],
)
def test_budgets(R, eta, brackets, configs, epochs):
    assert len(hyperband_schedule(R, eta)) == brackets
    assert hyperband_budget(R, eta) == (configs, epochs)


def test_round_half_up_would_give_3235():
    """The budget is sensitive to the rounding mode: half-up gives 3235 (12.5 -> 13), not 3213."""

    def budget_half_up(R, eta):
        total = 0
        s_max = s_max_of(R, eta)
        for s in range(s_max, -1, -1):
            n = -(-((s_max + 1) * eta**s) // (s + 1))
            r_prev = 0
            for i in range(s + 1):
                r = math.floor(Fraction(R, eta ** (s - i)) + Fraction(1, 2))
                total += (n // eta**i) * (r - r_prev)
                r_prev = r
        return total

    assert budget_half_up(100, 2) == 3235
    assert hyperband_budget(100, 2)[1] == 3213 != budget_half_up(100, 2)


def test_s_max_is_integer_exact():
    assert s_max_of(243, 3) == 5  # floating log(243, 3) gives 4.999...
    assert s_max_of(1, 2) == 0 and s_max_of(2, 2) == 1 and s_max_of(3, 2) == 1


@pytest.mark.parametrize("R,eta", [(0, 2), (-5, 2), (10, 1), (10, 0), (10, 2.5)])
def test_bad_r_eta_raise(R, eta):
    with pytest.raises(ConfigError):
        make_scheduler("hyperband", R=R, eta=eta, sampler=CountingSampler(), seed=0)


@settings(max_examples=40, deadline=None)
@given(R=st.integers(1, 120), eta=st.integers(2, 5), workers=st.integers(1, 7))
def test_hyperband_invariants(R, eta, workers):
    sched = make_scheduler("hyperband", R=R, eta=eta, sampler=CountingSampler(), seed=0)
    log = drive(sched, synthetic(R), R, workers=workers)
    units, decisions = units_of(log), decisions_of(log)
    configs, epochs = hyperband_budget(R, eta)
    # budget: epochs requested and configurations sampled are exactly Hyperband's
    assert sum(u.epochs for u in units) == epochs
    assert sched.ledger.sampler.drawn == configs
    # monotone epochs: every unit resumes where the trial's previous unit ended
    reached: dict[int, int] = {}
    for u in units:
        assert u.start_epoch == reached.get(u.trial_id, 0) and u.end_epoch > u.start_epoch
        reached[u.trial_id] = u.end_epoch
    # configurations per round: trials reaching each r_i of each bracket equal n_i
    first = 0
    for _s, n, rounds in hyperband_schedule(R, eta):
        ids = range(first, first + n)
        for n_i, r_i in rounds:
            assert sum(1 for t in ids if reached.get(t, 0) >= r_i) == n_i
        first += n
    # decisions: every trial ends DONE (reached R) or STOP (ranked out); the answer is the best at R
    last = {}
    for d in decisions:
        assert d.action in (CONTINUE, PAUSE, STOP, DONE)
        last[d.trial_id] = d
    assert all((d.action == DONE) == (reached[t] == R) for t, d in last.items())
    finals = {t: synthetic_curve(t, R)[R - 1] for t in reached if reached[t] == R}
    best = sched.best()
    assert best["value"] == pytest.approx(min(finals.values()))


def test_promotion_keeps_best_by_value_at_r_i_and_barrier():
    sched = make_scheduler("hyperband", R=100, eta=2, sampler=CountingSampler(), seed=0)
    first_round = [sched.suggest() for _ in range(64)]
    assert {(u.start_epoch, u.end_epoch) for u in first_round} == {(0, 2)}  # bracket s=6 round 0: 64 units
    values, others = {}, []
    for k, u in enumerate(first_round):
        curve = synthetic_curve(u.config["x"], 2)
        values[u.trial_id] = curve[1]
        decisions = sched.on_result(u.trial_id, curve.tolist())
        if k < 63:
            assert [d.action for d in decisions] == [PAUSE]
            other = sched.suggest()  # a free worker takes a unit of the next bracket (s=5: 38 units to epoch 3)
            assert other is not None and other.trial_id >= 64, "barrier: bracket s=6 waits for its round to end"
            others.append(other)
    assert [u.trial_id for u in others] == list(range(64, 64 + 38)) + list(range(102, 102 + 25))
    assert {(u.start_epoch, u.end_epoch) for u in others[:38]} == {(0, 3)}
    promoted = {d.trial_id for d in decisions if d.action == CONTINUE}
    stopped = {d.trial_id for d in decisions if d.action == STOP}
    expected = set(sorted(values, key=lambda t: (values[t], t))[:32])
    assert promoted == expected and len(stopped) == 32
    nxt = sched.suggest()
    assert nxt.trial_id in expected and (nxt.start_epoch, nxt.end_epoch) == (2, 3)  # resume: 1 more epoch
    assert all("cutoff" in d.info and "value" in d.info for d in decisions if d.action in (CONTINUE, STOP))


class Sequential(Hyperband):
    """Hyperband with its brackets one after the other (the schedule before brackets ran side by side)."""

    concurrent_brackets = False


class NoIdleWorker:
    """A :class:`~tests.drivers.Driver` watch: whenever a free worker gets nothing, no bracket has runnable
    work and none is left to open; ``busy`` is the most units in flight at once."""

    def __init__(self):
        self.busy = 0

    def __call__(self, sched, inflight, starved):
        self.busy = max(self.busy, len(inflight))
        if starved and sched.concurrent_brackets:
            assert not any(run.queue for run in sched.runs) and sched.opened == len(sched.brackets)


def drive_checked(sched, R, workers):
    """:func:`~tests.drivers.drive` on the synthetic curves, watched by :class:`NoIdleWorker`:
    (units, decisions, most units in flight)."""
    watch = NoIdleWorker()
    log = drive(sched, synthetic(R), R, workers=workers, watch=watch)
    return units_of(log), decisions_of(log), watch.busy


@settings(max_examples=25, deadline=None)
@given(R=st.integers(1, 120), eta=st.integers(2, 4), workers=st.integers(2, 60))
def test_no_worker_idles_while_a_bracket_has_work(R, eta, workers):
    side = make_scheduler("hyperband", R=R, eta=eta, sampler=CountingSampler(), seed=0)
    units, decisions, busy = drive_checked(side, R, workers)
    assert sum(u.epochs for u in units) == hyperband_budget(R, eta)[1]
    seq = Sequential(R=R, eta=eta, sampler=CountingSampler(), seed=0)
    seq_units, seq_decisions, seq_busy = drive_checked(seq, R, workers)
    # the same decisions about the same trials (each bracket's barrier is its own), only the order differs
    key = lambda d: (d.trial_id, d.epoch, d.action)  # noqa: E731
    assert sorted(map(key, decisions)) == sorted(map(key, seq_decisions))
    assert side.best() == seq.best()
    assert busy >= min(seq_busy, workers)


@pytest.mark.parametrize("R,eta", [(100, 2), (27, 3), (12, 2)])
def test_one_worker_runs_the_brackets_in_sequence(R, eta):
    side, _, _ = drive_checked(make_scheduler("hyperband", R=R, eta=eta, sampler=CountingSampler(), seed=0), R, 1)
    seq, _, _ = drive_checked(Sequential(R=R, eta=eta, sampler=CountingSampler(), seed=0), R, 1)
    assert side == seq
    assert (len({u.trial_id for u in side}), sum(u.epochs for u in side)) == hyperband_budget(R, eta)


def test_state_round_trip_with_brackets_side_by_side():
    """Snapshot with units of several brackets in flight; the restored scheduler re-runs the lost units
    and ends with the same decisions and answer as an uninterrupted run."""
    R, workers = 100, 40
    whole, whole_decisions, _ = drive_checked(
        make_scheduler("hyperband", R=R, eta=2, sampler=CountingSampler(), seed=0), R, workers
    )
    driver = Driver(
        make_scheduler("hyperband", R=R, eta=2, sampler=CountingSampler(), seed=0),
        synthetic(R),
        R,
        workers=workers,
        watch=NoIdleWorker(),
    )

    # run part of the study, 40 units at a time, until a round was promoted and units of several brackets are in flight
    def promoted_and_several_brackets_in_flight(d):
        promoted = any(x["action"] == CONTINUE for _, _, decisions in d.log for x in decisions)
        return promoted and len({d.sched.ledger.trials[u.trial_id].bracket for u in d.inflight}) >= 2

    done_epochs = sum(u.epochs for u in units_of(driver.run(until=promoted_and_several_brackets_in_flight)))
    lost = sorted(
        span(u) for u in driver.restore(make_scheduler("hyperband", R=R, eta=2, sampler=CountingSampler(), seed=0))
    )
    rest = units_of(driver.run())
    assert set(lost) <= {span(u) for u in rest}  # lost work is re-run
    assert done_epochs + sum(u.epochs for u in rest) == hyperband_budget(R, 2)[1]
    key = lambda d: (d.trial_id, d.epoch, d.action)  # noqa: E731
    assert sorted(map(key, decisions_of(driver.log))) == sorted(map(key, whole_decisions))
    assert driver.sched.best()["value"] == min(
        synthetic_curve(u.config["x"], R)[R - 1] for u in whole if u.end_epoch == R
    )


def test_dedupe_skips_repeats_and_keeps_the_draw_count():
    plain = make_scheduler("hyperband", R=100, eta=2, sampler=CountingSampler(period=50), seed=0)
    units, _, _ = drive_checked(plain, 100, 1)
    assert (plain.ledger.sampler.drawn, len({u.trial_id for u in units})) == (163, 163)  # repeats trained again
    sched = make_scheduler("hyperband", R=100, eta=2, sampler=DedupeSampler(CountingSampler(period=50)), seed=0)
    units, decisions, _ = drive_checked(sched, 100, 8)
    assert sched.ledger.sampler.drawn == 163 and sched.ledger.sampler.skipped == 163 - 50
    assert len({u.config["x"] for u in units}) == len({u.trial_id for u in units}) == 50
    # bracket s=6 (64 draws) keeps 50 members; the later brackets draw only repeats and are skipped
    r = [0] + [r_i for _, r_i in hyperband_schedule(100, 2)[0].rounds]
    survivors = [50, 25, 12, 6, 3, 1, 1]
    assert sum(u.epochs for u in units) == sum(n_i * (r[i + 1] - r[i]) for i, n_i in enumerate(survivors))
    assert sched.finished and sched.best() is not None
    # the state keeps the keys seen: a restored scheduler skips the same draws
    state = json.loads(json.dumps(sched.state_dict()))
    again = make_scheduler("hyperband", R=100, eta=2, sampler=DedupeSampler(CountingSampler(period=50)), seed=0)
    again.load_state_dict(state)
    assert again.ledger.sampler.skipped == 113 and again.ledger.sampler.draw() is None


def test_dedupe_refused_by_a_scheduler_that_cannot_skip():
    from hpoq.schedulers import SCHEDULERS, scheduler_class

    refusing = [name for name in SCHEDULERS if not scheduler_class(name).supports_dedupe]
    for name in refusing:
        with pytest.raises(ConfigError, match="does not support dedupe"):
            make_scheduler(name, R=9, eta=3, sampler=DedupeSampler(CountingSampler()), seed=0)


def test_failed_trial_is_never_promoted():
    sched = make_scheduler("hyperband", R=4, eta=2, sampler=CountingSampler(), seed=0)
    units = [sched.suggest() for _ in range(sched.brackets[0].n)]
    failed = units[0].trial_id
    out = sched.on_failure(failed, "NaN loss")
    assert out[0].action == "failed"
    decisions = []
    for u in units[1:]:
        decisions += sched.on_result(u.trial_id, [0.0] * u.epochs)  # all tie, failed one would win on id
    promoted = [d.trial_id for d in decisions if d.action == CONTINUE]
    assert failed not in promoted and promoted
