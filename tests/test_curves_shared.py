"""Shared benchmark tables load, converters and the ``convert`` subcommand."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from hpoq.curves import load_table, read_store
from hpoq.curves.shared import load_shared
from hpoq.errors import ConfigError
from hpoq.main import main

EXPECTED = {  # name: (rows, epochs, metric, mode, n_hps)
    "mlpf": (295, 100, "loss", "min", 7),
    "mnist6": (800, 12, "acc", "max", 6),
    "mnist4": (800, 12, "acc", "max", 4),
    "mnist4rs42": (500, 12, "acc", "max", 4),
    "cifar10": (167, 200, "acc", "max", 5),
    "lcbench": (2000, 50, "val_balanced_accuracy", "max", 7),
    "taskset": (999, 51, "valid_loss", "min", 8),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_tables_load(shared_data, name):
    t = load_shared(name)
    rows, epochs, metric, mode, n_hps = EXPECTED[name]
    assert (t.n_rows, t.n_epochs, t.metric, t.mode, len(t.hp_names)) == (rows, epochs, metric, mode, n_hps)
    assert np.isfinite(t.curves).all()
    assert all(set(c) == set(t.hp_names) for c in t.configs)


def test_specific_conversions(shared_data):
    assert load_shared("mlpf", drop_outliers=False).n_rows == 296
    assert load_shared("mlpf").dropped == 1
    lc = load_shared("lcbench")
    assert lc.time is not None and (lc.time > 0).all()
    z = np.load(shared_data / "lcbench_lite" / "blood-transfusion-service-center_curves.npz")
    np.testing.assert_array_equal(lc.curves, z["val_balanced_accuracy"][:, 1:51])
    assert "index" not in load_shared("cifar10").hp_names
    ts = load_shared("taskset")
    assert ts.curves.max() <= 2.0 and ts.provenance["clipped_cells"] > 0 and ts.dropped == 1
    pooled = load_shared("taskset", task="all")
    assert pooled.n_rows == 12000 - 917 and pooled.hp_names[0] == "task"
    assert len({c["task"] for c in pooled.configs}) == 12
    with pytest.raises(ConfigError, match="unknown TaskSet task"):
        load_shared("taskset", task="nope")
    with pytest.raises(ConfigError, match="unknown shared table"):
        load_shared("imagenet")


def test_convert_cli_npz_to_csv_and_h5(shared_data, tmp_path, capsys):
    npz = shared_data / "lcbench_lite" / "blood-transfusion-service-center_curves.npz"
    out = tmp_path / "lc.csv.gz"
    assert main(["convert", str(npz), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 2000 and summary["epochs"] == 50
    t = load_table(str(out), "val_balanced_accuracy", "max", time_column="seconds_per_epoch")
    ref = load_shared("lcbench")
    np.testing.assert_array_equal(t.curves, ref.curves)
    np.testing.assert_array_equal(t.time, ref.time)
    assert t.configs == ref.configs
    h5 = tmp_path / "cifar.h5"
    assert main(["convert", "cifar10", "--out", str(h5)]) == 0
    np.testing.assert_array_equal(read_store(str(h5)).curves, load_shared("cifar10").curves)


def test_convert_cli_errors_exit_2_and_write_nothing(tmp_path, mlpf_table):
    cases = [
        ["convert", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o.csv")],
        ["convert", str(mlpf_table), "--out", str(tmp_path / "o.csv")],  # CSV needs --metric
        ["convert", str(mlpf_table), "--metric", "acc", "--out", str(tmp_path / "o.csv")],
        ["convert", "mlpf", "--out", str(tmp_path / "o.txt")],
        ["convert", "mlpf", "--out", str(tmp_path / "nodir" / "o.csv")],
    ]
    for argv in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "hpoq.main", *argv], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2, argv
        assert proc.stderr.startswith("hpoq: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []
