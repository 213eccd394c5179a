"""Generator stages: each deterministic per event seed, each steered only by its own settings, and the
whole pipeline reproducing the events of the single-function generator it replaced."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hpoq.mlpf.generator import STAGE_SETTINGS, generate_events, make_config, run_stages

GOLDEN = Path(__file__).parent / "data" / "generator_golden.npz"


def _stage_rows(block, stage: str, i: int) -> list[np.ndarray]:
    """The rows of event ``i`` (position in the block) in one stage's output."""
    p = block.particles
    if stage == "process":
        sel = p["ev"] == i
        return [p[k][sel] for k in ("e", "px", "py", "pz", "mass", "pdg", "charge", "ispu", "jet")]
    if stage == "tracker":
        return [block.tracks.X[block.tracks.ev == i]]
    if stage == "calorimeter":
        d = block.deposits
        sel = d.ev == i
        return [d.eta[sel], d.phi[sel], d.ecal[sel], d.hcal[sel], d.em[sel], d.main[sel]]
    if stage == "clustering":
        return [block.clusters.X[block.clusters.ev == i]]
    if stage == "truth":
        return [block.truth.ytarget[block.element_ev == i]] + [v[i : i + 1] for v in block.truth.accounting.values()]
    if stage == "pf":
        return [block.ycand[block.element_ev == i]]
    assert stage == "jets"
    return [block.genjets[i], block.targetjets[i], block.genmet[i : i + 1]]


STAGES = ("process", "tracker", "calorimeter", "clustering", "truth", "pf", "jets")


def _equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("stage", STAGES)
def test_stage_is_deterministic_per_event_seed(stage):
    cfg = make_config("dense")
    block = run_stages(cfg, 11, [40, 41, 42])
    alone = run_stages(cfg, 11, [41])
    again = run_stages(cfg, 11, [40, 41, 42])
    other_seed = run_stages(cfg, 12, [41])
    rows = _stage_rows(block, stage, 1)
    assert sum(r.size for r in rows) > 0
    assert _equal(rows, _stage_rows(alone, stage, 0))  # same event, whatever the block
    assert _equal(rows, _stage_rows(again, stage, 1))
    assert not _equal(rows, _stage_rows(other_seed, stage, 0))


# (setting, new value, stage it steers): that stage's output changes, no upstream stage's does
STEERING = [
    ("track_pt_res_b", 5e-2, "tracker", ("process", "calorimeter", "clustering")),
    ("em_stochastic", 0.4, "calorimeter", ("process", "tracker")),
    ("merge_radius_had", 0.3, "clustering", ("process", "tracker", "calorimeter")),
    ("pf_link_radius", 0.01, "pf", ("process", "tracker", "calorimeter", "clustering", "truth")),
    ("jet_radius", 0.1, "jets", ("process", "tracker", "calorimeter", "clustering", "truth", "pf")),
]


@pytest.mark.parametrize("setting,value,stage,upstream", STEERING, ids=[s[0] for s in STEERING])
def test_stage_settings_steer_only_their_stage(setting, value, stage, upstream):
    indices = list(range(8))
    base = run_stages(make_config("clic"), 5, indices)
    changed = run_stages(make_config("clic", **{setting: value}), 5, indices)
    for name in upstream:
        assert all(_equal(_stage_rows(base, name, i), _stage_rows(changed, name, i)) for i in range(8)), name
    assert not all(_equal(_stage_rows(base, stage, i), _stage_rows(changed, stage, i)) for i in range(8))


def test_stage_settings_partition_the_config():
    names = [f.name for cls in STAGE_SETTINGS for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names))
    cfg = make_config("dense")
    assert set(cfg.to_dict()) == set(names) | {"preset"}
    for cls in STAGE_SETTINGS:
        settings = cfg.stage(cls)
        assert all(getattr(settings, f.name) == getattr(cfg, f.name) for f in dataclasses.fields(cls))


def test_events_match_the_single_function_generator():
    """Golden events written by the generator before it was split into stages (seed 3, events 0 and 5).

    The split was checked bit-identical (sha256 over 360 events per preset) on the machine that wrote
    this file; the tolerance here only absorbs libm differences between CPUs.
    """
    golden = np.load(GOLDEN)
    for preset in ("easy", "clic", "dense"):
        for i, event in zip((0, 5), generate_events(make_config(preset), 3, [0, 5])):
            for name in ("X", "ytarget", "ycand", "genjets", "targetjets"):
                want, got = golden[f"{preset}_{i}_{name}"], getattr(event, name)
                assert got.shape == want.shape, (preset, i, name)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{preset} {i} {name}")
            assert event.genmet == pytest.approx(float(golden[f"{preset}_{i}_genmet"]), rel=1e-9)
