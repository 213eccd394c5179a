"""Synthetic CLIC-like particle-flow events (docs/mlpf.md 3), vectorised numpy, one event at a time.

Event ``j`` of seed ``s`` draws from ``numpy.random.default_rng(SeedSequence([s, j]))`` only, so
the output depends neither on the number of processes nor on shard boundaries. Every detector
number is a field of :class:`GeneratorConfig`; the presets ``easy``, ``clic`` and ``dense``
override some of them.

Structure (mlpf.md 3.1-3.3): e+e- -> 2/4/6 jets (+ an isolated lepton and a neutrino), jet
fragmentation with pi0 -> gamma gamma, a tracker with efficiency, resolution and fakes, charged
particles bent in the 4 T field before the calorimeter, EM and non-compensating hadronic showers
with splitting, greedy energy-ordered clustering, noise clusters, the upstream truth assignment
(``ytarget``) and a rule-based PF baseline (``ycand``).

Units: energies and momenta in GeV, lengths in mm, field in T, time in ns.

Deviations from the text of mlpf.md, chosen for speed (>= 2,000 events/s on one core):
- clustering: a deposit joins the cluster of the most energetic deposit within its radius
  (pointer jumping over the energy-sorted ΔR matrix), which equals greedy clustering except
  for rare chains;
- truth: a particle without a track competes only for its *best* cluster (the one holding its
  main deposit); if a more energetic particle owns that cluster it is merged into it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from hpoq.errors import HpoqError
from hpoq.mlpf.schema import (CLS_CH, CLS_ELE, CLS_GAMMA, CLS_MU, CLS_NH, X_FEATURES, Y_FEATURES)

M_PI0, M_PI, M_K, M_P, M_E, M_MU, M_K0L = 0.135, 0.1396, 0.4937, 0.9383, 0.000511, 0.1057, 0.4976
N_X, N_Y = len(X_FEATURES), len(Y_FEATURES)
_CLS_OF_PDG = np.zeros(256, np.int64)
_CLS_OF_PDG[[211, 130, 22, 11, 13]] = [CLS_CH, CLS_NH, CLS_GAMMA, CLS_ELE, CLS_MU]


@dataclass
class GeneratorConfig:
    """All knobs of the generator (units: GeV, mm, T, ns). Defaults are the ``clic`` preset."""

    # process
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
    # soft background ("PU")
    pu_mean: float = 0.0
    pu_mean_pt: float = 0.5
    pu_max_abs_eta: float = 3.0
    # tracker
    field_t: float = 4.0
    tracker_max_abs_eta: float = 2.5
    track_eff_plateau: float = 0.98
    track_eff_turn_on: tuple = (0.2, 1.0)
    track_extra_loss: float = 0.01
    track_pt_res_a: float = 2e-5
    track_pt_res_b: float = 1e-3
    track_angle_res: float = 1e-3
    fake_track_rate: float = 0.005
    track_inner_radius_mm: float = 31.0
    track_hits_central: float = 12.0
    track_hits_eta_slope: float = 1.6
    impact_res_a_mm: float = 0.020
    impact_res_b_mm: float = 0.050
    dedx_noise: float = 0.07
    time_res_ns: float = 0.1
    # calorimeter
    ecal_radius_mm: float = 1500.0
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
    had_response_base: float = 0.75   # non-compensating response r(E) = base + amp * (1 - exp(-E / scale))
    had_response_amp: float = 0.2
    had_response_scale: float = 20.0
    split_probability_scale: float = 0.15
    split_probability_max: float = 0.5
    split_share: tuple = (0.1, 0.4)
    split_distance: tuple = (0.05, 0.15)
    mu_ecal: float = 0.25
    mu_hcal: float = 1.8
    mu_hcal_spread: float = 0.2
    merge_radius_em: float = 0.02
    merge_radius_had: float = 0.08
    em_width_mm: float = 15.0
    had_width_mm: float = 60.0
    hits_per_gev_em: float = 20.0
    hits_per_gev_had: float = 8.0
    noise_clusters_mean: float = 5.0
    noise_min_energy: float = 0.1
    noise_mean_energy: float = 0.3
    min_cluster_energy: float = 0.1
    # rule-based PF baseline (ycand)
    pf_link_radius: float = 0.1
    pf_electron_eop: tuple = (0.8, 1.2)
    pf_neutral_threshold: float = 0.5
    # jets built from particles for genjets / targetjets
    jet_radius: float = 0.4
    preset: str = "clic"

    def validate(self) -> "GeneratorConfig":
        if abs(sum(self.jet_probabilities) - 1.0) > 1e-6 or len(self.jet_probabilities) != len(self.jet_multiplicities):
            raise HpoqError("generator: jet_probabilities must sum to 1 and match jet_multiplicities")
        if self.sqrt_s <= 0 or self.field_t <= 0 or self.ecal_radius_mm <= 0:
            raise HpoqError("generator: sqrt_s, field_t and ecal_radius_mm must be positive")
        if any(s < 0 for s in self.species_shares) or sum(self.species_shares) <= 0:
            raise HpoqError("generator: species_shares must be non-negative with a positive sum")
        return self

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


PRESETS: dict[str, dict] = {
    # no merging, splitting or noise; linear calorimeter
    "easy": dict(had_response_base=1.0, had_response_amp=0.0, split_probability_max=0.0,
                 merge_radius_em=0.0, merge_radius_had=0.0, noise_clusters_mean=0.0, fake_track_rate=0.0),
    "clic": {},
    # more jets, larger merge radii, 20 PU particles, worse resolution
    "dense": dict(jet_multiplicities=(4, 6, 8), jet_probabilities=(0.4, 0.4, 0.2), pu_mean=20.0,
                  merge_radius_em=0.04, merge_radius_had=0.12, em_stochastic=0.2, had_stochastic=0.65,
                  track_pt_res_b=2e-3, noise_clusters_mean=10.0),
}


def make_config(preset: str = "clic", **overrides) -> GeneratorConfig:
    """The config of ``preset`` with ``overrides`` (field name -> value) applied."""
    if preset not in PRESETS:
        raise HpoqError(f"generator: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise HpoqError(f"generator: unknown parameter(s) {', '.join(unknown)}")
    values = dict(PRESETS[preset])
    values.update(overrides)
    values["preset"] = preset
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
    return GeneratorConfig(**values).validate()


@dataclass
class Event:
    """One event: elements (tracks first, then clusters) and per-event extras."""

    X: np.ndarray            # float32 [n, 17]
    ytarget: np.ndarray      # float32 [n, 14]
    ycand: np.ndarray        # float32 [n, 14]
    genmet: float
    genjets: np.ndarray      # float32 [m, 4] (pT, eta, phi, E)
    targetjets: np.ndarray   # float32 [k, 4]
    accounting: dict = field(default_factory=dict)


def _wrap(phi):
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _rotate(axis: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Unit vectors at polar angle ``alpha`` and azimuth ``beta`` around unit ``axis`` rows [n, 3]."""
    ref = np.zeros_like(axis)
    near_z = np.abs(axis[:, 2]) > 0.9
    ref[near_z, 0] = 1.0
    ref[~near_z, 2] = 1.0
    ax, ay, az = axis[:, 0], axis[:, 1], axis[:, 2]
    rx, ry, rz = ref[:, 0], ref[:, 1], ref[:, 2]
    u = np.stack([ay * rz - az * ry, az * rx - ax * rz, ax * ry - ay * rx], axis=1)
    u /= np.sqrt((u * u).sum(axis=1))[:, None]
    ux, uy, uz = u[:, 0], u[:, 1], u[:, 2]
    v = np.stack([ay * uz - az * uy, az * ux - ax * uz, ax * uy - ay * ux], axis=1)
    ca, sa = np.cos(alpha)[:, None], np.sin(alpha)[:, None]
    return ca * axis + sa * (np.cos(beta)[:, None] * u + np.sin(beta)[:, None] * v)


