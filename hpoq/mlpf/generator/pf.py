"""Rule-based particle-flow baseline (``ycand``), the reference a trained model must beat.

Each track links to the nearest kept cluster within ``pf_link_radius`` (Delta R, at its bent
azimuth at the calorimeter). A linked track with ECAL/p in ``pf_electron_eop`` and little HCAL is
an electron; one with a MIP-like cluster and p > 3 GeV a muon; any other track a charged hadron.
A cluster's energy left after subtracting its linked tracks' momenta becomes a photon (ECAL-
dominated) or neutral hadron if above ``pf_neutral_threshold`` GeV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.mlpf.generator.clustering import Clusters
from hpoq.mlpf.generator.common import M_E, M_MU, M_PI, N_Y, dphi2, firsts, padded, wrap
from hpoq.mlpf.generator.tracker import Geometry, Tracks
from hpoq.mlpf.schema import CLS_CH, CLS_ELE, CLS_GAMMA, CLS_MU, CLS_NH


@dataclass
class PFSettings:
    """Track-cluster link radius (Delta R), electron E/p window and neutral threshold (GeV)."""

    pf_link_radius: float = 0.1
    pf_electron_eop: tuple = (0.8, 1.2)
    pf_neutral_threshold: float = 0.5


def link_tracks(s: PFSettings, g: Geometry, tracks: Tracks, clusters: Clusters, n_events: int) -> np.ndarray:
    """Kept-cluster index linked to each track, -1 for none."""
    n_tracks, n_clusters = tracks.ev.size, clusters.e.size
    if not (n_tracks and n_clusters):
        return np.full(n_tracks, -1)
    bend_pt = g.bend_pt
    t_phi_calo = wrap(tracks.phi - tracks.q * np.arcsin(np.minimum(1.0, bend_pt / np.maximum(tracks.pt, 1e-6))))
    C_eta, _ = padded(clusters.ev, n_events, clusters.eta, 1e6)
    C_phi, _ = padded(clusters.ev, n_events, clusters.phi, 0.0)
    d2 = (tracks.eta[:, None] - C_eta[tracks.ev]) ** 2 + dphi2(t_phi_calo[:, None], C_phi[tracks.ev])
    nearest = d2.argmin(axis=1)
    ok = (tracks.pt > bend_pt) & (d2[np.arange(n_tracks), nearest] < s.pf_link_radius**2)
    c_first = firsts(np.bincount(clusters.ev, minlength=n_events))
    return np.where(ok, c_first[tracks.ev] + nearest, -1)


def pf_candidates(
    s: PFSettings,
    g: Geometry,
    tracks: Tracks,
    clusters: Clusters,
    track_row: np.ndarray,
    cluster_row: np.ndarray,
    n_events: int,
) -> np.ndarray:
    """``ycand`` float64 [n_elements, 14] for the element rows (layout of ``ytarget``)."""
    n_clusters = clusters.e.size
    ycand = np.zeros((track_row.size + cluster_row.size, N_Y))
    link = link_tracks(s, g, tracks, clusters, n_events)
    linked = link >= 0
    lc = np.maximum(link, 0)
    l_ecal = np.where(linked, clusters.X[lc, 10] if n_clusters else 0.0, 0.0)
    l_hcal = np.where(linked, clusters.X[lc, 11] if n_clusters else 0.0, 0.0)
    t_p = tracks.p
    eop = l_ecal / np.maximum(t_p, 1e-6)
    electron = (
        linked
        & (eop >= s.pf_electron_eop[0])
        & (eop <= s.pf_electron_eop[1])
        & (l_hcal < 0.1 * np.maximum(l_ecal, 1e-9))
    )
    muon = linked & ~electron & (l_ecal < 0.5) & (l_hcal < 3.0) & (t_p > 3.0)
    t_mass = np.where(electron, M_E, np.where(muon, M_MU, M_PI))
    tr = track_row
    ycand[tr, 0] = np.where(electron, CLS_ELE, np.where(muon, CLS_MU, CLS_CH))
    ycand[tr, 1], ycand[tr, 2], ycand[tr, 3] = tracks.q, tracks.pt, tracks.eta
    ycand[tr, 4], ycand[tr, 5], ycand[tr, 6] = np.sin(tracks.phi), np.cos(tracks.phi), np.sqrt(t_p**2 + t_mass**2)
    ycand[tr, 8], ycand[tr, 9], ycand[tr, 10] = 1, 1, 1
    if n_clusters:
        ce, ceta, cphi = clusters.e, clusters.eta, clusters.phi
        remainder = ce - np.bincount(link[linked], t_p[linked], n_clusters)
        neutral = remainder > s.pf_neutral_threshold
        crow = cluster_row[neutral]
        r_e = remainder[neutral]
        ycand[crow, 0] = np.where(clusters.X[neutral, 10] > 0.5 * ce[neutral], CLS_GAMMA, CLS_NH)
        ycand[crow, 2], ycand[crow, 3] = r_e / np.cosh(ceta[neutral]), ceta[neutral]
        ycand[crow, 4], ycand[crow, 5], ycand[crow, 6] = np.sin(cphi[neutral]), np.cos(cphi[neutral]), r_e
        ycand[crow, 8], ycand[crow, 9], ycand[crow, 11] = 1, 1, 1
    return ycand
