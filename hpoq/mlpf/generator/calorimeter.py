"""Calorimeter: EM and non-compensating hadronic showers, muon MIPs, shower splitting and noise.

Units: GeV, mm. Charged particles are bent in the field to their azimuth at the calorimeter and
reach it only above ``Geometry.bend_pt``. EM resolution ``hypot(a / sqrt(E), c)``; the hadronic
response is ``base + amp (1 - exp(-E / scale))`` times ``1 + hypot(a / sqrt(E), c) z``, shared
between ECAL (a Beta fraction, or a MIP) and HCAL. A hadronic shower splits off a second deposit
with probability ``min(max, scale sqrt(E / 20 GeV))``. Noise deposits: Poisson(``noise_clusters_mean``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.mlpf.generator.common import segments, wrap
from hpoq.mlpf.generator.tracker import Geometry


@dataclass
class CalorimeterSettings:
    """Acceptance, resolutions, hadronic response, splitting, muon deposits (GeV) and noise."""

    calo_max_abs_eta: float = 3.0
    em_stochastic: float = 0.15
    em_constant: float = 0.01
    em_leak_threshold: float = 50.0
    em_leak_fraction: float = 0.02
    had_mip_probability: float = 0.3
    had_mip_energy: float = 0.3
    had_ecal_beta: tuple = (2.0, 3.0)
    had_stochastic: float = 0.5
    had_constant: float = 0.05
    had_response_base: float = 0.75  # non-compensating response r(E) = base + amp * (1 - exp(-E / scale))
    had_response_amp: float = 0.2
    had_response_scale: float = 20.0
    split_probability_scale: float = 0.15
    split_probability_max: float = 0.5
    split_share: tuple = (0.1, 0.4)
    split_distance: tuple = (0.05, 0.15)
    mu_ecal: float = 0.25
    mu_hcal: float = 1.8
    mu_hcal_spread: float = 0.2
    noise_clusters_mean: float = 5.0
    noise_min_energy: float = 0.1
    noise_mean_energy: float = 0.3


@dataclass
class Deposits:
    """Calorimeter deposits of a block, sorted by event, then by descending energy."""

    ev: np.ndarray
    owner: np.ndarray  # particle row, -1 for noise
    eta: np.ndarray
    phi: np.ndarray
    ecal: np.ndarray  # GeV
    hcal: np.ndarray  # GeV
    em: np.ndarray  # bool: EM-like (joins within the EM merge radius)
    main: np.ndarray  # bool: the particle's main deposit (not a split-off, not noise)
    e: np.ndarray  # ecal + hcal


def _energies(s: CalorimeterSettings, part: dict, reach: np.ndarray):
    """ECAL and HCAL energy (GeV) per particle and the EM / hadron masks."""
    e, pdg, z, u = part["e"], part["pdg"], part["z"], part["u"]
    is_em = (pdg == 22) | (pdg == 11)
    is_mu = pdg == 13
    is_had = ~is_em & ~is_mu & part["visible"]
    em_vis = e * (1 + np.hypot(s.em_stochastic / np.sqrt(e), s.em_constant) * z[:, 9])
    leak = np.where(e > s.em_leak_threshold, s.em_leak_fraction, 0.0)
    response = s.had_response_base + s.had_response_amp * (1 - np.exp(-e / s.had_response_scale))
    had_vis = np.maximum(0.0, e * response * (1 + np.hypot(s.had_stochastic / np.sqrt(e), s.had_constant) * z[:, 9]))
    mip = u[:, 1] < s.had_mip_probability
    had_ecal = np.where(mip, np.minimum(s.had_mip_energy, had_vis), part["beta"] * had_vis)
    ecal = np.where(is_em, em_vis * (1 - leak), np.where(is_had, had_ecal, np.where(is_mu, s.mu_ecal, 0.0)))
    hcal = np.where(
        is_em,
        em_vis * leak,
        np.where(
            is_had, had_vis - had_ecal, np.where(is_mu, s.mu_hcal * (1 + s.mu_hcal_spread * z[:, 9]).clip(0.2), 0.0)
        ),
    )
    return ecal * reach, hcal * reach, is_em, is_had


def deposit_energy(s: CalorimeterSettings, g: Geometry, part: dict, det: list[dict]) -> Deposits:
    """Deposits of the particles in ``part`` (with kinematics) plus noise, from the draws ``det``."""
    e, q, pt, eta, phi, u, pev = (part[k] for k in ("e", "charge", "pt", "eta", "phi", "u", "ev"))
    bend_pt = g.bend_pt
    reach = part["visible"] & (np.abs(eta) < s.calo_max_abs_eta) & ((q == 0) | (pt > bend_pt))
    phi_calo = wrap(phi - q * np.arcsin(np.minimum(1.0, bend_pt / np.maximum(pt, 1e-6))))
    ecal, hcal, is_em, is_had = _energies(s, part, reach)
    p_split = np.minimum(s.split_probability_max, s.split_probability_scale * np.sqrt(e / 20.0))
    split = is_had & reach & (u[:, 2] < p_split)
    s_share = s.split_share[0] + (s.split_share[1] - s.split_share[0]) * u[:, 3]
    s_dist = s.split_distance[0] + (s.split_distance[1] - s.split_distance[0]) * u[:, 4]
    s_dir = 2 * np.pi * u[:, 5]
    main_share = np.where(split, 1 - s_share, 1.0)
    di = np.flatnonzero(reach & (ecal + hcal > 0))
    si = np.flatnonzero(split & (ecal + hcal > 0))
    n_noise = np.array([d["noise_e"].size for d in det])
    nz_u = np.concatenate([d["noise_u"] for d in det])
    noise_e = np.concatenate([d["noise_e"] for d in det])
    noise_em = nz_u[:, 2] < 0.5
    dep_ev = np.concatenate([pev[di], pev[si], segments(n_noise)])
    dep_owner = np.concatenate([di, si, np.full(noise_e.size, -1)])
    dep_eta = np.concatenate(
        [eta[di], eta[si] + s_dist[si] * np.cos(s_dir[si]), (2 * nz_u[:, 0] - 1) * s.calo_max_abs_eta]
    )
    dep_phi = wrap(
        np.concatenate([phi_calo[di], phi_calo[si] + s_dist[si] * np.sin(s_dir[si]), (2 * nz_u[:, 1] - 1) * np.pi])
    )
    dep_ecal = np.concatenate([ecal[di] * main_share[di], ecal[si] * s_share[si], noise_e * noise_em])
    dep_hcal = np.concatenate([hcal[di] * main_share[di], hcal[si] * s_share[si], noise_e * ~noise_em])
    dep_em = np.concatenate([is_em[di], np.zeros(si.size, bool), noise_em])
    dep_main = np.concatenate([np.ones(di.size, bool), np.zeros(si.size + noise_e.size, bool)])
    dep_e = dep_ecal + dep_hcal
    order = np.lexsort((-dep_e, dep_ev))  # by event, then descending energy (stable)
    return Deposits(
        *(a[order] for a in (dep_ev, dep_owner, dep_eta, dep_phi, dep_ecal, dep_hcal, dep_em, dep_main, dep_e))
    )