def _unit(cos_theta, phi):
    sin_theta = np.sqrt(np.maximum(0.0, 1.0 - cos_theta ** 2))
    return np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=1)


def _kinematics(e, px, py, pz):
    pt = np.hypot(px, py)
    p = np.sqrt(pt ** 2 + pz ** 2)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(py, px)
    return pt, eta, phi, p


def _particles(cfg: GeneratorConfig, rng: np.random.Generator) -> dict:
    """Generator-level particles: a dict of arrays (E, px, py, pz, mass, pdg, charge, ispu, jet)."""
    n_jets = int(rng.choice(cfg.jet_multiplicities, p=cfg.jet_probabilities))
    jet_u = rng.random((n_jets, 3))
    jet_cos = (2 * jet_u[:, 0] - 1) * cfg.max_abs_cos_theta
    jet_phi = (2 * jet_u[:, 1] - 1) * np.pi
    e_jets = rng.dirichlet([cfg.jet_dirichlet_alpha] * n_jets) * cfg.sqrt_s * (
        cfg.jet_energy_scale[0] + (cfg.jet_energy_scale[1] - cfg.jet_energy_scale[0]) * jet_u[0, 2])
    mult = np.maximum(1, rng.poisson(np.maximum(cfg.mult_base + cfg.mult_slope * np.log(np.maximum(e_jets / 5.0, 1e-3)), 0.5)))
    jet_of = np.repeat(np.arange(n_jets), mult)
    g = rng.gamma(cfg.fraction_dirichlet_alpha, size=jet_of.size) + 1e-12
    starts = np.concatenate([[0], np.cumsum(mult)[:-1]])
    e = e_jets[jet_of] * g / np.add.reduceat(g, starts)[jet_of]
    keep = e >= cfg.min_particle_energy
    e, jet_of = e[keep], jet_of[keep]
    n = e.size
    u = rng.random((n, 5))
    z = rng.standard_normal(n)
    shares = np.asarray(cfg.species_shares, float)
    species = np.searchsorted(np.cumsum(shares / shares.sum()), u[:, 0], side="right").clip(0, 4)
    angle = np.abs(z) * cfg.frag_angle_scale * (30.0 / e) ** cfg.frag_angle_power
    axes = _unit(jet_cos, jet_phi)[jet_of]
    dirs = _rotate(axes, np.minimum(angle, np.pi / 2), 2 * np.pi * u[:, 1])
    ch_cum = np.cumsum(cfg.charged_hadron_shares) / sum(cfg.charged_hadron_shares)
    ch_kind = np.searchsorted(ch_cum, u[:, 2], side="right").clip(0, 2)
    charged_mass = np.array([M_PI, M_K, M_P])[ch_kind]
    mass = np.choose(species, [charged_mass, np.full(n, M_PI0), np.full(n, M_K0L), np.full(n, M_E), np.full(n, M_MU)])
    pdg = np.array([211, 111, 130, 11, 13])[species]
    charge = np.where((species == 0) | (species >= 3), np.where(u[:, 3] < 0.5, -1, 1), 0)
    # pi0 -> gamma gamma: energy share z, opening angle m / (E sqrt(z (1 - z))) (= 2m/E at z = 1/2)
    is_pi0 = species == 1
    if is_pi0.any():
        share = 0.05 + 0.9 * u[is_pi0, 4]
        e_pi0 = np.maximum(e[is_pi0], 2 * M_PI0)
        opening = np.minimum(M_PI0 / (e_pi0 * np.sqrt(share * (1 - share))), 1.0)
        azim = 2 * np.pi * u[is_pi0, 1][::-1]
        d1 = _rotate(dirs[is_pi0], opening * (1 - share), azim)
        d2 = _rotate(dirs[is_pi0], opening * share, azim + np.pi)
        keep_idx = np.flatnonzero(~is_pi0)
        e = np.concatenate([e[keep_idx], e_pi0 * share, e_pi0 * (1 - share)])
        dirs = np.concatenate([dirs[keep_idx], d1, d2])
        mass = np.concatenate([mass[keep_idx], np.zeros(2 * is_pi0.sum())])
        pdg = np.concatenate([pdg[keep_idx], np.full(2 * is_pi0.sum(), 22)])
        charge = np.concatenate([charge[keep_idx], np.zeros(2 * is_pi0.sum(), int)])
        jet_of = np.concatenate([jet_of[keep_idx], jet_of[is_pi0], jet_of[is_pi0]])
    extra_e, extra_dir, extra_pdg, extra_q, extra_m, extra_jet, extra_pu = [], [], [], [], [], [], []
    # isolated lepton + neutrino (genMET)
    lep_u = rng.random(7)
    if lep_u[0] < cfg.lepton_probability:
        lo, hi = cfg.lepton_energy
        is_mu = lep_u[1] < 0.5
        cos2 = (2 * lep_u[[2, 4]] - 1) * cfg.max_abs_cos_theta
        d = _unit(cos2, (2 * lep_u[[3, 5]] - 1) * np.pi)
        extra_e += [lo + (hi - lo) * lep_u[6], lo + (hi - lo) * lep_u[5]]
        extra_dir += [d[0], d[1]]
        extra_pdg += [13 if is_mu else 11, 12]
        extra_q += [1 if lep_u[6] < 0.5 else -1, 0]
        extra_m += [M_MU if is_mu else M_E, 0.0]
        extra_jet += [-1, -1]
        extra_pu += [0, 0]
    n_pu = int(rng.poisson(cfg.pu_mean)) if cfg.pu_mean > 0 else 0
    if n_pu:
        pu_u = rng.random((n_pu, 4))
        pt_pu = rng.exponential(cfg.pu_mean_pt, n_pu) + 0.05
        eta_pu = (2 * pu_u[:, 0] - 1) * cfg.pu_max_abs_eta
        phi_pu = (2 * pu_u[:, 1] - 1) * np.pi
        sp = np.searchsorted([0.65, 0.9], pu_u[:, 2], side="right")  # charged / photon / neutral hadron
        cos_pu = np.tanh(eta_pu)
        for i in range(n_pu):
            extra_dir.append(_unit(cos_pu[i:i + 1], phi_pu[i:i + 1])[0])
        m_pu = np.array([M_PI, 0.0, M_K0L])[sp]
        extra_e += list(np.sqrt((pt_pu * np.cosh(eta_pu)) ** 2 + m_pu ** 2))
        extra_pdg += list(np.array([211, 22, 130])[sp])
        extra_q += list(np.where(sp == 0, np.where(pu_u[:, 3] < 0.5, -1, 1), 0))
        extra_m += list(m_pu)
        extra_jet += [-1] * n_pu
        extra_pu += [1] * n_pu
    n_main = e.size
    if extra_e:
        e = np.concatenate([e, extra_e])
        dirs = np.concatenate([dirs, np.asarray(extra_dir).reshape(-1, 3)])
        pdg = np.concatenate([pdg, extra_pdg])
        charge = np.concatenate([charge, extra_q])
        mass = np.concatenate([mass, extra_m])
        jet_of = np.concatenate([jet_of, extra_jet])
    ispu = np.zeros(e.size, np.int64)
    if extra_pu:
        ispu[n_main:] = extra_pu
    e = np.maximum(e, mass + 1e-3)
    p = np.sqrt(e ** 2 - mass ** 2)
    mom = dirs * p[:, None]
    return dict(e=e, px=mom[:, 0], py=mom[:, 1], pz=mom[:, 2], mass=mass, pdg=pdg, charge=charge.astype(np.int64),
                ispu=ispu, jet=jet_of.astype(np.int64), jet_eta=np.arctanh(jet_cos), jet_phi=jet_phi)


