"""HDF5 curve store: lossless CSV <-> HDF5 round trip, appendable writer, bad files."""

import gzip
import os

import h5py
import numpy as np
import pytest

from hpoq.curves import CurveStore, load_table, read_store, write_store, write_table
from hpoq.curves.store import read_store_trial_ids
from hpoq.errors import ConfigError


def _assert_same(a, b):
    assert a.hp_names == b.hp_names and a.metric == b.metric and a.mode == b.mode
    assert a.configs == b.configs
    np.testing.assert_array_equal(a.curves, b.curves)
    assert (a.time is None) == (b.time is None)
    if a.time is not None:
        np.testing.assert_array_equal(a.time, b.time)


def test_csv_hdf5_csv_round_trip_is_lossless(mlpf_table, tmp_path):
    src = load_table(str(mlpf_table), "loss")
    h5 = tmp_path / "mlpf.h5"
    write_store(str(h5), src, provenance={"from": "test"})
    back = read_store(str(h5))
    _assert_same(src, back)
    assert back.provenance["from"] == "test" and back.provenance["first_epoch"] == 0
    assert back.lengths.tolist() == [100] * src.n_rows
    out = tmp_path / "again.csv.gz"
    write_table(str(out), back)
    again = load_table(str(out), "loss")
    _assert_same(src, again)
    # header identical to the source file (loss_0..loss_99, same HP columns)
    assert gzip.open(out, "rt").readline() == gzip.open(mlpf_table, "rt").readline().replace("\r", "")


def test_categoricals_and_time_survive(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("opt,lr,secs,acc_1,acc_2,acc_3\nadam,0.001,2.5,0.1,0.2,0.3\nsgd,0.1,1.25,0.15,0.25,0.35\n")
    t = load_table(str(csv_path), "acc", mode="max", time_column="secs")
    write_store(str(tmp_path / "t.h5"), t)
    back = read_store(str(tmp_path / "t.h5"))
    _assert_same(t, back)
    assert back.configs[0]["opt"] == "adam" and back.mode == "max"


def test_appendable_store_grows_and_reopens(tmp_path):
    path = str(tmp_path / "run.h5")
    with CurveStore(path, metric="loss", mode="min", hp_names=["lr", "act"]) as store:
        store.append(0, {"lr": 0.1, "act": "relu"}, [3.0, 2.0])
        store.append("t1", {"lr": 0.01, "act": "tanh"}, [4.0])
        # readable by another reader while the writer is open (flushed after each append)
        mid = read_store(path)
        assert mid.n_rows == 2 and mid.lengths.tolist() == [2, 1]
        store.extend("t1", [3.5, 3.0, 2.5])
        store.update(0, [3.0, 2.0, 1.5])
        with pytest.raises(ConfigError, match="already has trial"):
            store.append(0, {}, [1.0])
        with pytest.raises(ConfigError, match="no trial"):
            store.extend(99, [1.0])
    t = read_store(path)
    assert t.n_epochs == 4 and t.lengths.tolist() == [3, 4]
    np.testing.assert_array_equal(t.curves[0, :3], [3.0, 2.0, 1.5])
    assert np.isnan(t.curves[0, 3])
    np.testing.assert_array_equal(t.curves[1], [4.0, 3.5, 3.0, 2.5])
    assert t.configs[1] == {"lr": 0.01, "act": "tanh"} and t.time is None
    assert read_store_trial_ids(path) == [0, "t1"]
    with CurveStore(path) as store:  # reopen for appending
        assert 0 in store and "t1" in store and len(store) == 2
        store.append(2, {"lr": 1.0, "act": "relu"}, [9.0], time=3.5)
        np.testing.assert_array_equal(store.curve("t1"), [4.0, 3.5, 3.0, 2.5])
    assert read_store(path).n_rows == 3
    with pytest.raises(ConfigError, match="holds 'loss'"):
        CurveStore(path, metric="acc")


def test_bad_files_raise_hpoq_error(tmp_path, mlpf_table):
    with pytest.raises(ConfigError, match="does not exist"):
        read_store(str(tmp_path / "nope.h5"))
    good = tmp_path / "good.h5"
    write_store(str(good), load_table(str(mlpf_table), "loss"))
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(ConfigError, match="trunc.h5"):
        read_store(str(truncated))
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ConfigError, match="not an hpoq curve store"):
        read_store(str(foreign))
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(ConfigError, match="not a readable HDF5"):
        read_store(str(text))


def test_write_store_validates_before_writing(tmp_path, mlpf_table):
    t = load_table(str(mlpf_table), "loss")
    t.configs = t.configs[:-1]
    with pytest.raises(ConfigError, match="configs for"):
        write_store(str(tmp_path / "x.h5"), t)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ConfigError, match="directory"):
        write_store(str(tmp_path / "no" / "x.h5"), load_table(str(mlpf_table), "loss"))


def test_a_study_s_curves_are_written_at_once_and_reopen_for_appending(tmp_path):
    """outputs.write_curves_store: one write of every trial with a curve (trial order, own lengths, seconds per
    epoch), the same store an append per trial gave: trial ids, configs, NaN padding, and appendable again."""
    from hpoq.journal.state import StudyState, TrialState
    from hpoq.runtime.outputs import write_curves_store

    state = StudyState("max")
    state.trials = {
        2: TrialState(2, {"lr": 0.1, "_row": 5}, [0.5, 0.6, 0.7], seconds=3.0),
        0: TrialState(0, {"lr": 0.01, "act": "relu", "_row": 1}, [0.2], seconds=0.5),
        1: TrialState(1, {"lr": 1.0}, []),  # never trained: no row
    }
    path = str(tmp_path / "curves.h5")
    write_curves_store(state, path, "acc", "max", provenance={"study": "s"})
    t = read_store(path)
    assert read_store_trial_ids(path) == [0, 2] and t.hp_names == ["lr", "act"] and t.mode == "max"
    assert t.configs == [{"lr": 0.01, "act": "relu", "_row": 1}, {"lr": 0.1, "_row": 5}]
    assert t.lengths.tolist() == [1, 3] and t.provenance == {"study": "s"}
    np.testing.assert_array_equal(t.curves[1], [0.5, 0.6, 0.7])
    assert t.curves[0, 0] == 0.2 and np.isnan(t.curves[0, 1:]).all()
    np.testing.assert_allclose(t.time, [0.5, 1.0])
    with CurveStore(path) as store:
        assert 2 in store and 1 not in store
        store.append(1, {"lr": 1.0}, [0.9])
    assert read_store_trial_ids(path) == [0, 2, 1]
    write_curves_store(StudyState(), str(tmp_path / "empty.h5"), "loss", "min")
    assert read_store(str(tmp_path / "empty.h5")).n_rows == 0
