"""Jet metrics through FastJet (hpoq.mlpf.jets) against a direct anti-kt computation.

The reference is the textbook O(n^3) anti-kt (Cacciari, Salam, Soyez 2008): d_ij = min(pT_i^-2,
pT_j^-2) dR_ij^2 / R^2 with dR in (rapidity, phi), d_iB = pT_i^-2, E-scheme recombination,
inclusive jets. Events are hpoq's synthetic CLIC events (gen-level and baseline-PF particles).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastjet")

from hpoq.mlpf import jets  # noqa: E402
from hpoq.mlpf.generator import generate_events, make_config  # noqa: E402


def direct_inclusive(p4: np.ndarray, distances) -> np.ndarray:
    """Inclusive jets (px, py, pz, E) of four-vectors ``p4`` [n, 4] by a sequential-recombination definition:
    ``distances(P) -> (d_ij, d_iB)``; merge the closest pair while it beats every beam distance (E-scheme)."""
    objs = [np.asarray(v, float) for v in p4]
    done = []
    while objs:
        dij, diB = distances(np.array(objs))
        np.fill_diagonal(dij, np.inf)
        i, j = np.unravel_index(np.argmin(dij), dij.shape)
        if dij[i, j] < diB.min():
            merged = objs[i] + objs[j]
            objs = [o for k, o in enumerate(objs) if k not in (i, j)] + [merged]
        else:
            done.append(objs.pop(int(np.argmin(diB))))
    return np.array(done).reshape(-1, 4)


def direct_antikt(p4: np.ndarray, radius: float) -> np.ndarray:
    """Inclusive anti-kt jets, by the definition."""

    def distances(P):
        pt2 = P[:, 0] ** 2 + P[:, 1] ** 2
        y = 0.5 * np.log((P[:, 3] + P[:, 2]) / (P[:, 3] - P[:, 2]))
        phi = np.arctan2(P[:, 1], P[:, 0])
        dphi = np.abs(phi[:, None] - phi[None, :])
        dphi = np.minimum(dphi, 2 * np.pi - dphi)
        dr2 = (y[:, None] - y[None, :]) ** 2 + dphi**2
        return np.minimum(1 / pt2[:, None], 1 / pt2[None, :]) * dr2 / radius**2, 1 / pt2

    return direct_inclusive(p4, distances)


def _to_pt_eta_phi_e(p4: np.ndarray) -> np.ndarray:
    pt = np.hypot(p4[:, 0], p4[:, 1])
    out = np.stack([pt, np.arcsinh(p4[:, 2] / pt), np.arctan2(p4[:, 1], p4[:, 0]), p4[:, 3]], -1)
    return out[np.argsort(-out[:, 0])]


@pytest.fixture(scope="module")
def events():
    return generate_events(make_config("clic"), 3, range(40))


def test_fastjet_jets_equal_direct_antikt(events):
    particles = [e.ytarget for e in events] + [e.ycand for e in events]
    fj = jets.cluster_jets(particles, radius=0.4)
    n_jets = 0
    for p, mine in zip(particles, fj):
        ref = _to_pt_eta_phi_e(direct_antikt(jets.particle_p4(p), 0.4))
        assert mine.shape == ref.shape
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-9)
        n_jets += len(ref)
    assert n_jets > 4 * len(particles), "events have several jets each"


def test_response_equals_direct_antikt_response(events):
    """jet_pt_ratios (FastJet + Delta R matching) equals the same matching on direct anti-kt jets."""
    ratios, ref = [], []
    for e in events:
        ratios.append(jets.jet_pt_ratios(e.ycand, e.genjets))
        direct = _to_pt_eta_phi_e(direct_antikt(jets.particle_p4(e.ycand), jets.JET_RADIUS))
        # matching written out: nearest reco jet within MATCH_DR of each gen jet
        r = np.zeros(len(e.genjets))
        for g, (gpt, geta, gphi, _) in enumerate(e.genjets):
            dphi = np.angle(np.exp(1j * (gphi - direct[:, 2])))
            dr = np.hypot(geta - direct[:, 1], dphi)
            if dr.size and dr.min() < jets.MATCH_DR:
                r[g] = direct[dr.argmin(), 0] / gpt
        ref.append(r)
    ratios, ref = np.concatenate(ratios), np.concatenate(ref)
    np.testing.assert_allclose(ratios, ref, rtol=1e-6)
    s = jets.response_summary(ratios)
    assert s == jets.response_summary(ref)
    assert 0.8 < s["median"] < 1.2 and s["match_fraction"] > 0.8, s


def test_response_summary_and_unmatched_jets():
    # a gen jet far from every particle gets ratio 0 and lowers the match fraction
    p = np.zeros((2, 14), np.float32)
    p[:, 0] = 1
    p[:, 2] = [30.0, 20.0]
    p[:, 3] = [0.0, 0.05]
    p[:, 4], p[:, 5] = 0.0, 1.0  # phi = 0
    p[:, 6] = np.hypot(p[:, 2], p[:, 2] * np.sinh(p[:, 3]))
    gen = np.array([[50.0, 0.02, 0.0, 50.0], [40.0, 2.0, 3.0, 150.0]])
    r = jets.jet_pt_ratios(p, gen)
    assert r[1] == 0.0 and 0.95 < r[0] < 1.05
    s = jets.response_summary(r)
    assert s["match_fraction"] == 0.5 and s["median"] == r[0]
    assert jets.jet_pt_ratios(np.zeros((0, 14)), gen).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- converted CLIC events: upstream's jets


def direct_ee_genkt(p4: np.ndarray, radius: float, p: float = -1.0) -> np.ndarray:
    """Inclusive e+e- generalised-kt jets (FastJet manual eq. 12-13): d_ij = min(E_i^2p, E_j^2p)
    (1 - cos theta_ij) / (1 - cos R), d_iB = E_i^2p (R < pi), by the definition."""

    def distances(P):
        e2p = P[:, 3] ** (2 * p)
        unit = P[:, :3] / np.linalg.norm(P[:, :3], axis=1, keepdims=True)
        cos = np.clip(unit @ unit.T, -1.0, 1.0)
        return np.minimum(e2p[:, None], e2p[None, :]) * (1 - cos) / (1 - np.cos(radius)), e2p

    return direct_inclusive(p4, distances)


def test_clic_jets_are_upstreams_definition():
    """Converted CLIC data (schema clic) gets upstream's JET_CONFIG['clic']; hpoq's synthetic events keep
    anti-kt 0.4 matched within 0.2."""
    assert jets.jet_config("clic") == jets.CLIC and jets.jet_config("synthetic-clic") == jets.SYNTHETIC
    assert (jets.CLIC.algorithm, jets.CLIC.radius, jets.CLIC.match_dr, jets.CLIC.min_pt) == ("ee_genkt", 0.4, 0.1, 5.0)
    assert (jets.SYNTHETIC.algorithm, jets.SYNTHETIC.match_dr, jets.SYNTHETIC.min_pt) == ("antikt", 0.2, 0.0)
    conf = pytest.importorskip("mlpf.conf")  # upstream particleflow, where `make particleflow` installed it
    up = conf.JET_CONFIG["clic"]
    assert (up["algo"], up["r"], up["p"], up["match_dr"], up["ptcut"]) == (
        "ee_genkt_algorithm",
        jets.CLIC.radius,
        -1.0,
        jets.CLIC.match_dr,
        jets.CLIC.min_pt,
    )


def test_fastjet_ee_genkt_equals_the_direct_definition(events):
    particles = [e.ytarget for e in events[:12]]
    fj = jets.cluster_jets(particles, radius=0.4, algorithm="ee_genkt")
    for p, mine in zip(particles, fj):
        ref = _to_pt_eta_phi_e(direct_ee_genkt(jets.particle_p4(p), 0.4))
        assert mine.shape == ref.shape
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-9)


def test_clic_matching_uses_delta_r_0_1_and_the_5_gev_cut():
    # one particle = one jet at eta 0.15 from the first gen jet: within 0.2, not within 0.1
    p = np.zeros((1, 14), np.float32)
    p[0, 0], p[0, 2], p[0, 3], p[0, 4], p[0, 5] = 1, 30.0, 0.15, 0.0, 1.0
    p[0, 6] = 30.0 * np.cosh(0.15)
    gen = np.array([[30.0, 0.0, 0.0, 30.0], [4.0, 1.5, 2.0, 9.0]])  # the second is below upstream's 5 GeV cut
    synth = jets.ratios_for([p], [gen], jets.SYNTHETIC)[0]
    clic = jets.ratios_for([p], [gen], jets.CLIC)[0]
    assert synth.shape == (2,) and 0.95 < synth[0] < 1.05 and synth[1] == 0.0
    assert clic.tolist() == [0.0]  # the 4 GeV gen jet is dropped, the other is not matched at 0.1
    p[0, 3] = 0.05
    p[0, 6] = 30.0 * np.cosh(0.05)
    assert 0.95 < jets.ratios_for([p], [gen], jets.CLIC)[0][0] < 1.05
    p[0, 2] = 4.0  # a 4 GeV reconstructed jet is below the cut too
    assert jets.ratios_for([p], [gen], jets.CLIC)[0].tolist() == [0.0]


def test_training_uses_the_datasets_jet_definition(tmp_path, monkeypatch):
    from hpoq.mlpf.training import TrainSettings, train_unit
    from hpoq.mlpf.writer import generate_dataset

    generate_dataset(tmp_path / "d", 60, seed=2, preset="clic", shards=1, val_fraction=0.25)
    used = []
    real = jets.ratios_for
    monkeypatch.setattr(jets, "ratios_for", lambda e, g, config: used.append(config) or real(e, g, config))
    settings = TrainSettings(data=str(tmp_path / "d"), R=1, backend="none", device="cpu", secondary_metrics=True)
    train_unit(settings, {"token_budget": 512}, 0, 1, tmp_path / "c")
    assert used and set(used) == {jets.SYNTHETIC}