def generate_event(cfg: GeneratorConfig, seed: int, index: int) -> Event:
    """Event ``index`` of ``seed`` (deterministic: its own ``SeedSequence([seed, index])``)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    part = _particles(cfg, rng)
    e, pdg, q, mass = part["e"], part["pdg"], part["charge"], part["mass"]
    pt, eta, phi, p = _kinematics(e, part["px"], part["py"], part["pz"])
    n = e.size
    z = rng.standard_normal((n, 10))
    u = rng.random((n, 8))
    is_nu = pdg == 12
    visible = ~is_nu
    abs_eta = np.abs(eta)

    # ---- tracker
    lo, hi = cfg.track_eff_turn_on
    eff = np.clip((pt - lo) / (hi - lo), 0.0, 1.0) * cfg.track_eff_plateau * (1.0 - cfg.track_extra_loss)
    has_track = (q != 0) & (abs_eta < cfg.tracker_max_abs_eta) & (u[:, 0] < eff)
    ti = np.flatnonzero(has_track)
    ti = ti[np.argsort(-e[ti], kind="stable")]
    t_pt_true, t_eta_true, t_p_true = pt[ti], eta[ti], p[ti]
    sig = np.hypot(cfg.track_pt_res_a * t_pt_true, cfg.track_pt_res_b) * (1 + np.abs(t_eta_true) / 3)
    t_pt = np.maximum(t_pt_true * (1 + sig * z[ti, 0]), 0.05)
    t_eta = t_eta_true + cfg.track_angle_res * z[ti, 1]
    t_phi = _wrap(phi[ti] + cfg.track_angle_res * z[ti, 2])
    t_q = q[ti]
    t_p = t_pt * np.cosh(t_eta)
    ip_sig = np.hypot(cfg.impact_res_a_mm, cfg.impact_res_b_mm / np.maximum(t_p_true, 1e-3))
    nhits = np.maximum(3, np.round(cfg.track_hits_central - cfg.track_hits_eta_slope * np.abs(t_eta_true) + u[ti, 1] * 2))
    ndf = 2 * nhits - 5
    chi2 = np.maximum(0.1, ndf + np.sqrt(2 * ndf) * z[ti, 3])
    bg = t_p_true / np.maximum(mass[ti], 1e-6)
    beta2 = bg ** 2 / (1 + bg ** 2)
    dedx = (1.0 / beta2) * (1.0 + 0.1 * np.log1p(bg ** 2)) * (1 + cfg.dedx_noise * z[ti, 4])
    tracks = np.zeros((ti.size, N_X))
    tracks[:, 0] = 1
    tracks[:, 1], tracks[:, 2], tracks[:, 3], tracks[:, 4], tracks[:, 5] = t_pt, t_eta, np.sin(t_phi), np.cos(t_phi), t_p
    tracks[:, 6], tracks[:, 7], tracks[:, 8], tracks[:, 9] = chi2, ndf, dedx, cfg.dedx_noise * np.abs(dedx)
    tracks[:, 10] = cfg.track_inner_radius_mm + np.abs(0.5 * z[ti, 5])
    tracks[:, 11] = np.sinh(t_eta)
    tracks[:, 12] = ip_sig * z[ti, 6]
    tracks[:, 13] = t_q * 3e-4 * cfg.field_t / t_pt
    tracks[:, 14] = ip_sig * z[ti, 7]
    tracks[:, 15] = cfg.time_res_ns * z[ti, 8]
    n_fake = int(rng.poisson(cfg.fake_track_rate * ti.size)) if cfg.fake_track_rate > 0 and ti.size else 0
    if n_fake:
        fu = rng.random((n_fake, 6))
        f_pt = 0.2 + rng.exponential(0.5, n_fake)
        f_eta = (2 * fu[:, 0] - 1) * cfg.tracker_max_abs_eta
        f_phi = (2 * fu[:, 1] - 1) * np.pi
        f_q = np.where(fu[:, 2] < 0.5, -1, 1)
        fake = np.zeros((n_fake, N_X))
        f_ndf = np.round(5 + 10 * fu[:, 3])
        fake[:, 0], fake[:, 1], fake[:, 2] = 1, f_pt, f_eta
        fake[:, 3], fake[:, 4], fake[:, 5] = np.sin(f_phi), np.cos(f_phi), f_pt * np.cosh(f_eta)
        fake[:, 6], fake[:, 7], fake[:, 8], fake[:, 9] = f_ndf * (3 + 5 * fu[:, 4]), f_ndf, 1.5, 0.1
        fake[:, 10] = 100 + 200 * fu[:, 5]
        fake[:, 11], fake[:, 13] = np.sinh(f_eta), f_q * 3e-4 * cfg.field_t / f_pt
        tracks = np.concatenate([tracks, fake])
        t_pt, t_eta, t_phi, t_q, t_p = (np.concatenate([t_pt, f_pt]), np.concatenate([t_eta, f_eta]),
                                        np.concatenate([t_phi, f_phi]), np.concatenate([t_q, f_q]),
                                        np.concatenate([t_p, f_pt * np.cosh(f_eta)]))
    n_tracks = tracks.shape[0]

    # ---- calorimeter deposits
    r_m = cfg.ecal_radius_mm / 1000.0
    bend_pt = 0.3 * cfg.field_t * r_m / 2.0
    reach = visible & (abs_eta < cfg.calo_max_abs_eta) & ((q == 0) | (pt > bend_pt))
    phi_calo = _wrap(phi - q * np.arcsin(np.minimum(1.0, bend_pt / np.maximum(pt, 1e-6))))
    is_em = (pdg == 22) | (pdg == 11)
    is_mu = pdg == 13
    is_had = ~is_em & ~is_mu & visible
    ecal = np.zeros(n)
    hcal = np.zeros(n)
    em_vis = e * (1 + np.hypot(cfg.em_stochastic / np.sqrt(e), cfg.em_constant) * z[:, 9])
    leak = np.where(e > cfg.em_leak_threshold, cfg.em_leak_fraction, 0.0)
    ecal = np.where(is_em, em_vis * (1 - leak), ecal)
    hcal = np.where(is_em, em_vis * leak, hcal)
    response = cfg.had_response_base + cfg.had_response_amp * (1 - np.exp(-e / cfg.had_response_scale))
    had_vis = np.maximum(0.0, e * response * (1 + np.hypot(cfg.had_stochastic / np.sqrt(e), cfg.had_constant) * z[:, 9]))
    f_ecal = rng.beta(*cfg.had_ecal_beta, size=n)
    mip = u[:, 1] < cfg.had_mip_probability
    had_ecal = np.where(mip, np.minimum(cfg.had_mip_energy, had_vis), f_ecal * had_vis)
    ecal = np.where(is_had, had_ecal, ecal)
    hcal = np.where(is_had, had_vis - had_ecal, hcal)
    ecal = np.where(is_mu, cfg.mu_ecal, ecal)
    hcal = np.where(is_mu, cfg.mu_hcal * (1 + cfg.mu_hcal_spread * z[:, 9]).clip(0.2), hcal)
    ecal, hcal = ecal * reach, hcal * reach
    p_split = np.minimum(cfg.split_probability_max, cfg.split_probability_scale * np.sqrt(e / 20.0))
    split = is_had & reach & (u[:, 2] < p_split)
    s_share = cfg.split_share[0] + (cfg.split_share[1] - cfg.split_share[0]) * u[:, 3]
    s_dist = cfg.split_distance[0] + (cfg.split_distance[1] - cfg.split_distance[0]) * u[:, 4]
    s_dir = 2 * np.pi * u[:, 5]
    main_share = np.where(split, 1 - s_share, 1.0)
    di = np.flatnonzero(reach & (ecal + hcal > 0))
    si = np.flatnonzero(split & (ecal + hcal > 0))
    n_noise = int(rng.poisson(cfg.noise_clusters_mean)) if cfg.noise_clusters_mean > 0 else 0
    nu_ = rng.random((n_noise, 3))
    noise_e = cfg.noise_min_energy + rng.exponential(cfg.noise_mean_energy, n_noise)
    noise_em = nu_[:, 2] < 0.5
    dep_owner = np.concatenate([di, si, np.full(n_noise, -1)])
    dep_eta = np.concatenate([eta[di], eta[si] + s_dist[si] * np.cos(s_dir[si]),
                              (2 * nu_[:, 0] - 1) * cfg.calo_max_abs_eta])
    dep_phi = _wrap(np.concatenate([phi_calo[di], phi_calo[si] + s_dist[si] * np.sin(s_dir[si]),
                                    (2 * nu_[:, 1] - 1) * np.pi]))
    dep_ecal = np.concatenate([ecal[di] * main_share[di], ecal[si] * s_share[si], noise_e * noise_em])
    dep_hcal = np.concatenate([hcal[di] * main_share[di], hcal[si] * s_share[si], noise_e * ~noise_em])
    dep_em = np.concatenate([is_em[di], np.zeros(si.size, bool), noise_em])
    dep_main = np.concatenate([np.ones(di.size, bool), np.zeros(si.size + n_noise, bool)])
    dep_e = dep_ecal + dep_hcal
    order = np.argsort(-dep_e, kind="stable")
    dep_owner, dep_eta, dep_phi, dep_ecal, dep_hcal, dep_em, dep_main, dep_e = (
        a[order] for a in (dep_owner, dep_eta, dep_phi, dep_ecal, dep_hcal, dep_em, dep_main, dep_e))
    nd = dep_e.size

    # ---- clustering: join the most energetic deposit within the joining deposit's radius
    radius = np.where(dep_em, cfg.merge_radius_em, cfg.merge_radius_had)
    parent = np.arange(nd)
    if nd > 1 and radius.max() > 0:
        dr2 = (dep_eta[:, None] - dep_eta[None, :]) ** 2 + _wrap(dep_phi[:, None] - dep_phi[None, :]) ** 2
        cand = np.tril(dr2 < (radius ** 2)[:, None], k=-1)
        has = cand.any(axis=1)
        parent = np.where(has, cand.argmax(axis=1), parent)
        for _ in range(int(math.log2(nd)) + 2):
            parent = parent[parent]
    roots, dep_cluster = np.unique(parent, return_inverse=True)
    nc = roots.size
    c_e = np.bincount(dep_cluster, dep_e, nc)
    w = np.maximum(dep_e, 1e-9)
    c_w = np.bincount(dep_cluster, w, nc)
    c_eta = np.bincount(dep_cluster, w * dep_eta, nc) / c_w
    c_phi = np.arctan2(np.bincount(dep_cluster, w * np.sin(dep_phi), nc), np.bincount(dep_cluster, w * np.cos(dep_phi), nc))
    c_ecal = np.bincount(dep_cluster, dep_ecal, nc)
    c_hcal = np.bincount(dep_cluster, dep_hcal, nc)
    c_ndep = np.bincount(dep_cluster, minlength=nc)
    R = cfg.ecal_radius_mm
    dx, dy, dz = R * np.cos(dep_phi), R * np.sin(dep_phi), R * np.sinh(dep_eta)
    cx, cy, cz = (np.bincount(dep_cluster, w * a, nc) / c_w for a in (dx, dy, dz))
    var = [np.bincount(dep_cluster, w * (a - ca[dep_cluster]) ** 2, nc) / c_w for a, ca in ((dx, cx), (dy, cy), (dz, cz))]
    c_emlike = c_ecal > 0.8 * np.maximum(c_e, 1e-9)
    cz_ = rng.standard_normal((nc, 3))
    base_w = np.where(c_emlike, cfg.em_width_mm, cfg.had_width_mm)
    hits = rng.poisson(np.where(c_emlike, cfg.hits_per_gev_em * np.maximum(c_e, 0) ** 0.8,
                                cfg.hits_per_gev_had * np.maximum(c_e, 0) ** 0.7)) + 1
    keep_c = c_e >= cfg.min_cluster_energy
    new_id = np.cumsum(keep_c) - 1
    kc = np.flatnonzero(keep_c)
    clusters = np.zeros((kc.size, N_X))
    ce, ceta, cphi = c_e[kc], c_eta[kc], c_phi[kc]
    clusters[:, 0] = 2
    clusters[:, 1], clusters[:, 2], clusters[:, 3], clusters[:, 4], clusters[:, 5] = (
        ce / np.cosh(ceta), ceta, np.sin(cphi), np.cos(cphi), ce)
    clusters[:, 6], clusters[:, 7], clusters[:, 8] = R * np.cos(cphi), R * np.sin(cphi), R * np.sinh(ceta)
    clusters[:, 9] = 2 * np.arctan(np.exp(-ceta))
    clusters[:, 10], clusters[:, 11], clusters[:, 12] = c_ecal[kc], c_hcal[kc], 0.0
    clusters[:, 13] = hits[kc]
    for k in range(3):
        clusters[:, 14 + k] = np.sqrt((base_w[kc] * (1 + 0.1 * cz_[kc, k])) ** 2 + var[k][kc])
    n_clusters = kc.size
    dep_cl = np.where(keep_c[dep_cluster], new_id[dep_cluster], -1)  # kept cluster index per deposit, -1 if dropped

    # ---- truth (ytarget)
    ytarget = np.zeros((n_tracks + n_clusters, N_Y))
    track_owner = ti
    best_cluster = np.full(n, -1)
    main_mask = dep_main & (dep_owner >= 0)
    best_cluster[dep_owner[main_mask]] = dep_cl[main_mask]
    dep_in_best = np.zeros(n)
    dep_in_best[dep_owner[main_mask]] = dep_e[main_mask]
    untracked = visible & ~has_track
    cand = np.flatnonzero(untracked & (best_cluster >= 0))
    cand = cand[np.argsort(-e[cand], kind="stable")]
    owned, first = np.unique(best_cluster[cand], return_index=True)
    owners = cand[first]
    merged = np.setdiff1d(cand, owners, assume_unique=True)
    dropped = np.flatnonzero(untracked & (best_cluster < 0))
    owner_of_cluster = np.full(max(n_clusters, 1), -1)
    owner_of_cluster[owned] = owners
    # 4-vector sums: owners absorb the particles merged into their cluster
    sum4 = np.stack([e, part["px"], part["py"], part["pz"]], axis=1)
    acc = np.zeros((n, 4))
    acc[owners] = sum4[owners]
    if merged.size:
        np.add.at(acc, owner_of_cluster[best_cluster[merged]], sum4[merged])
    e_visible = e[visible].sum()
    e_kept = e[ti].sum() + e[owners].sum()
    e_merged, e_dropped = e[merged].sum(), e[dropped].sum()
    if abs(e_kept + e_merged + e_dropped - e_visible) > 1e-9 * max(1.0, e_visible):
        raise AssertionError("generator: energy accounting broken")
    cls = _CLS_OF_PDG[pdg]
    # track targets: always charged
    if ti.size:
        tcls = np.where((cls[ti] == CLS_ELE) | (cls[ti] == CLS_MU), cls[ti], CLS_CH)
        rows = np.arange(ti.size)
        ytarget[rows, 0], ytarget[rows, 1] = tcls, q[ti]
        ytarget[rows, 2], ytarget[rows, 3] = pt[ti], eta[ti]
        ytarget[rows, 4], ytarget[rows, 5], ytarget[rows, 6] = np.sin(phi[ti]), np.cos(phi[ti]), e[ti]
        ytarget[rows, 7], ytarget[rows, 8], ytarget[rows, 9] = part["ispu"][ti], 1, 1
        ytarget[rows, 10] = 1.0
        ytarget[rows, 11] = dep_in_best[ti] / e[ti]
        ytarget[rows, 12], ytarget[rows, 13] = part["jet"][ti], ti
    if owners.size:
        rows = n_tracks + best_cluster[owners]
        a = acc[owners]
        o_pt, o_eta, o_phi, _ = _kinematics(a[:, 0], a[:, 1], a[:, 2], a[:, 3])
        ocls = np.where((cls[owners] == CLS_GAMMA) | (cls[owners] == CLS_ELE), CLS_GAMMA, CLS_NH)
        ytarget[rows, 0], ytarget[rows, 1] = ocls, 0
        ytarget[rows, 2], ytarget[rows, 3], ytarget[rows, 4], ytarget[rows, 5] = o_pt, o_eta, np.sin(o_phi), np.cos(o_phi)
        ytarget[rows, 6], ytarget[rows, 7], ytarget[rows, 8], ytarget[rows, 9] = a[:, 0], part["ispu"][owners], 1, 1
        ytarget[rows, 11] = dep_in_best[owners] / np.maximum(c_e[kc][best_cluster[owners]], 1e-9)
        ytarget[rows, 12], ytarget[rows, 13] = part["jet"][owners], owners

    # ---- rule-based PF baseline (ycand)
    ycand = np.zeros_like(ytarget)
    link = np.full(n_tracks, -1)
    if n_tracks and n_clusters:
        t_phi_calo = _wrap(t_phi - t_q * np.arcsin(np.minimum(1.0, bend_pt / np.maximum(t_pt, 1e-6))))
        d2 = (t_eta[:, None] - ceta[None, :]) ** 2 + _wrap(t_phi_calo[:, None] - cphi[None, :]) ** 2
        nearest = d2.argmin(axis=1)
        ok = (t_pt > bend_pt) & (d2[np.arange(n_tracks), nearest] < cfg.pf_link_radius ** 2)
        link = np.where(ok, nearest, -1)
    lc = np.maximum(link, 0)
    linked = link >= 0
    l_ecal = np.where(linked, clusters[lc, 10] if n_clusters else 0.0, 0.0)
    l_hcal = np.where(linked, clusters[lc, 11] if n_clusters else 0.0, 0.0)
    eop = l_ecal / np.maximum(t_p, 1e-6)
    electron = linked & (eop >= cfg.pf_electron_eop[0]) & (eop <= cfg.pf_electron_eop[1]) & (l_hcal < 0.1 * np.maximum(l_ecal, 1e-9))
    muon = linked & ~electron & (l_ecal < 0.5) & (l_hcal < 3.0) & (t_p > 3.0)
    t_cls = np.where(electron, CLS_ELE, np.where(muon, CLS_MU, CLS_CH))
    t_mass = np.where(electron, M_E, np.where(muon, M_MU, M_PI))
    rows = np.arange(n_tracks)
    ycand[rows, 0], ycand[rows, 1], ycand[rows, 2], ycand[rows, 3] = t_cls, t_q, t_pt, t_eta
    ycand[rows, 4], ycand[rows, 5], ycand[rows, 6] = np.sin(t_phi), np.cos(t_phi), np.sqrt(t_p ** 2 + t_mass ** 2)
    ycand[rows, 8], ycand[rows, 9], ycand[rows, 10] = 1, 1, 1
    if n_clusters:
        linked_p = np.bincount(link[linked], t_p[linked], n_clusters)
        remainder = ce - linked_p
        neutral = remainder > cfg.pf_neutral_threshold
        crow = n_tracks + np.flatnonzero(neutral)
        r_e = remainder[neutral]
        ycand[crow, 0] = np.where(clusters[neutral, 10] > 0.5 * ce[neutral], CLS_GAMMA, CLS_NH)
        ycand[crow, 2], ycand[crow, 3] = r_e / np.cosh(ceta[neutral]), ceta[neutral]
        ycand[crow, 4], ycand[crow, 5], ycand[crow, 6] = np.sin(cphi[neutral]), np.cos(cphi[neutral]), r_e
        ycand[crow, 8], ycand[crow, 9], ycand[crow, 11] = 1, 1, 1

    # ---- jets around the generated axes (DeltaR < jet_radius), MET from neutrinos
    jet_eta, jet_phi = part["jet_eta"], part["jet_phi"]
    gen_sel = visible & (part["ispu"] == 0)
    genjets = _cone_jets(sum4[gen_sel], eta[gen_sel], phi[gen_sel], jet_eta, jet_phi, cfg.jet_radius)
    tsel = ytarget[:, 0] > 0
    t4 = _four_vectors(ytarget[tsel])
    tsel_nopu = ytarget[tsel, 7] == 0
    targetjets = _cone_jets(t4[tsel_nopu], ytarget[tsel, 3][tsel_nopu],
                            np.arctan2(ytarget[tsel, 4], ytarget[tsel, 5])[tsel_nopu], jet_eta, jet_phi, cfg.jet_radius)
    genmet = float(np.hypot(part["px"][is_nu].sum(), part["py"][is_nu].sum()))
    X = np.concatenate([tracks, clusters]).astype(np.float32)
    return Event(X=X, ytarget=ytarget.astype(np.float32), ycand=ycand.astype(np.float32), genmet=genmet,
                 genjets=genjets, targetjets=targetjets,
                 accounting=dict(visible=e_visible, kept=e_kept, merged=e_merged, dropped=e_dropped,
                                 n_merged=int(merged.size), n_dropped=int(dropped.size)))


def _four_vectors(y: np.ndarray) -> np.ndarray:
    pt, eta = y[:, 2].astype(float), y[:, 3].astype(float)
    phi = np.arctan2(y[:, 4], y[:, 5])
    return np.stack([y[:, 6], pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)


def _cone_jets(p4, eta, phi, axis_eta, axis_phi, radius) -> np.ndarray:
    """(pT, eta, phi, E) per axis of the particles within ``radius`` of their nearest axis."""
    if p4.shape[0] == 0 or axis_eta.size == 0:
        return np.zeros((0, 4), np.float32)
    d2 = (eta[:, None] - axis_eta[None, :]) ** 2 + _wrap(phi[:, None] - axis_phi[None, :]) ** 2
    nearest = d2.argmin(axis=1)
    inside = d2[np.arange(nearest.size), nearest] < radius ** 2
    na = axis_eta.size
    s = np.stack([np.bincount(nearest[inside], p4[inside, k], na) for k in range(4)], axis=1)
    s = s[np.bincount(nearest[inside], minlength=na) > 0]
    pt, jeta, jphi, _ = _kinematics(s[:, 0], s[:, 1], s[:, 2], s[:, 3])
    return np.stack([pt, jeta, jphi, s[:, 0]], axis=1).astype(np.float32)
