"""The ``dwave`` sampler path offline: MockDWaveSampler (Pegasus P16), embedding cache, fallback to SA.

No network and no token: the QPU is dwave-system's MockDWaveSampler with a simulated-annealing
substitute (platform.md 4); a missing token exercises the real ``DWaveSampler()`` ValueError.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hpoq.errors import ConfigError
from hpoq.predict.qsvr import QSVRPredictor
from hpoq.predict.samplers import EmbeddingCache, graph_hash, make_sampler

FAKE_TOKEN = "ABC-0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def mock_qpu():
    from dwave.samplers import SimulatedAnnealingSampler
    from dwave.system.testing import MockDWaveSampler

    return MockDWaveSampler(
        topology_type="pegasus",
        topology_shape=[16],
        substitute_sampler=SimulatedAnnealingSampler(),
        substitute_kwargs={"num_sweeps": 100},
        parameter_warnings=False,
    )


@pytest.fixture()
def no_token(monkeypatch, tmp_path):
    """No D-Wave credentials anywhere: empty config file, no token variable, HOME elsewhere."""
    empty = tmp_path / "dwave.conf"
    empty.write_text("")
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def _data(n=40, e=10, seed=0):
    rng = np.random.default_rng(seed)
    P = np.cumsum(rng.random((n, e)), axis=1)
    return P, 1.5 * P[:, -1] + rng.normal(0, 0.1, n)


def test_dwave_path_end_to_end_with_cached_embedding(mock_qpu, tmp_path):
    P, y = _data()
    cache_dir = tmp_path / "emb"
    qpu = {"name": "dwave", "params": {"child": mock_qpu, "num_reads": 10, "cache_dir": str(cache_dir)}}
    q = QSVRPredictor(sampler=qpu, chunks=1)
    pred = q.fit(None, P, y).predict(None, P[:5])
    d = q.describe()
    assert d["sampler"] == "dwave" and "fallback_from" not in d and d["solver"] == "MockDWaveSampler"
    chunk = d["chunk_info"][0]
    assert chunk["embedding"] == "computed" and chunk["sampler"] == "dwave"
    assert chunk["energy_mismatch"] < 1e-6  # unembedded energies agree with b^T Q b by label
    assert 0.0 <= d["chain_break_fraction"] <= 1.0 and np.isfinite(d["chain_break_fraction"])
    # chain strength = 10 x ceil(max |Q|) by default (method.md 5.5)
    assert chunk["chain_strength"] > 0 and chunk["chain_strength"] % 10 == 0
    assert np.all(np.isfinite(pred.mean)) and pred.info["sampler"] == "dwave"

    # the cache file: JSON {solver, V, graph_hash, embedding}, valid on the mock's working graph
    files = list(cache_dir.glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    graph = mock_qpu.to_networkx_graph()
    assert data["solver"] == "MockDWaveSampler" and data["V"] == 120
    assert data["graph_hash"] == graph_hash(graph)
    assert sorted(int(k) for k in data["embedding"]) == list(range(120))
    assert max(len(c) for c in data["embedding"].values()) <= 12

    # a second predictor reloads and validates it instead of recomputing
    q2 = QSVRPredictor(sampler={"name": "dwave", "params": dict(qpu["params"], chain_strength="utc")}, chunks=1)
    q2.fit(None, P, y)
    chunk2 = q2.describe()["chunk_info"][0]
    assert chunk2["embedding"] == "hit" and chunk2["chain_strength"] == "uniform_torque_compensation"

    # a cached embedding that no longer fits the working graph is rejected and recomputed
    bad = dict(data)
    bad["embedding"] = dict(data["embedding"])
    bad["embedding"]["0"] = [10**7]  # a qubit the graph does not have
    files[0].write_text(json.dumps(bad))
    cache = EmbeddingCache(cache_dir)
    emb, status = cache.load("MockDWaveSampler", 120, graph)
    assert emb is None and status.startswith("invalid")
    emb, status = cache.get("MockDWaveSampler", 120, graph)
    assert status.startswith("recomputed") and emb[0] != [10**7]
    assert json.loads(files[0].read_text())["embedding"]["0"] == emb[0]


def test_missing_token_falls_back_to_sa(no_token, caplog):
    P, y = _data(seed=1)
    with caplog.at_level(logging.WARNING, logger="hpoq.predict.samplers"):
        q = QSVRPredictor(sampler={"name": "dwave", "params": {"num_reads": 20, "num_sweeps": 100}}, chunks=2, seed=4)
        pred = q.fit(None, P, y).predict(None, P[:5])
    assert any(r.levelno == logging.WARNING and "falling back" in r.getMessage() for r in caplog.records)
    d = q.describe()
    assert d["sampler"] == "sa" and d["requested_sampler"] == "dwave" and d["fallback_from"] == "dwave"
    assert "token" in d["reason"].lower()
    assert pred.info["fallback_from"] == "dwave" and pred.info["sampler"] == "sa"
    assert all(c["sampler"] == "sa" for c in d["chunk_info"])
    assert np.all(np.isfinite(pred.mean))
    # the fallback solves the same QUBO: identical to a plain SA run with the fallback's settings
    sa = QSVRPredictor(sampler={"name": "sa", "params": {"num_reads": 100, "num_sweeps": 100}}, chunks=2, seed=4)
    sa.fit(None, P, y)
    assert np.allclose(sa.predict(None, P[:5]).mean, pred.mean)


def test_missing_token_without_fallback_is_a_clear_error(no_token):
    with pytest.raises(ConfigError, match="fallback"):
        make_sampler("dwave", fallback=False)


class _FailingQPU:
    """A structured sampler whose service call fails with a message echoing the credentials,
    as a misbehaving client might; stands in for a network error after the solver was opened."""

    properties = {"chip_id": "Advantage_test"}

    def to_networkx_graph(self):
        raise ConnectionError(f"HTTP 503 from https://cloud.dwavesys.com/sapi?token={FAKE_TOKEN}")


def test_network_error_falls_back_and_never_leaks_token(monkeypatch, caplog, capsys, tmp_path):
    monkeypatch.setenv("DWAVE_API_TOKEN", FAKE_TOKEN)
    P, y = _data(seed=2)
    with caplog.at_level(logging.DEBUG):
        qpu = {"child": _FailingQPU(), "num_reads": 20, "num_sweeps": 50, "cache_dir": str(tmp_path / "emb")}
        q = QSVRPredictor(sampler={"name": "dwave", "params": qpu}, chunks=1)
        pred = q.fit(None, P, y).predict(None, P[:3])
    d = q.describe()
    assert d["fallback_from"] == "dwave" and "ConnectionError" in d["reason"]
    out = capsys.readouterr()
    blob = caplog.text + out.out + out.err + json.dumps(d, default=str) + json.dumps(pred.info, default=str)
    assert "falling back" in caplog.text
    assert FAKE_TOKEN not in blob and "0123456789abcdef0123" not in blob
    assert not any(tmp_path.rglob("*.json"))  # nothing written for a solver that never answered


def test_no_embedding_falls_back_loudly(tmp_path, caplog):
    """The default mock (Chimera 4x4x4, 128 qubits) cannot hold a 120-clique: SA, not a pruned problem."""
    from dwave.system.testing import MockDWaveSampler

    P, y = _data(seed=3)
    with caplog.at_level(logging.WARNING, logger="hpoq.predict.samplers"):
        qpu = {"child": MockDWaveSampler(), "num_reads": 20, "num_sweeps": 50, "cache_dir": str(tmp_path / "emb")}
        q = QSVRPredictor(sampler={"name": "dwave", "params": qpu}, chunks=1)
        q.fit(None, P, y)
    d = q.describe()
    assert d["sampler"] == "sa" and d["fallback_from"] == "dwave" and "embedding" in d["reason"]
    assert "falling back" in caplog.text
    assert not any(tmp_path.rglob("*.json"))


def test_cached_embedding_survives_unrelated_offline_qubits(mock_qpu, tmp_path):
    """A qubit outside every chain goes offline: the hash changes, the embedding stays valid and is kept."""
    graph = mock_qpu.to_networkx_graph()
    cache = EmbeddingCache(tmp_path)
    emb, status = cache.get("P16", 24, graph)
    assert status == "computed"
    used = {q for chain in emb.values() for q in chain}
    spare = next(q for q in sorted(graph.nodes) if q not in used)
    smaller = graph.copy()
    smaller.remove_node(spare)
    emb2, status2 = cache.get("P16", 24, smaller)
    assert status2 == "hit" and emb2 == emb
    assert json.loads(cache.path("P16", 24).read_text())["graph_hash"] == graph_hash(smaller)
    # a qubit inside a chain goes offline: invalid, recomputed on the smaller graph
    broken = smaller.copy()
    broken.remove_node(emb[0][0])
    emb3, status3 = cache.get("P16", 24, broken)
    assert status3.startswith("recomputed") and all(q in broken for chain in emb3.values() for q in chain)


def test_qpu_timeout_falls_back(tmp_path, caplog):
    """A QPU job that never returns (a future that is never resolved) ends in SA after timeout_s."""
    import concurrent.futures

    import dimod
    from dwave.system.testing import MockDWaveSampler

    class HungQPU(MockDWaveSampler):
        def sample(self, bqm, **kwargs):
            return dimod.SampleSet.from_future(concurrent.futures.Future())

    hung = HungQPU(topology_type="pegasus", topology_shape=[4], parameter_warnings=False)
    P, y = _data(seed=4)
    with caplog.at_level(logging.WARNING, logger="hpoq.predict.samplers"):
        qpu = {"child": hung, "timeout_s": 0.3, "num_reads": 10, "num_sweeps": 50, "cache_dir": str(tmp_path)}
        q = QSVRPredictor(sampler={"name": "dwave", "params": qpu}, n_points=4, chunks=2)
        pred = q.fit(None, P, y).predict(None, P[:3])
    d = q.describe()
    assert d["sampler"] == "sa" and d["reason"].startswith("TimeoutError")
    assert all(c["sampler"] == "sa" for c in d["chunk_info"]) and np.all(np.isfinite(pred.mean))
    assert "falling back" in caplog.text


def test_fallback_is_a_composite_that_switches_for_good(mock_qpu, tmp_path, caplog):
    """make_sampler('dwave') is a dimod composite over the QPU sampler and SA; a QPU that fails on its
    second call sends that call and every later one to SA, with one WARNING."""
    import dimod

    from hpoq.predict.samplers import DWaveQuboSampler, FallbackComposite, SASampler

    comp = make_sampler("dwave", child=mock_qpu, num_reads=10, num_sweeps=50, cache_dir=str(tmp_path))
    assert isinstance(comp, FallbackComposite) and isinstance(comp, dimod.ComposedSampler)
    assert isinstance(comp.child, DWaveQuboSampler) and isinstance(comp.children[1], SASampler)
    bqm = dimod.BinaryQuadraticModel({0: -1.0, 1: 0.5, 2: -0.2}, {(0, 1): 2.0, (1, 2): -1.0}, 0.0, "BINARY")
    first = comp.sample(bqm, seed=1)
    assert first.info["hpoq"]["sampler"] == "dwave" and first.first.energy == pytest.approx(-1.2)
    calls = []

    def broken(bqm, seed=0, **kw):
        calls.append(1)
        raise ConnectionError("solver went away")

    comp.primary.sample = broken
    with caplog.at_level(logging.WARNING, logger="hpoq.predict.samplers"):
        second, third = comp.sample(bqm, seed=2), comp.sample(bqm, seed=3)
    assert len(calls) == 1  # never asked again
    for ss in (second, third):
        assert ss.info["hpoq"]["sampler"] == "sa" and ss.info["hpoq"]["fallback_from"] == "dwave"
        assert ss.first.energy == pytest.approx(-1.2)
    assert sum("falling back" in r.getMessage() for r in caplog.records) == 1
    assert comp.describe()["reason"] == "ConnectionError: solver went away"
    assert comp.properties["fallback_reason"] == "ConnectionError: solver went away"
