"""Study files, search spaces, the trainer registry, the table trainer and the journal (no MPI)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpoq.errors import ConfigError
from hpoq.runtime.journal import Journal, read_journal
from hpoq.study.build import build_scheduler
from hpoq.study.space import SearchSpace
from hpoq.study.spec import load_study
from hpoq.trainers import make_trainer, trainer_class
from hpoq.trainers.base import TrainerError

REPO = Path(__file__).resolve().parents[1]
TABLE = str(REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz")


def base_study(**over) -> dict:
    doc = {
        "name": "t",
        "seed": 0,
        "algorithm": {"name": "hyperband", "R": 9, "eta": 3},
        "trainer": {"name": "table", "params": {"table": TABLE}},
        "space": "table",
    }
    doc.update(over)
    return doc


def write_study(tmp_path, doc) -> str:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_defaults_and_paths_relative_to_study_file(tmp_path):
    sub = tmp_path / "studies"
    sub.mkdir()
    rel = os.path.relpath(TABLE, sub)
    path = sub / "s.yaml"
    doc = base_study(trainer={"name": "table", "params": {"table": rel}})
    del doc["name"]
    path.write_text(yaml.safe_dump(doc))
    spec = load_study(str(path))
    assert spec.name == "s" and spec.out == os.path.join("runs", "s")
    assert spec.trainer.params["table"] == os.path.normpath(TABLE)
    assert (spec.ranks_per_trial, spec.max_retries, spec.poll_interval, spec.algorithm.eta) == (1, 1, 0.01, 3)


@pytest.mark.parametrize(
    "doc, needle",
    [
        (
            base_study(algorithm={"name": "swift", "R": 9, "params": {"knwon_curve": 0.5}}),
            "algorithm.params.knwon_curve",
        ),
        (base_study(algorithm={"name": "hyperband", "R": 9, "etaa": 3}), "algorithm.etaa"),
        (base_study(algorithm={"name": "hyperband", "R": "nine"}), "algorithm.R"),
        (base_study(algorithm={"name": "nosuch", "R": 9}), "algorithm.name"),
        (base_study(seed=-1), "seed"),
        (base_study(ranks_per_trial=0), "ranks_per_trial"),
        (base_study(ranks_per_trial=1.5), "ranks_per_trial"),
        (base_study(poll_interval=0), "poll_interval"),
        (base_study(max_retries="x"), "max_retries"),
        (base_study(bogus=1), "bogus"),
        (base_study(trainer={"name": "table", "params": {"table": TABLE, "sleeep": 1}}), "trainer.params.sleeep"),
        (base_study(trainer={"name": "table", "params": {"table": "missing.csv"}}), "trainer.params.table"),
        (base_study(trainer={"name": "nosuch"}), "trainer.name"),
        (base_study(trainer={"name": "nosuch.module:Thing"}), "trainer.name"),
        (base_study(predictor={"name": "svr", "params": {"sampler": "sa"}}), "predictor"),
        (
            base_study(algorithm={"name": "swift", "R": 9}, predictor={"name": "svr", "params": {"no_such": 1}}),
            "predictor.params.no_such",
        ),
        (base_study(algorithm={"name": "swift", "R": 9}, predictor={"name": "nope"}), "predictor.name"),
        (base_study(space={"lr": {"type": "loguniform", "low": 0, "high": 1}}), "space.lr.low"),
        (base_study(space={"lr": {"type": "gauss"}}), "space.lr.type"),
        (base_study(space={"x": {"type": "uniform", "low": 0, "high": 1, "when": {"y": 1}}}), "space.x.when.y"),
        (
            base_study(
                space={
                    "a": {"type": "choice", "values": [1, 2], "when": {"b": 1}},
                    "b": {"type": "choice", "values": [1, 2], "when": {"a": 1}},
                }
            ),
            "form a cycle",
        ),
        (base_study(warm_fraction=1.0), "warm_fraction"),
        (base_study(warm_curves="nothere.h5"), "warm_curves.path"),
    ],
)
def test_bad_study_names_the_key(tmp_path, doc, needle):
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path, doc))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: {name: hyperband\n  R: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_study(str(tmp_path / "none.yaml"))


def test_R_beyond_table_epochs(tmp_path):
    spec = load_study(write_study(tmp_path, base_study(algorithm={"name": "hyperband", "R": 101})))
    with pytest.raises(ConfigError, match="exceeds the 100 epochs"):
        build_scheduler(spec)


def test_search_space_types_conditions_and_determinism():
    space_doc = {
        "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-1},
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
        "layers": {"type": "int", "low": 1, "high": 4},
        "width": {"type": "int", "low": 8, "high": 256, "log": True},
        "opt": {"type": "choice", "values": ["adam", "sgd"]},
        "momentum": {"type": "uniform", "low": 0.5, "high": 0.99, "when": {"opt": "sgd"}},
        "nesterov": {"type": "choice", "values": [True, False], "when": {"opt": "sgd", "layers": [3, 4]}},
    }
    a = SearchSpace.from_spec(space_doc, seed=7)
    configs = [a.sample() for _ in range(400)]
    assert all(1e-5 <= c["lr"] <= 1e-1 and 0 <= c["dropout"] <= 0.5 for c in configs)
    assert {c["layers"] for c in configs} == {1, 2, 3, 4}
    assert all(8 <= c["width"] <= 256 and isinstance(c["width"], int) for c in configs)
    assert sum(c["width"] < 45 for c in configs) > 150  # log scale: about half below the geometric mean
    assert all(("momentum" in c) == (c["opt"] == "sgd") for c in configs)
    assert all(("nesterov" in c) == (c["opt"] == "sgd" and c["layers"] >= 3) for c in configs)
    assert math.log10(min(c["lr"] for c in configs)) < -4.5 and math.log10(max(c["lr"] for c in configs)) > -1.5
    # same seed, same sequence; state round trip continues it; another seed differs
    b = SearchSpace.from_spec(space_doc, seed=7)
    assert [b.sample() for _ in range(10)] == configs[:10]
    c = SearchSpace.from_spec(space_doc, seed=7)
    c.load_state_dict(b.state_dict())
    assert c.sample() == configs[10]
    assert SearchSpace.from_spec(space_doc, seed=8).sample() != configs[0]


def test_declared_space_builds_a_scheduler(tmp_path):
    doc = base_study(
        trainer={"name": "tests.plugins.flaky:FlakyTableTrainer", "params": {"table": TABLE}},
        space={"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}},
    )
    spec = load_study(write_study(tmp_path, doc))
    unit = build_scheduler(spec).suggest()
    assert unit.start_epoch == 0 and set(unit.config) == {"lr"}


def test_trainer_registry_and_plugin_path():
    assert trainer_class("table").__name__ == "TableTrainer"
    assert trainer_class("tests.plugins.flaky:FlakyTableTrainer").name == "flaky-table"
    with pytest.raises(ConfigError, match="not a subclass"):
        trainer_class("hpoq.errors:ConfigError")
    with pytest.raises(ConfigError, match="no class"):
        trainer_class("hpoq.errors:Nothing")
    with pytest.raises(ConfigError, match="no such parameter"):
        make_trainer("table", {"table": TABLE, "speed": 2})


def test_table_trainer_replays_and_needs_its_checkpoint(tmp_path):
    trainer = make_trainer("table", {"table": TABLE})
    config = {"_row": 5}
    ckpt = str(tmp_path / "ck")
    first = trainer.train(config, 0, 3, ckpt)
    rest = trainer.train(config, 3, 9, ckpt)
    assert first + rest == [float(v) for v in trainer.table.curves[5, :9]]
    with pytest.raises(TrainerError, match="checkpoint holds row 5 epoch 9"):
        trainer.train(config, 3, 9, ckpt)
    with pytest.raises(TrainerError, match="no checkpoint"):
        trainer.train(config, 3, 9, str(tmp_path / "none"))
    with pytest.raises(TrainerError, match="_row"):
        trainer.train({"lr": 0.1}, 0, 1, ckpt)


def test_journal_tolerates_a_torn_last_line_and_cuts_it(tmp_path):
    path = str(tmp_path / "journal.jsonl")
    j = Journal.create(path)
    j.write("header", version=1, study={})
    j.write("unit", unit_id=0, trial_id=0, start_epoch=0, end_epoch=1, value=float("inf"))
    j.close()
    with open(path, "a") as fh:
        fh.write('{"type": "result", "unit_id": 0, "metr')  # killed mid-write
    records, valid = read_journal(path)
    assert [r["type"] for r in records] == ["header", "unit"] and records[1]["value"] == "inf"
    j = Journal.open_append(path, valid)
    j.write("end", status="finished")
    j.close()
    assert [r["type"] for r in read_journal(path)[0]] == ["header", "unit", "end"]
    lines = open(path).read().splitlines()
    lines.insert(1, "garbage")
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_journal(path)


def run_cli(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "hpoq.main", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_validate_cli(tmp_path):
    proc = run_cli("validate", str(REPO / "examples" / "mlpf-table.yaml"), "--ranks", "4")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["valid"] is True
    bad = write_study(tmp_path, base_study(algorithm={"name": "swift", "R": 9, "params": {"knwon_curve": 0.5}}))
    proc = run_cli("validate", bad)
    assert proc.returncode == 2 and "algorithm.params.knwon_curve" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("validate", str(REPO / "examples" / "mlpf-table.yaml"), "--ranks", "1")
    assert proc.returncode == 2 and "cannot form one trial group" in proc.stderr
