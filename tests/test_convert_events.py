"""``hpoq convert-events``: upstream MLPF's CLIC parquet files -> hpoq HDF5 shards.

The test writes small files exactly as upstream's postprocessing does (an awkward Record of
per-event arrays, ``awkward.to_parquet``), with the edge cases upstream's reader handles (events
without tracks, without any element, without targets, with a track/target count mismatch), and
checks the converted shards element by element against upstream's own ``prepare_data_clic``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hpoq.errors import ConfigError

ak = pytest.importorskip("awkward")
pytest.importorskip("pyarrow", reason="pyarrow not installed (make particleflow)")

LABELS = [0, 211, 130, 22, 11, 13]


def _event(rng, n_trk, n_cl, n_y_trk=None, n_y_cl=None, n_jets=2):
    """One event in upstream's postprocessing layout (float64 matrices, PDG ids in column 0)."""

    def y(n):
        m = rng.normal(size=(n, 13))
        m[:, 0] = rng.choice(LABELS, size=n)
        m[:, 1] = rng.choice([-1.0, 0.0, 1.0], size=n)
        m[:, 2] = rng.exponential(5.0, size=n)
        return m

    X_track = rng.normal(size=(n_trk, 16)) * 100
    X_track[:, 0] = 1
    X_cluster = rng.normal(size=(n_cl, 17)) * 100
    X_cluster[:, 0] = 2
    return {
        "X_track": X_track,
        "X_cluster": X_cluster,
        "ytarget_track": y(n_trk if n_y_trk is None else n_y_trk),
        "ytarget_cluster": y(n_cl if n_y_cl is None else n_y_cl),
        "X_hit_tracker": rng.normal(size=(3, 12)),
        "X_hit_calo": rng.normal(size=(2, 12)),
        "ytarget_hit_tracker": y(3),
        "ytarget_hit_calo": y(2),
        "ycand_track": y(n_trk),
        "ycand_cluster": y(n_cl),
        "genmet": float(rng.exponential(10.0)),
        "genjet": rng.normal(size=(n_jets, 4)),
        "targetjet": rng.normal(size=(max(0, n_jets - 1), 4)),
    }


def write_upstream_parquet(path, events) -> None:
    """Exactly upstream's mlpf/data/key4hep/postprocessing.py ``process_one_file`` ending."""
    ret_record = ak.Record({k: ak.from_iter([r[k] for r in events]) for k in events[0].keys()})
    ak.to_parquet(ret_record, str(path))


@pytest.fixture(scope="module")
def upstream_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("clic-parquet")
    rng = np.random.default_rng(5)
    a = [
        _event(rng, 4, 7),
        _event(rng, 0, 5, n_jets=0),
        _event(rng, 0, 0),
        _event(rng, 3, 2, n_y_trk=0, n_y_cl=0),
        _event(rng, 2, 3, n_y_trk=1),
        _event(rng, 6, 9),
        _event(rng, 5, 0),
        _event(rng, 8, 11, n_jets=4),
    ]
    b = [_event(rng, int(rng.integers(0, 9)), int(rng.integers(1, 12))) for _ in range(9)]
    write_upstream_parquet(d / "clic_ttbar_1.parquet", a)
    write_upstream_parquet(d / "clic_ttbar_2.parquet", b)
    return d


def _upstream_prepared(path):
    """Upstream's prepare_data_clic plus generate_examples' float32 casts (and its ``genmets[iev][0]``)."""
    pytest.importorskip("mlpf.heptfds.edm4hep_utils.utils_pf", reason="particleflow not installed (make particleflow)")
    from mlpf.heptfds.edm4hep_utils.utils_pf import prepare_data_clic

    Xs, yts, ycs, gms, gjs, tjs = prepare_data_clic(str(path))
    return [
        dict(
            X=X.astype(np.float32),
            ytarget=yt.astype(np.float32),
            ycand=yc.astype(np.float32),
            genmet=np.float32(gm[0]),
            genjets=gj.astype(np.float32),
            targetjets=tj.astype(np.float32),
        )
        for X, yt, yc, gm, gj, tj in zip(Xs, yts, ycs, gms, gjs, tjs)
    ]


