"""Upstream MLPF (PyPI ``particleflow``) as ``model: particleflow`` in hpoq's MLPF trainer.

Skipped, with the reason, where ``make particleflow`` could not install it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the MLPF tests need torch (pip install 'hpoq[mlpf]')")

from hpoq.errors import ConfigError  # noqa: E402
from hpoq.mlpf import upstream  # noqa: E402

pytestmark = pytest.mark.skipif(upstream.unavailable_reason() is not None, reason=str(upstream.unavailable_reason()))

#: upstream's attention MLPF at MiniMLPF tiny's width (2 heads x 16 = 32)
TINY = {"model.attention.num_heads": 2, "model.attention.head_dim": 16, "model.attention.num_convs": 2}
#: a smaller one for the training tests (2 cores, shared)
SMALL = {"model.attention.num_heads": 2, "model.attention.head_dim": 8, "model.attention.num_convs": 1}
LSH = {
    "conv_type": "gnn_lsh",
    "model.gnn_lsh.width": 16,
    "model.gnn_lsh.embedding_dim": 16,
    "model.gnn_lsh.bin_size": 32,
    "model.gnn_lsh.distance_dim": 8,
    "model.gnn_lsh.num_convs": 1,
    "model.gnn_lsh.ffn_dist_hidden_dim": 16,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from hpoq.mlpf.writer import generate_dataset

    out = tmp_path_factory.mktemp("pf-data")
    generate_dataset(out, 160, seed=11, preset="clic", shards=2, val_fraction=0.25)
    return out


def _settings(data, **kw):
    from hpoq.mlpf.training import TrainSettings

    base = dict(data=str(data), R=3, backend="none", device="cpu", seed=2, model="particleflow", model_params=TINY)
    return TrainSettings(**{**base, **kw})


def test_install_kept_torch_and_imports_no_tensorflow():
    import importlib.metadata as md

    assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
    assert md.version("particleflow") == upstream.UPSTREAM_VERSION
    code = "import sys, mlpf.model.mlpf; print(sorted(m for m in ('tensorflow', 'ray', 'jax') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_factory_builds_upstreams_own_network(data):
    from mlpf.conf import MLPFConfig
    from mlpf.model.mlpf import MLPF

    from hpoq.mlpf.events import read_manifest
    from hpoq.mlpf.training import MODEL_FACTORIES

    manifest = read_manifest(data)
    spec = MODEL_FACTORIES["particleflow"](_settings(data), {"model.attention.dropout_ff": 0.1}, manifest)
    torch.manual_seed(0)
    model = spec.build()
    assert isinstance(model.net, MLPF) and spec.pad_multiple == 1
    # the same network as upstream builds from its own config class
    raw = {
        "dataset": "clic",
        "data_dir": "",
        "conv_type": "attention",
        "input_dim": 17,
        "num_classes": 6,
        "model": {
            "type": "attention",
            "attention": {"num_heads": 2, "head_dim": 16, "num_convs": 2, "dropout_ff": 0.1, "attention_type": "math"},
        },
    }
    torch.manual_seed(0)
    ref = MLPF(MLPFConfig.model_validate(raw))
    assert model.net.state_dict().keys() == ref.state_dict().keys()
    assert all(torch.equal(v, ref.state_dict()[k]) for k, v in model.net.state_dict().items())
    X = torch.tensor(np.random.default_rng(0).normal(size=(2, 10, 17)), dtype=torch.float32).abs()
    X[..., 0] = torch.tensor([1.0, 2.0]).repeat(5)
    mask = X[..., 0] != 0
    model.eval(), ref.eval()
    out = model(X, mask)
    assert [tuple(o.shape) for o in out] == [(2, 10, 2), (2, 10, 6), (2, 10, 5), (2, 10, 2)]
    assert all(torch.equal(a, b) for a, b in zip(out, ref(X, mask)))  # input_norm none: upstream's raw inputs


def test_input_norm_standard_leaves_the_reference_columns_raw(data):
    from hpoq.mlpf.events import read_manifest
    from hpoq.mlpf.training import MODEL_FACTORIES

    manifest = read_manifest(data)
    model = MODEL_FACTORIES["particleflow"](_settings(data, input_norm="standard"), {}, manifest).build()
    from hpoq.mlpf.batches import PreparedEvents
    from hpoq.mlpf.events import load_split

    b = PreparedEvents(load_split(data, "train", manifest=manifest)).batch(np.arange(40))
    X, mask = b["X"], b["mask"]
    Xn = model.normalise(X, mask)
    assert torch.equal(Xn[..., :6], X[..., :6])
    # the other columns are standardised per element type on the train split (raw: up to ~1e3 mm)
    assert X[..., 6:].abs().max() > 100 and Xn[..., 6:].abs().max() < 50
    assert abs(float(Xn[..., 6:][mask].mean())) < 0.2


def test_upstream_keys_are_validated_with_key_paths(data, tmp_path):
    from hpoq.trainers import make_trainer

    base = {"data": str(data), "R": 2, "backend": "none", "model": "particleflow"}
    with pytest.raises(ConfigError, match=r"model_params: model.attention.num_heads: Input should be a valid"):
        make_trainer("mlpf", dict(base, model_params={"model.attention.num_heads": "many"}))
    with pytest.raises(ConfigError, match="is not conv_type or a model.<key> path"):
        make_trainer("mlpf", dict(base, model_params={"num_heads": 2}))
    with pytest.raises(ConfigError, match="model_params: only for model particleflow"):
        make_trainer("mlpf", dict(base, model="mini", model_params=TINY))
    with pytest.raises(ConfigError, match="trainer.params.objective must be one of"):
        make_trainer("mlpf", dict(base, objective="accuracy"))
    from hpoq.mlpf.training import OBJECTIVES
    from hpoq.trainers.mlpf import MLPFTrainer

    assert MLPFTrainer.parameter_constraints["objective"][0].values == tuple(OBJECTIVES)
    t = make_trainer("mlpf", dict(base, model_params=TINY))
    with pytest.raises(ConfigError, match=r"mlpf: model.attention.activation: Input should be 'elu', 'relu'"):
        t.train({"model.attention.activation": "tanh"}, 0, 1, str(tmp_path / "a"))
    with pytest.raises(ConfigError, match=r"mlpf: model.attention.bogus: Extra inputs are not permitted"):
        t.train({"model.attention.bogus": 1}, 0, 1, str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="conv_type must be one of attention, gnn_lsh"):
        t.train({"conv_type": "knn"}, 0, 1, str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="unknown hyperparameter 'num_convs' for model particleflow"):
        t.train({"num_convs": 2}, 0, 1, str(tmp_path / "d"))
    mini = make_trainer("mlpf", dict(base, model="mini"))
    with pytest.raises(ConfigError, match="unknown hyperparameter 'model.attention.num_heads' for model mini"):
        mini.train({"model.attention.num_heads": 2}, 0, 1, str(tmp_path / "e"))


@pytest.mark.parametrize(
    "model_params, config",
    [
        (
            SMALL,
            {
                "lr": 2e-3,
                "token_budget": 1024,
                "optimizer": "lamb",
                "model.attention.dropout_ff": 0.1,
                "model.attention.dropout_conv_id_ff": 0.1,
            },
        ),
        (LSH, {"lr": 2e-3, "token_budget": 1024, "model.gnn_lsh.dropout_ff": 0.1}),
    ],
    ids=["attention", "gnn_lsh"],
)
def test_resume_equals_straight_through(data, tmp_path, model_params, config):
    from hpoq.mlpf.training import train_unit

    # gnn_lsh: upstream reshapes each event into bins of bin_size, so batches must be padded to a
    # multiple of it; pad_multiple 3 is combined with bin_size 32 into 96
    pad = 3 if "conv_type" in model_params else "auto"
    settings = _settings(data, R=2, model_params=model_params, pad_multiple=pad)
    straight, s_state = train_unit(settings, config, 0, 2, tmp_path / "s", return_state=True)
    first = train_unit(settings, config, 0, 1, tmp_path / "r")
    rest, r_state = train_unit(settings, config, 1, 2, tmp_path / "r", return_state=True)
    assert first + rest == straight
    assert all(torch.equal(s_state[k], r_state[k]) for k in s_state)
    assert straight[-1] < straight[0], straight
    meta = json.loads((tmp_path / "s" / "mlpf-checkpoint.json").read_text())
    assert meta["model_kind"] == "particleflow" and meta["model"]["upstream_version"] == upstream.UPSTREAM_VERSION


def test_val_loss_batch_mean_is_the_mean_of_per_batch_losses(data, tmp_path):
    from hpoq.mlpf.batches import PreparedEvents
    from hpoq.mlpf.distributed import NoBackend
    from hpoq.mlpf.events import load_split, read_manifest
    from hpoq.mlpf.loss import DEFAULT_WEIGHTS, combine, loss_sums
    from hpoq.mlpf.sampler import validation_batches
    from hpoq.mlpf.training import MODEL_FACTORIES, evaluate

    manifest = read_manifest(data)
    torch.manual_seed(1)
    model = MODEL_FACTORIES["particleflow"](_settings(data), {}, manifest).build().eval()
    val = PreparedEvents(load_split(data, "val", manifest=manifest))
    backend = NoBackend(None, torch.device("cpu"))
    per_batch = []
    with torch.no_grad():
        for evs in validation_batches(val.n_elements, 512, 1, 0):
            b = val.batch(evs)
            s = loss_sums(model(b["X"], b["mask"]), b, DEFAULT_WEIGHTS.focal_gamma)
            per_batch.append(float(combine(s, DEFAULT_WEIGHTS, s["n_valid"], s["n_particles"])["total"]))
    upstream_style = evaluate(model, val, 512, backend, torch.device("cpu"), val_loss="batch_mean")["total"]
    assert len(per_batch) > 3
    assert upstream_style == pytest.approx(np.mean(per_batch), rel=1e-6)  # float32 vs float64 sums
    global_style = evaluate(model, val, 512, backend, torch.device("cpu"))["total"]
    assert global_style != pytest.approx(upstream_style, rel=1e-6)


def test_jet_objective_becomes_the_curve(data, tmp_path):
    from hpoq.trainers import make_trainer

    t = make_trainer(
        "mlpf",
        {
            "data": str(data),
            "R": 2,
            "backend": "none",
            "model": "particleflow",
            "model_params": SMALL,
            "objective": "jet_match_fraction",
        },
    )
    assert (t.metric, t.mode) == ("jet_match_fraction", "max")
    curve = t.train({"lr": 2e-3, "token_budget": 1024}, 0, 2, str(tmp_path / "j"))
    log = [json.loads(line) for line in (tmp_path / "j" / "mlpf-metrics.jsonl").read_text().splitlines()]
    assert curve == [r["jet_match_fraction"] for r in log] and all(0.0 <= v <= 1.0 for v in curve)
    assert all(r["val_loss"] != r["jet_match_fraction"] for r in log)


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_two_ranks_match_single_rank(backend, data, tmp_path):
    """Real mpiexec ranks: identical parameters and curves on both ranks, resume == straight, and
    the parameters of 1 rank x 2 micro-batches (same global batch). The val curves are not
    compared with the single-rank run: upstream's attention does not mask padded keys, so its
    outputs depend on the padding, and the val split is batched per rank."""
    if backend == "horovod":
        pytest.importorskip("horovod.torch")
    from test_mlpf_distributed import _run_two_ranks

    from hpoq.mlpf.training import train_unit

    config = {"lr": 2e-3, "token_budget": 1024, "weight_decay": 0.01}
    extra = {"model": "particleflow", "model_params": SMALL, "secondary_metrics": False}
    result, flat = _run_two_ranks(backend, data, tmp_path, config=config, settings=extra)
    assert result["world"] == 2 and result["max_rank_diff"] == 0.0
    assert result["curves"][0] == result["curves"][1]
    assert result["resume_equals_straight"] == [True, True]
    torch.set_num_threads(1)
    ref = _settings(data, R=2, seed=3, micro_batches=2, model_params=SMALL)
    train_unit(ref, config, 0, 1, tmp_path / "ref")
    _, state = train_unit(ref, config, 1, 2, tmp_path / "ref", return_state=True)
    ref_flat = torch.cat([v.reshape(-1).double() for k, v in sorted(state.items())])
    assert torch.allclose(flat, ref_flat, rtol=1e-4, atol=1e-5), float((flat - ref_flat).abs().max())


def test_upstream_space_preset_mirrors_upstream_and_validates():
    from hpoq.mlpf.search_space import SPACE_PRESETS, space_yaml
    from hpoq.mlpf.training import split_config
    from hpoq.study.space import SearchSpace

    space = SPACE_PRESETS["upstream"]
    assert space["lr"]["values"] == [2e-4, 4e-4, 8e-4] and space["optimizer"]["values"] == ["adamw", "lamb"]
    assert space["model.attention.num_heads"]["values"] == space["model.attention.head_dim"]["values"] == [8, 16, 32]
    assert space["model.attention.dropout_ff"]["values"] == [0.0, 0.01, 0.1, 0.2]
    assert len(space["model.attention.activation"]["values"]) == 4
    sampler = SearchSpace.from_spec(space, seed=0)
    seen = set()
    for _ in range(40):
        config = sampler.sample()
        model_over, train = split_config(config, "particleflow")
        cfg = upstream.upstream_config(model_over, input_dim=17, num_classes=6, elem_types=[0, 1, 2])
        assert cfg.model.attention.num_convs == config["model.attention.num_convs"]
        assert train["lr"] == config["lr"]
        seen.add(config["model.attention.num_convs"])
    assert seen == {1, 2, 3, 4, 5}
    assert "model.attention.num_convs" in space_yaml("upstream")
    with pytest.raises(ConfigError, match="unknown MLPF search-space preset"):
        space_yaml("ray")


def test_undefined_jet_objective_is_finite_and_worst():
    from hpoq.mlpf.training import OBJECTIVES, objective_value

    nan_terms = {
        "total": 3.0,
        "jet_response_iqr_over_median": float("nan"),
        "jet_median_deviation": float("nan"),
        "jet_match_fraction": 0.0,
    }
    for objective, (_key, mode) in OBJECTIVES.items():
        value = objective_value(nan_terms, objective)
        assert np.isfinite(value)
        if objective != "val_loss":
            assert value == (0.0 if mode == "max" else max(1.0, value))
