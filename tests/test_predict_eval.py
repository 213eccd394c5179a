"""``predict-eval``: protocol, JSON keys, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

from hpoq.curves import load_table, write_store
from hpoq.main import main
from hpoq.predict.evaluate import grouped_split, hp_groups, known_epochs

KEYS = {"r2", "mae", "spearman", "r2_min", "n", "epochs", "known_epochs", "fit_seconds"}


def _run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_output_and_protocol(mlpf_table, capsys):
    out = _run_json(
        capsys,
        [
            "predict-eval",
            "--table",
            str(mlpf_table),
            "--metric",
            "loss",
            "--known",
            "0.25",
            "--predictor",
            "svr",
            "--seeds",
            "0-1",
            "--json",
        ],
    )
    assert KEYS <= set(out)
    assert (out["n"], out["epochs"], out["known_epochs"], out["seeds"]) == (296, 100, 25, [0, 1])
    assert out["r2_min"] <= out["r2"] <= 1 and 0.5 < out["spearman"] <= 1 and out["mae"] > 0
    assert len(out["per_seed"]) == 2 and out["per_seed"][0]["n_test"] + out["per_seed"][0]["n_train"] == 296


def test_grouped_split_keeps_reruns_together(mlpf_table):
    t = load_table(str(mlpf_table), "loss")
    groups = hp_groups(t.configs)
    assert len(set(groups.tolist())) == 183  # method.md 6: 183 distinct configurations
    train, test = grouped_split(t.configs, seed=3)
    assert not set(groups[train]) & set(groups[test])
    assert 0.15 < len(test) / t.n_rows < 0.25
    assert hp_groups([{"_row": 1, "a": 1}, {"_row": 2, "a": 1}]).tolist() == [0, 0]  # '_' keys ignored


def test_known_epochs_rounding():
    assert known_epochs(0.25, 100) == 25 and known_epochs(0.1, 12) == 2 and known_epochs(0.3, 10) == 3
    assert known_epochs(0.01, 12) == 1


def test_store_and_shared_name_and_default_predictor(mlpf_table, tmp_path, capsys):
    h5 = tmp_path / "mlpf.h5"
    write_store(str(h5), load_table(str(mlpf_table), "loss"))
    a = _run_json(
        capsys, ["predict-eval", "--table", str(h5), "--known", "0.5", "--predictor", "svr", "--seeds", "0", "--json"]
    )
    b = _run_json(
        capsys,
        [
            "predict-eval",
            "--table",
            str(mlpf_table),
            "--metric",
            "loss",
            "--known",
            "0.5",
            "--predictor",
            "svr",
            "--seeds",
            "0",
            "--json",
        ],
    )
    assert a["r2"] == pytest.approx(b["r2"], abs=1e-12)
    c = _run_json(capsys, ["predict-eval", "--table", "mlpf", "--known", "0.25", "--seeds", "0", "--json"])
    assert c["predictor"] == "default" and c["n"] == 295 and c["r2"] > 0.8


def test_bad_inputs_exit_2_one_line(tmp_path, mlpf_table, capsys):
    few = tmp_path / "few.csv"
    few.write_text("a,loss_1,loss_2,loss_3\n" + "".join(f"{i},{i},{i / 2},{i / 3}\n" for i in range(1, 6)))
    base = ["predict-eval", "--metric", "loss", "--predictor", "svr"]
    cases = {
        "does not exist": base + ["--table", str(tmp_path / "missing.csv"), "--known", "0.25"],
        "no columns acc_": ["predict-eval", "--table", str(mlpf_table), "--metric", "acc", "--known", "0.25"],
        "--known must lie in": base + ["--table", str(mlpf_table), "--known", "1.0"],
        "--known: 'x' is not": base + ["--table", str(mlpf_table), "--known", "x"],
        "too few rows": base + ["--table", str(few), "--known", "0.5"],
        "unknown predictor 'nope'": [
            "predict-eval",
            "--table",
            str(mlpf_table),
            "--metric",
            "loss",
            "--known",
            "0.5",
            "--predictor",
            "nope",
        ],
        "has no parameter 'bogus'": base + ["--table", str(mlpf_table), "--known", "0.5", "--param", "bogus=1"],
    }
    for message, argv in cases.items():
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("hpoq: error: ") and message in err and err.count("\n") == 1, err
    assert main(base + ["--table", str(mlpf_table), "--known", "0"]) == 2
    capsys.readouterr()
    # the real process: exit code 2, one line on stderr, nothing on stdout, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "hpoq.main", *cases["too few rows"], "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