def test_reader_equals_upstream_prepare_data_clic(upstream_files):
    from hpoq.mlpf.upstream_data import events_from_parquet

    for path in sorted(upstream_files.glob("*.parquet")):
        ref = _upstream_prepared(path)
        mine = events_from_parquet(path)
        assert len(mine) == len(ref) > 0
        for m, r in zip(mine, ref):
            np.testing.assert_array_equal(m.X, r["X"])
            for key in ("ytarget", "ycand"):
                got = getattr(m, key)
                np.testing.assert_array_equal(got[:, :13], r[key])
                assert (got[:, 13] == 0).all()
            assert np.float32(m.genmet) == r["genmet"]
            np.testing.assert_array_equal(m.genjets, r["genjets"].reshape(-1, 4))
            np.testing.assert_array_equal(m.targetjets, r["targetjets"].reshape(-1, 4))
    # the edge cases were really exercised: 3 of file 1's 8 events are dropped (no element,
    # no target, a count mismatch), as upstream does
    assert len(events_from_parquet(upstream_files / "clic_ttbar_1.parquet")) == 5


def test_cli_writes_shards_equal_to_upstream_arrays(upstream_files, tmp_path):
    from hpoq.mlpf.events import load_split, read_manifest

    out = tmp_path / "clic"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpoq.main",
            "convert-events",
            str(upstream_files),
            "--out",
            str(out),
            "--val-fraction",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    manifest = read_manifest(out)
    assert manifest["schema"] == "clic" and manifest["input_dim"] == 17 and manifest["num_classes"] == 6
    names = ("clic_ttbar_1.parquet", "clic_ttbar_2.parquet")
    ref = [e for name in names for e in _upstream_prepared(upstream_files / name)]
    # per file: the last 20 % of its events are val (file 1: 5 events -> 1, file 2: 9 -> 2)
    train_ref, val_ref = ref[:4] + ref[5:12], [ref[4]] + ref[12:]
    assert info["splits"]["train"]["n_events"] == len(train_ref) and info["splits"]["val"]["n_events"] == len(val_ref)
    for split, expected in (("train", train_ref), ("val", val_ref)):
        arrays = load_split(out, split, manifest=manifest)
        np.testing.assert_array_equal(arrays.X, np.concatenate([r["X"] for r in expected]))
        np.testing.assert_array_equal(arrays.ytarget[:, :13], np.concatenate([r["ytarget"] for r in expected]))
        np.testing.assert_array_equal(arrays.ycand[:, :13], np.concatenate([r["ycand"] for r in expected]))
        np.testing.assert_array_equal(arrays.genmet, np.array([r["genmet"] for r in expected], np.float32))
        np.testing.assert_array_equal(arrays.genjets, np.concatenate([r["genjets"].reshape(-1, 4) for r in expected]))
        np.testing.assert_array_equal(np.diff(arrays.offsets), [len(r["X"]) for r in expected])


def test_converted_dataset_trains(upstream_files, tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="training needs torch (pip install 'hpoq[mlpf]')")
    from hpoq.mlpf import jets
    from hpoq.mlpf.training import TrainSettings, train_unit
    from hpoq.mlpf.upstream_data import convert_events

    convert_events([upstream_files], tmp_path / "d", val_fraction=0.2)
    used = []  # the jet metrics of converted CLIC events use upstream's definition (ee_genkt, dR 0.1, 5 GeV)
    real = jets.ratios_for
    monkeypatch.setattr(jets, "ratios_for", lambda e, g, config: used.append(config) or real(e, g, config))
    curve = train_unit(
        TrainSettings(data=str(tmp_path / "d"), R=1, backend="none", device="cpu", secondary_metrics=True),
        {"token_budget": 64},
        0,
        1,
        tmp_path / "ck",
    )
    assert len(curve) == 1 and np.isfinite(curve[0])
    assert used and set(used) == {jets.CLIC}


def test_bad_inputs_fail_cleanly(upstream_files, tmp_path):
    from hpoq.mlpf.upstream_data import convert_events

    bad = tmp_path / "bad.parquet"
    ak.to_parquet(ak.Record({"X_track": ak.from_iter([np.zeros((1, 16))])}), str(bad))
    out = tmp_path / "o"
    # the good file is converted first, then the bad one fails: nothing is left behind
    with pytest.raises(ConfigError, match="field.*missing"):
        convert_events([upstream_files / "clic_ttbar_1.parquet", bad], out)
    assert not list(out.rglob("*.h5")) and not (out / "dataset.json").exists()
    notparquet = tmp_path / "x.parquet"
    notparquet.write_text("hello")
    proc = subprocess.run(
        [sys.executable, "-m", "hpoq.main", "convert-events", str(notparquet), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "not a readable parquet file" in proc.stderr and proc.stderr.count("\n") == 1
    with pytest.raises(ConfigError, match="does not exist"):
        convert_events([tmp_path / "missing"], out)
    with pytest.raises(ConfigError, match="tfds dataset directory"):
        convert_events([upstream_files], out, fmt="tfds")
    convert_events([upstream_files], out)
    with pytest.raises(ConfigError, match="exists; choose another --out or pass --overwrite"):
        convert_events([upstream_files], out)
