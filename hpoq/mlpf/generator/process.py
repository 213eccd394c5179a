"""Generator level: e+e- -> 2/4/6 jets, fragmentation with pi0 -> gamma gamma, an isolated lepton
with its neutrino, and a soft background (docs/mlpf-data.md#synthetic-events).

Units: GeV, radians. Jets are drawn with cos(theta) uniform in +-``max_abs_cos_theta``, energies
from a Dirichlet share of ``sqrt_s``; each jet fragments into Poisson(``mult_base + mult_slope
log(E / 5 GeV)``) particles with Dirichlet(``fraction_dirichlet_alpha``) energy fractions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.mlpf.generator.common import M_E, M_K, M_K0L, M_MU, M_P, M_PI, M_PI0, firsts, rotate, segments, unit


@dataclass
class ProcessSettings:
    """Hard process, fragmentation and soft background (GeV; angles in radians)."""

    sqrt_s: float = 380.0
    jet_multiplicities: tuple = (2, 4, 6)
    jet_probabilities: tuple = (0.5, 0.35, 0.15)
    max_abs_cos_theta: float = 0.95
    jet_dirichlet_alpha: float = 2.0
    jet_energy_scale: tuple = (0.7, 1.0)
    lepton_probability: float = 0.3
    lepton_energy: tuple = (10.0, 100.0)
    # fragmentation
    mult_base: float = 4.0
    mult_slope: float = 6.0
    fraction_dirichlet_alpha: float = 0.7
    min_particle_energy: float = 0.15
    frag_angle_scale: float = 0.08
    frag_angle_power: float = 0.3
    # species shares per fragment: charged hadron, pi0 (-> 2 photons), neutral hadron, e, mu
    species_shares: tuple = (0.62, 0.125, 0.10, 0.02, 0.01)
    charged_hadron_shares: tuple = (0.80, 0.13, 0.07)  # pi, K, p
    # soft background ("PU"): Poisson(pu_mean) particles, exponential pT, flat eta
    pu_mean: float = 0.0
    pu_mean_pt: float = 0.5
    pu_max_abs_eta: float = 3.0


def draw_generator_level(s: ProcessSettings, rng: np.random.Generator) -> dict:
    """Per-event random numbers of the generator level (the only per-event Python work)."""
    n_jets = int(rng.choice(s.jet_multiplicities, p=s.jet_probabilities))
    jet_u = rng.random((n_jets, 3))
    e_jets = (
        rng.dirichlet([s.jet_dirichlet_alpha] * n_jets)
        * s.sqrt_s
        * (s.jet_energy_scale[0] + (s.jet_energy_scale[1] - s.jet_energy_scale[0]) * jet_u[0, 2])
    )
    lam = np.maximum(s.mult_base + s.mult_slope * np.log(np.maximum(e_jets / 5.0, 1e-3)), 0.5)
    mult = np.maximum(1, rng.poisson(lam))
    nf = int(mult.sum())
    d = {
        "jet_u": jet_u,
        "e_jets": e_jets,
        "mult": mult,
        "g": rng.gamma(s.fraction_dirichlet_alpha, size=nf),
        "uf": rng.random((nf, 5)),
        "zf": rng.standard_normal(nf),
        "lep": rng.random(7),
    }
    n_pu = int(rng.poisson(s.pu_mean)) if s.pu_mean > 0 else 0
    d["pu_u"] = rng.random((n_pu, 4))
    d["pu_pt"] = rng.exponential(s.pu_mean_pt, n_pu) + 0.05
    return d


def _fragments(s: ProcessSettings, draws: list[dict], jet_ev, jet_cos, jet_phi) -> list[tuple]:
    """Particle groups of the jet fragments; pi0s decayed to two photons."""
    e_jets = np.concatenate([d["e_jets"] for d in draws])
    mult = np.concatenate([d["mult"] for d in draws])
    jet_of = segments(mult)
    g = np.concatenate([d["g"] for d in draws]) + 1e-12
    e = e_jets[jet_of] * g / np.add.reduceat(g, firsts(mult))[jet_of]
    u = np.concatenate([d["uf"] for d in draws])
    z = np.concatenate([d["zf"] for d in draws])
    keep = e >= s.min_particle_energy
    e, jet_of, u, z = e[keep], jet_of[keep], u[keep], z[keep]
    n = e.size
    shares = np.asarray(s.species_shares, float)
    species = np.searchsorted(np.cumsum(shares / shares.sum()), u[:, 0], side="right").clip(0, 4)
    angle = np.abs(z) * s.frag_angle_scale * (30.0 / e) ** s.frag_angle_power
    dirs = rotate(unit(jet_cos, jet_phi)[jet_of], np.minimum(angle, np.pi / 2), 2 * np.pi * u[:, 1])
    ch_cum = np.cumsum(s.charged_hadron_shares) / sum(s.charged_hadron_shares)
    charged_mass = np.array([M_PI, M_K, M_P])[np.searchsorted(ch_cum, u[:, 2], side="right").clip(0, 2)]
    mass = np.choose(species, [charged_mass, np.full(n, M_PI0), np.full(n, M_K0L), np.full(n, M_E), np.full(n, M_MU)])
    pdg = np.array([211, 111, 130, 11, 13])[species]
    charge = np.where((species == 0) | (species >= 3), np.where(u[:, 3] < 0.5, -1, 1), 0)
    ev = jet_ev[jet_of]
    is_pi0 = species == 1
    keep_idx = np.flatnonzero(~is_pi0)
    groups = [
        (
            ev[keep_idx],
            e[keep_idx],
            dirs[keep_idx],
            mass[keep_idx],
            pdg[keep_idx],
            charge[keep_idx],
            jet_of[keep_idx],
            np.zeros(keep_idx.size, np.int64),
        )
    ]
    if is_pi0.any():
        # pi0 -> gamma gamma: share z, opening angle m / (E sqrt(z (1 - z))) (= 2m/E at z = 1/2)
        share = 0.05 + 0.9 * u[is_pi0, 4]
        e_pi0 = np.maximum(e[is_pi0], 2 * M_PI0)
        opening = np.minimum(M_PI0 / (e_pi0 * np.sqrt(share * (1 - share))), 1.0)
        azim = 2 * np.pi * u[is_pi0, 3]
        k = int(is_pi0.sum())
        for dir_, en in (
            (rotate(dirs[is_pi0], opening * (1 - share), azim), e_pi0 * share),
            (rotate(dirs[is_pi0], opening * share, azim + np.pi), e_pi0 * (1 - share)),
        ):
            groups.append(
                (
                    ev[is_pi0],
                    en,
                    dir_,
                    np.zeros(k),
                    np.full(k, 22),
                    np.zeros(k, np.int64),
                    jet_of[is_pi0],
                    np.zeros(k, np.int64),
                )
            )
    return groups


def _leptons(s: ProcessSettings, draws: list[dict]) -> list[tuple]:
    """Particle groups of the isolated lepton and its neutrino (the source of genMET)."""
    lep = np.stack([d["lep"] for d in draws])
    has_lep = lep[:, 0] < s.lepton_probability
    if not has_lep.any():
        return []
    L = lep[has_lep]
    lo, hi = s.lepton_energy
    is_mu = L[:, 1] < 0.5
    nl = L.shape[0]
    lev = np.flatnonzero(has_lep)
    groups = []
    for cos_col, phi_col, e_col, pdg_l, m_l, q_l in (
        (2, 3, 6, np.where(is_mu, 13, 11), np.where(is_mu, M_MU, M_E), np.where(L[:, 6] < 0.5, 1, -1)),
        (4, 5, 5, np.full(nl, 12), np.zeros(nl), np.zeros(nl, np.int64)),
    ):
        d_l = unit((2 * L[:, cos_col] - 1) * s.max_abs_cos_theta, (2 * L[:, phi_col] - 1) * np.pi)
        groups.append(
            (lev, lo + (hi - lo) * L[:, e_col], d_l, m_l, pdg_l, q_l, np.full(nl, -1), np.zeros(nl, np.int64))
        )
    return groups


def _pileup(s: ProcessSettings, draws: list[dict]) -> list[tuple]:
    """Particle group of the soft background (charged / photon / neutral hadron, 65/25/10 %)."""
    n_pu = np.array([d["pu_pt"].size for d in draws])
    if not n_pu.sum():
        return []
    pu_u = np.concatenate([d["pu_u"] for d in draws])
    pt_pu = np.concatenate([d["pu_pt"] for d in draws])
    eta_pu = (2 * pu_u[:, 0] - 1) * s.pu_max_abs_eta
    sp = np.searchsorted([0.65, 0.9], pu_u[:, 2], side="right")
    m_pu = np.array([M_PI, 0.0, M_K0L])[sp]
    npu = pt_pu.size
    return [
        (
            segments(n_pu),
            np.sqrt((pt_pu * np.cosh(eta_pu)) ** 2 + m_pu**2),
            unit(np.tanh(eta_pu), (2 * pu_u[:, 1] - 1) * np.pi),
            m_pu,
            np.array([211, 22, 130])[sp],
            np.where(sp == 0, np.where(pu_u[:, 3] < 0.5, -1, 1), 0),
            np.full(npu, -1),
            np.ones(npu, np.int64),
        )
    ]


def build_particles(s: ProcessSettings, draws: list[dict]) -> dict:
    """Generator-level particles of a block of events, rows grouped by event (vectorised).

    Keys: ``ev`` (event of the row), ``e``, ``px``, ``py``, ``pz``, ``mass`` (GeV), ``pdg``, ``charge``,
    ``ispu``, ``jet`` (index of the parent jet in its event, -1 for none), and per jet axis
    ``jet_ev``, ``jet_eta``, ``jet_phi``.
    """
    n_jets = np.array([d["jet_u"].shape[0] for d in draws])
    jet_u = np.concatenate([d["jet_u"] for d in draws])
    jet_ev = segments(n_jets)
    jet_cos = (2 * jet_u[:, 0] - 1) * s.max_abs_cos_theta
    jet_phi = (2 * jet_u[:, 1] - 1) * np.pi
    groups = _fragments(s, draws, jet_ev, jet_cos, jet_phi) + _leptons(s, draws) + _pileup(s, draws)
    cols = [np.concatenate([grp[i] for grp in groups]) for i in range(8)]
    order = np.argsort(cols[0], kind="stable")
    ev, e, dirs, mass, pdg, charge, jet, ispu = (c[order] for c in cols)
    e = np.maximum(e, mass + 1e-3)
    p = np.sqrt(e**2 - mass**2)
    mom = dirs * p[:, None]
    jet_local = np.where(jet >= 0, jet - firsts(n_jets)[ev], -1)
    return dict(
        ev=ev,
        e=e,
        px=mom[:, 0],
        py=mom[:, 1],
        pz=mom[:, 2],
        mass=mass,
        pdg=pdg,
        charge=charge.astype(np.int64),
        ispu=ispu.astype(np.int64),
        jet=jet_local.astype(np.int64),
        jet_ev=jet_ev,
        jet_eta=np.arctanh(jet_cos),
        jet_phi=jet_phi,
        n_events=len(draws),
    )
