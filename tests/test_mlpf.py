"""MLPF: generator, HDF5 shards and manifest, model masking and invariance, loss, sampler, resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the MLPF tests need torch (pip install 'hpoq[mlpf]')")

from hpoq.errors import ConfigError  # noqa: E402
from hpoq.mlpf import events as ev  # noqa: E402
from hpoq.mlpf.batches import PreparedEvents  # noqa: E402
from hpoq.mlpf.generator import generate_event, generate_events, make_config  # noqa: E402
from hpoq.mlpf.loss import DEFAULT_WEIGHTS, combine, loss_sums  # noqa: E402
from hpoq.mlpf.model import MiniMLPF, model_config  # noqa: E402
from hpoq.mlpf.sampler import DistributedBatchPlan  # noqa: E402
from hpoq.mlpf.training import TrainSettings, train_unit  # noqa: E402
from hpoq.mlpf.writer import generate_dataset  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlpf-data")
    generate_dataset(out, 240, seed=5, preset="clic", shards=2, val_fraction=0.25)
    return out


@pytest.fixture(scope="module")
def prepared(data_dir):
    return ev.read_manifest(data_dir), PreparedEvents(ev.load_split(data_dir, "train"))


# ---------------------------------------------------------------- generator


@pytest.mark.parametrize("preset", ["easy", "clic", "dense"])
def test_generator_invariants(preset):
    cfg = make_config(preset)
    for j in range(20):
        e = generate_event(cfg, 7, j)
        acc = e.accounting
        assert acc["kept"] + acc["merged"] + acc["dropped"] == pytest.approx(acc["visible"], rel=1e-9)
        X, y = e.X, e.ytarget
        assert X.shape[1] == 17 and y.shape == (X.shape[0], 14)
        assert np.isfinite(X).all() and np.isfinite(y).all()
        types = X[:, 0]
        assert set(np.unique(types)) <= {1.0, 2.0}
        assert (np.diff(types) >= 0).all(), "tracks must come first"
        assert np.all(np.abs(X[:, 3:5]) <= 1.0 + 1e-6) and np.all(np.abs(y[:, 4:6]) <= 1.0 + 1e-6)
        assert (y[types == 2, 1] == 0).all(), "cluster targets are neutral"
        assert set(np.unique(y[types == 2, 0])) <= {0.0, 2.0, 3.0}
        assert set(np.unique(y[types == 1, 0])) <= {0.0, 1.0, 4.0, 5.0}
        owners = y[y[:, 0] > 0, 13]
        assert owners.size == np.unique(owners).size, "one target per particle"
        if preset == "easy":
            assert acc["n_merged"] == 0


@pytest.mark.parametrize("preset", ["easy", "clic"])
def test_baseline_pf_jet_response_is_one_within_ten_percent(preset):
    from hpoq.mlpf.jets import jet_pt_ratios, response_summary

    events = generate_events(make_config(preset), 0, range(150))
    cand = response_summary(np.concatenate([jet_pt_ratios(e.ycand, e.genjets) for e in events]))
    target = response_summary(np.concatenate([jet_pt_ratios(e.ytarget, e.genjets) for e in events]))
    assert abs(cand["median"] - 1.0) < 0.1 and cand["match_fraction"] > 0.9, cand
    assert abs(target["median"] - 1.0) < 0.05, target


def test_generator_is_deterministic_per_event():
    cfg = make_config("clic")
    a, b = generate_event(cfg, 3, 17), generate_event(cfg, 3, 17)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.ytarget, b.ytarget)
    other = generate_event(cfg, 4, 17)
    assert other.X.shape != a.X.shape or not np.array_equal(other.X, a.X)
    # vectorised blocks: an event is the same whatever block it is generated in
    block = generate_events(cfg, 3, range(10, 30))
    assert np.array_equal(block[7].X, a.X) and np.array_equal(block[7].ycand, a.ycand)
    assert all(np.array_equal(x.genjets, y.genjets) for x, y in zip(block[5:9], generate_events(cfg, 3, range(15, 19))))


def test_shards_are_byte_identical_and_independent_of_workers(tmp_path):
    generate_dataset(tmp_path / "a", 120, seed=9, shards=2, val_fraction=0.25)
    generate_dataset(tmp_path / "b", 120, seed=9, shards=2, val_fraction=0.25, workers=2)
    ma, mb = ev.read_manifest(tmp_path / "a"), ev.read_manifest(tmp_path / "b")
    assert ma["content_hash"] == mb["content_hash"]
    for sh in ma["splits"]["train"]["shards"] + ma["splits"]["val"]["shards"]:
        assert (tmp_path / "a" / sh["path"]).read_bytes() == (tmp_path / "b" / sh["path"]).read_bytes()
    # one train shard instead of two: the same events (event j depends only on (seed, j))
    generate_dataset(tmp_path / "c", 120, seed=9, shards=1, val_fraction=0.25)
    assert np.array_equal(ev.load_split(tmp_path / "a", "train").X, ev.load_split(tmp_path / "c", "train").X)


def test_manifest_and_layout(data_dir):
    m = ev.read_manifest(data_dir)
    assert m["input_dim"] == 17 and m["num_classes"] == 6 and m["splits"]["train"]["n_events"] == 180
    with h5py.File(data_dir / m["splits"]["train"]["shards"][0]["path"], "r") as f:
        assert f["elements/X"].chunks[0] <= 1024 and f["elements/X"].compression == "lzf"
        assert f["stats/x_mean"].shape == (3, 17)
        assert json.loads(f.attrs["x_features"])[0] == "elemtype"
    arr = ev.load_split(data_dir, "val")
    assert arr.n_events == 60 and arr.offsets[-1] == arr.X.shape[0]
    reader = ev.ShardReader(data_dir / m["splits"]["val"]["shards"][0]["path"])
    X5, _ = reader.event(5)
    assert np.array_equal(X5, arr.X[arr.offsets[5] : arr.offsets[6]])
    reader.close()


def test_index_shards_rebuilds_the_manifest(data_dir, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(data_dir, d)
    original = ev.read_manifest(d)
    (d / ev.MANIFEST).unlink()
    rebuilt = ev.index_shards(d)
    assert ev.read_manifest(d)["content_hash"] == original["content_hash"]
    for split in ("train", "val"):
        assert [s["n_events"] for s in rebuilt["splits"][split]["shards"]] == [
            s["n_events"] for s in original["splits"][split]["shards"]
        ]
    assert np.allclose(rebuilt["stats"]["x_mean"], original["stats"]["x_mean"], rtol=1e-5, atol=1e-6)
    assert np.allclose(rebuilt["stats"]["x_std"], original["stats"]["x_std"], rtol=1e-5, atol=1e-6)


def test_truncated_shard_gives_clear_error(data_dir, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(data_dir, d)
    shard = d / ev.read_manifest(d)["splits"]["train"]["shards"][0]["path"]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="truncated"):
        ev.load_split(d, "train")
    with pytest.raises(ConfigError, match="truncated or not an HDF5 file"):
        ev.check_shard(shard, ev.read_manifest(d))
    (d / "foreign.h5").write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(ConfigError, match="not an HDF5 file"):
        ev.check_shard(d / "foreign.h5", ev.read_manifest(d))
    (d / ev.MANIFEST).write_text("{broken")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ev.read_manifest(d)


def test_wrong_feature_count_gives_clear_error(data_dir, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(data_dir, d)
    m = ev.read_manifest(d)
    rel = m["splits"]["train"]["shards"][0]["path"]
    with h5py.File(d / rel, "r+") as f:
        X = f["elements/X"][:]
        del f["elements/X"]
        f.create_dataset("elements/X", data=X[:, :16])
    splits = {
        name: [{k: s[k] for k in ("path", "n_events", "n_elements")} for s in sp["shards"]]
        for name, sp in m["splits"].items()
    }
    ev.write_manifest(
        d,
        splits,
        schema=m["schema"],
        x_features=m["x_features"],
        class_labels=m["class_labels"],
        elem_types=m["elem_types"],
        source=m["source"],
        stats=m["stats"],
    )
    with pytest.raises(ConfigError, match="has 16 features but the manifest lists 17"):
        ev.load_split(d, "train")


def test_generate_data_cli_bad_input_exit_2(tmp_path):
    base = [sys.executable, "-m", "hpoq.main", "generate-data", "--out", str(tmp_path / "x")]
    for extra in (
        ["--events", "0", "--seed", "1"],
        ["--events", "10", "--seed", "1", "--preset", "nope"],
        ["--events", "10", "--seed", "1", "--shards", "0"],
        ["--events", "10", "--seed", "1", "--param", "bogus=3"],
        ["--events", "10", "--seed", "1", "--param", "sqrt_s=abc"],
        ["--events", "10", "--seed", "-1"],
    ):
        proc = subprocess.run(base + extra, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("hpoq: error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "x" / ev.MANIFEST).exists()
    ok = subprocess.run(base + ["--events", "20", "--seed", "1"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and json.loads(ok.stdout)["splits"]["train"]["n_events"] == 16
    again = subprocess.run(base + ["--events", "20", "--seed", "1"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr


# ---------------------------------------------------------------- model


def _model(manifest, **kw):
    torch.manual_seed(0)
    cfg = model_config("tiny", **kw)
    return MiniMLPF(cfg, np.asarray(manifest["stats"]["x_mean"]), np.asarray(manifest["stats"]["x_std"])).eval()


@pytest.mark.parametrize("conv_type", ["attention", "knn", "lsh", "none"])
def test_shapes_and_padding_never_changes_real_outputs(prepared, conv_type):
    manifest, train = prepared
    model = _model(manifest, conv_type=conv_type, charge_head=True, task_queries=conv_type != "knn")
    b = train.batch(np.arange(4))
    B, N = b["mask"].shape
    with torch.no_grad():
        out = model(b["X"], b["mask"])
        assert [tuple(o.shape) for o in out] == [(B, N, 2), (B, N, 6), (B, N, 5), (B, N, 2), (B, N, 3)]
        padded = torch.nn.functional.pad(b["X"], (0, 0, 0, 37))  # 37 extra padding elements
        out_p = model(padded)
    for o, op in zip(out, out_p):
        real = b["mask"]
        assert torch.allclose(o[real], op[:, :N][real], atol=1e-5)
        assert (op[:, N:] == 0).all(), "padding outputs must be zero"
    # one event alone gives the same outputs as inside the batch
    n0 = int(b["mask"][0].sum())
    with torch.no_grad():
        alone = model(b["X"][:1, :n0])
    assert torch.allclose(alone[1][0], out[1][0, :n0], atol=1e-5)


@pytest.mark.parametrize("conv_type", ["attention", "knn"])
def test_permutation_invariance(prepared, conv_type):
    manifest, train = prepared
    model = _model(manifest, conv_type=conv_type)
    b = train.batch(np.array([3]))
    perm = torch.randperm(b["X"].shape[1], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(b["X"])
        out_p = model(b["X"][:, perm])
    for o, op in zip(out, out_p):
        assert torch.allclose(o[:, perm], op, atol=1e-5)


def test_energy_floor_and_loss_terms(prepared):
    manifest, train = prepared
    model = _model(manifest)
    b = train.batch(np.arange(8))
    with torch.no_grad():
        out = model(b["X"], b["mask"])
    X, mom = b["X"], out[2]
    real = b["mask"]
    p_pred = torch.exp(mom[..., 0]) * X[..., 1] * torch.cosh(mom[..., 1])
    e_pred = torch.exp(mom[..., 4]) * X[..., 5]
    assert (e_pred[real] >= p_pred[real] * (1 - 1e-4)).all(), "E >= |p| floor"
    s = loss_sums(out, b, 2.0)
    assert float(s["n_valid"]) == float(real.sum())
    terms = combine(s, DEFAULT_WEIGHTS, s["n_valid"], s["n_particles"])
    assert float(terms["total"]) == pytest.approx(
        float(terms["binary"] + terms["classification"] + terms["regression"])
    )


def test_loss_decreases_and_context_beats_per_element_baseline(data_dir, tmp_path):
    settings = TrainSettings(data=str(data_dir), R=6, backend="none", device="cpu", seed=1)
    attn = train_unit(settings, {"lr": 3e-3, "token_budget": 2048}, 0, 6, tmp_path / "a")
    base = train_unit(settings, {"lr": 3e-3, "token_budget": 2048, "conv_type": "none"}, 0, 6, tmp_path / "b")
    assert attn[-1] < 0.8 * attn[0], attn
    assert attn[-1] < base[-1], (attn, base)


def test_resume_equals_straight_through(data_dir, tmp_path):
    settings = TrainSettings(data=str(data_dir), R=3, backend="none", device="cpu", seed=2, secondary_metrics=True)
    config = {
        "lr": 2e-3,
        "dropout": 0.1,
        "optimizer": "lamb",
        "schedule": "onecycle",
        "warmup_frac": 0.05,
        "token_budget": 2048,
    }
    straight, s_state = train_unit(settings, config, 0, 3, tmp_path / "s", return_state=True)
    log = [json.loads(line) for line in (tmp_path / "s" / "mlpf-metrics.jsonl").read_text().splitlines()]
    assert [r["val_loss"] for r in log] == straight
    assert all(0.0 < r["jet_response_median"] < 2.5 and 0.0 <= r["jet_match_fraction"] <= 1.0 for r in log)
    first = train_unit(settings, config, 0, 1, tmp_path / "r")
    rest, r_state = train_unit(settings, config, 1, 3, tmp_path / "r", return_state=True)
    assert first + rest == straight
    assert all(torch.equal(s_state[k], r_state[k]) for k in s_state)
    # resuming with other hyperparameters than the checkpoint's is refused
    with pytest.raises(ConfigError, match="is at epoch 3, not 1"):
        train_unit(settings, config, 1, 2, tmp_path / "r")
    shutil.copytree(tmp_path / "r", tmp_path / "o")
    with pytest.raises(ConfigError, match="different config"):
        train_unit(TrainSettings(**{**settings.__dict__, "R": 4}), dict(config, lr=1e-3), 3, 4, tmp_path / "o")


def test_lazy_shard_reading_trains_identically(data_dir, tmp_path):
    settings = TrainSettings(data=str(data_dir), R=2, backend="none", device="cpu", seed=4, secondary_metrics=True)
    config = {"lr": 2e-3, "token_budget": 2048, "conv_type": "knn", "num_convs": 1}
    in_memory = train_unit(settings, config, 0, 2, tmp_path / "m")
    lazy = train_unit(TrainSettings(**{**settings.__dict__, "in_memory": False}), config, 0, 2, tmp_path / "l")
    assert lazy == in_memory
    logs = [[json.loads(x) for x in (tmp_path / d / "mlpf-metrics.jsonl").read_text().splitlines()] for d in "ml"]
    assert [r["jet_response_median"] for r in logs[0]] == [r["jet_response_median"] for r in logs[1]]


def test_trainer_plugin_errors(data_dir, tmp_path):
    from hpoq.trainers import make_trainer
    from hpoq.trainers.base import TrainerError

    t = make_trainer("mlpf", {"data": str(data_dir), "R": 2, "backend": "none"})
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        t.train({"learning_rate": 1e-3}, 0, 1, str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="no checkpoint"):
        t.train({}, 1, 2, str(tmp_path / "none"))
    with pytest.raises(TrainerError, match="diverged"):
        t.train({"lr": 1e9, "schedule": "constant", "token_budget": 2048}, 0, 2, str(tmp_path / "d"))
    with pytest.raises(ConfigError, match="does not exist"):
        make_trainer("mlpf", {"data": str(tmp_path / "missing"), "R": 2}).train({}, 0, 1, str(tmp_path / "e"))


# ---------------------------------------------------------------- sampler


def test_sampler_equal_steps_per_rank_and_resume(prepared):
    _, train = prepared
    n_el = train.n_elements
    plans = [DistributedBatchPlan(n_el, [(0, 90), (90, 180)], 1500, seed=4, world_size=3, rank=r) for r in range(3)]
    steps = [list(p.steps(2)) for p in plans]
    assert len({len(s) for s in steps}) == 1 and len(steps[0]) > 0
    seen = np.concatenate([b for s in steps for step in s for b in step])
    assert seen.size == np.unique(seen).size, "ranks take disjoint events"
    for s in steps:
        for step in s:
            for b in step:
                assert len(b) == 1 or len(b) * n_el[b].max() <= 1500
    # global batches are identical on every rank and change with the epoch
    assert all(np.array_equal(a, b) for a, b in zip(plans[0].global_batches(2), plans[1].global_batches(2)))
    assert not all(np.array_equal(a, b) for a, b in zip(plans[0].global_batches(2), plans[0].global_batches(3)))
    # resume mid-epoch from the cursor
    p = DistributedBatchPlan(n_el, None, 1500, seed=4)
    full = list(p.steps(0))
    p2 = DistributedBatchPlan(n_el, None, 1500, seed=4)
    it = p2.steps(0)
    for _ in range(3):
        next(it)
    state = p2.state_dict()
    p3 = DistributedBatchPlan(n_el, None, 1500, seed=4)
    p3.load_state_dict(state)
    rest = list(p3.steps(0))
    assert len(rest) == len(full) - 3 and all(np.array_equal(a[0], b[0]) for a, b in zip(rest, full[3:]))
