"""Campaign scale (issue 25): the bookkeeping that keeps a study's cost per unit flat behaves as before."""

from __future__ import annotations

import os

from hpoq.runtime.checkpoints import Checkpoints


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
