"""Campaign scale (issue 25): the bookkeeping that keeps a study's cost per unit flat behaves as before."""

from __future__ import annotations

import math
import os
import random

import pytest

from hpoq.runtime.checkpoints import Checkpoints
from hpoq.schedulers.rungs import Rungs, rung_epochs


def _trial(ckpt: Checkpoints, tid: int, epoch: int) -> str:
    path = ckpt.trial_dir(tid)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "state.json"), "w") as fh:
        fh.write(str(epoch))
    return path


def test_checkpoints_go_on_the_remover_thread_in_the_order_decided(tmp_path):
    # an earlier job left trial 7's start copy at epoch 2: found by the one listing of the folder
    old = Checkpoints(str(tmp_path))
    _trial(old, 7, 2)
    old.keep_start(7, 2)
    ckpt = Checkpoints(str(tmp_path))
    for tid in (1, 2):
        _trial(ckpt, tid, 1)
        ckpt.keep_start(tid, 1)  # hard links of the state at epoch 1
        _trial(ckpt, tid, 2)  # the unit trained on
    assert os.path.isdir(ckpt.start_copy(1, 1)) and os.path.isdir(ckpt.start_copy(7, 2))
    ckpt.drop_start(1, 1)
    assert os.path.isdir(ckpt.start_copy(1, 1))  # kept until the journal is synced
    ckpt.flush()
    ckpt.wait()
    assert not os.path.exists(ckpt.start_copy(1, 1)) and os.path.isdir(ckpt.trial_dir(1))
    # a trial decided done/pruned loses its checkpoint and its start copies, the best keeps its own
    ckpt.decided([2, 7, 1])
    status = {1: "done", 2: "pruned", 7: "failed"}.get
    deleted = ckpt.collect(best_trial=1, status_of=status, busy=set())
    assert deleted == [(2, ckpt.trial_dir(2)), (7, ckpt.trial_dir(7))]
    ckpt.wait()
    assert sorted(os.listdir(ckpt.root)) == ["trial-00001"]
    _trial(ckpt, 3, 1)
    assert ckpt.keep_only(1) == [(3, ckpt.trial_dir(3))]
    assert sorted(os.listdir(ckpt.root)) == ["trial-00001"]
    assert ckpt.delete_trial(99) is None


class NaiveRungs:
    """The rung bookkeeping as it was before issue 25 (sorted on every question): the reference."""

    def __init__(self, n_rungs: int, eta: int):
        self.eta = eta
        self.results = [[] for _ in range(n_rungs)]
        self.promoted = [set() for _ in range(n_rungs)]

    def record(self, k, tid, value):
        value = float(value) if math.isfinite(value) else math.inf
        self.results[k].append((value, tid))
        return sorted(self.results[k]).index((value, tid))

    def ranked(self, k, exclude=()):
        return [(v, t) for v, t in sorted(self.results[k]) if t not in exclude]

    def unpromoted(self, k, exclude=()):
        return [(v, t) for v, t in self.ranked(k, exclude) if t not in self.promoted[k]]

    def promotable(self, k, exclude=()):
        quota = len(self.results[k]) // self.eta
        for rank, (value, tid) in enumerate(self.ranked(k)[:quota]):
            if tid not in self.promoted[k] and tid not in exclude:
                return rank, value, tid
        return None


@pytest.mark.parametrize("seed", range(6))
def test_sorted_rungs_answer_as_sorting_every_time_did(seed):
    """Random results (ties, NaN, inf), promotions, exclusions and a save/load in the middle: every question
    gets the answer the sort-per-question bookkeeping gave."""
    rng = random.Random(seed)
    eta = rng.choice([2, 3])
    fast, slow = Rungs(27, eta), NaiveRungs(len(rung_epochs(27, eta)), eta)
    failed: set[int] = set()
    for step in range(600):
        k = rng.randrange(len(fast))
        tid = rng.randrange(150)
        what = rng.random()
        if what < 0.5:
            value = rng.choice([rng.random(), round(rng.random(), 1), math.nan, math.inf])
            if any(t == tid for _, t in slow.results[k]) and seed % 2:
                continue  # a trial is recorded once per rung (odd seeds); even seeds record twice too
            assert fast.record(k, tid, value)["rank"] == slow.record(k, tid, value)
        elif what < 0.75:
            fast.promote(k, tid)
            slow.promoted[k].add(tid)
        elif what < 0.8:
            failed.add(tid)
        if step == 300:
            restored = Rungs(27, eta)
            restored.load_state_dict(fast.state_dict())
            fast = restored
        for j in range(len(fast)):
            assert fast.ranked(j, failed) == slow.ranked(j, failed) and fast.quota(j) == len(slow.results[j]) // eta
            assert fast.unpromoted(j, failed) == slow.unpromoted(j, failed)
            assert fast.promotable(j, failed) == slow.promotable(j, failed)
            assert fast.first(j, failed) == (slow.ranked(j, failed) or [None])[0]
            assert fast.first_unpromoted(j, failed) == (slow.unpromoted(j, failed) or [None])[0]
    assert fast.state_dict()["results"] == [[[v, t] for v, t in res] for res in slow.results]
