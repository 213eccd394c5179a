"""Synthetic CLIC-like particle-flow events (docs/mlpf.md 3), vectorised numpy over blocks of events.

Event ``j`` of seed ``s`` draws only from ``SeedSequence([s, j])`` (spawned into two streams: the
generator level, then the detector level), and every later step is element-wise or segmented
per event, so an event is the same whatever block, shard or process generates it. Every
detector number is a field of :class:`GeneratorConfig`; the presets ``easy``, ``clic`` and
``dense`` override some of them.

Structure (mlpf.md 3.1-3.3): e+e- -> 2/4/6 jets (+ an isolated lepton and a neutrino), jet
fragmentation with pi0 -> gamma gamma, a tracker with efficiency, resolution and fakes, charged
particles bent in the 4 T field before the calorimeter, EM and non-compensating hadronic showers
with splitting, greedy energy-ordered clustering, noise clusters, the upstream truth assignment
(``ytarget``) and a rule-based PF baseline (``ycand``).

Units: energies and momenta in GeV, lengths in mm, field in T, time in ns.

Deviations from the text of mlpf.md, chosen for speed (>= 2,000 events per CPU-second):
- clustering: a deposit joins the cluster of the most energetic deposit within its radius
  (pointer jumping over the energy-sorted Delta R matrix), which equals greedy clustering except
  for rare chains;
- truth: a particle without a track competes only for its *best* cluster (the one holding its
  main deposit); if a more energetic particle owns that cluster it is merged into it;
- fake tracks: Poisson(rate x charged particles in the tracker acceptance); cluster hit counts
  carry Gaussian (not Poisson) noise of width sqrt(mean).
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
    defaults = GeneratorConfig()
    checked = {}
    for key, value in overrides.items():
        ref = getattr(defaults, key)
        try:
            if isinstance(ref, tuple):
                if not isinstance(value, (list, tuple)) or len(value) != len(ref) and key not in (
                        "jet_multiplicities", "jet_probabilities", "species_shares", "charged_hadron_shares"):
                    raise ValueError
                value = tuple(type(r)(v) for r, v in zip(list(ref) * len(value), value))
            elif isinstance(ref, bool) or isinstance(ref, str):
                if not isinstance(value, type(ref)):
                    raise ValueError
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError
            else:
                value = type(ref)(value)
        except (TypeError, ValueError):
            raise HpoqError(f"generator: parameter {key} must be like {ref!r}, got {value!r}") from None
        checked[key] = value
    values = dict(PRESETS[preset])
    values.update(checked)
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


def _dphi2(a, b):
    """Squared azimuthal distance of angles in [-pi, pi] (cheaper than wrapping with %)."""
    d = np.abs(a - b)
    d = np.minimum(d, 2 * np.pi - d)
    return d * d


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

def _segments(counts: np.ndarray) -> np.ndarray:
    """Segment id per row for segments of the given lengths."""
    return np.repeat(np.arange(counts.size), counts)


def _local_index(ev: np.ndarray, n_events: int) -> np.ndarray:
    """Position of each row inside its segment (``ev`` sorted ascending)."""
    counts = np.bincount(ev, minlength=n_events)
    return np.arange(ev.size) - np.repeat(np.cumsum(counts) - counts, counts)


def _padded(ev: np.ndarray, n_events: int, values: np.ndarray, fill: float):
    """Scatter rows (grouped by ``ev``, ascending) into a padded [n_events, max_count] array."""
    pos = _local_index(ev, n_events)
    width = int(pos.max()) + 1 if pos.size else 1
    out = np.full((n_events, width), fill, dtype=np.result_type(values, np.float64))
    out[ev, pos] = values
    return out, pos


def _draw_generator_level(cfg: GeneratorConfig, rng: np.random.Generator) -> dict:
    """Per-event random numbers of the generator level (the only per-event Python work)."""
    n_jets = int(rng.choice(cfg.jet_multiplicities, p=cfg.jet_probabilities))
    jet_u = rng.random((n_jets, 3))
    e_jets = rng.dirichlet([cfg.jet_dirichlet_alpha] * n_jets) * cfg.sqrt_s * (
        cfg.jet_energy_scale[0] + (cfg.jet_energy_scale[1] - cfg.jet_energy_scale[0]) * jet_u[0, 2])
    lam = np.maximum(cfg.mult_base + cfg.mult_slope * np.log(np.maximum(e_jets / 5.0, 1e-3)), 0.5)
    mult = np.maximum(1, rng.poisson(lam))
    nf = int(mult.sum())
    d = {"jet_u": jet_u, "e_jets": e_jets, "mult": mult, "g": rng.gamma(cfg.fraction_dirichlet_alpha, size=nf),
         "uf": rng.random((nf, 5)), "zf": rng.standard_normal(nf), "lep": rng.random(7)}
    n_pu = int(rng.poisson(cfg.pu_mean)) if cfg.pu_mean > 0 else 0
    d["pu_u"] = rng.random((n_pu, 4))
    d["pu_pt"] = rng.exponential(cfg.pu_mean_pt, n_pu) + 0.05
    return d


def _build_particles(cfg: GeneratorConfig, draws: list[dict]) -> dict:
    """Generator-level particles of a block of events, rows grouped by event (vectorised)."""
    E = len(draws)
    n_jets = np.array([d["jet_u"].shape[0] for d in draws])
    jet_u = np.concatenate([d["jet_u"] for d in draws])
    e_jets = np.concatenate([d["e_jets"] for d in draws])
    mult = np.concatenate([d["mult"] for d in draws])
    jet_ev = _segments(n_jets)
    jet_cos = (2 * jet_u[:, 0] - 1) * cfg.max_abs_cos_theta
    jet_phi = (2 * jet_u[:, 1] - 1) * np.pi
    jet_of = _segments(mult)
    g = np.concatenate([d["g"] for d in draws]) + 1e-12
    starts = np.concatenate([[0], np.cumsum(mult)[:-1]])
    e = e_jets[jet_of] * g / np.add.reduceat(g, starts)[jet_of]
    u = np.concatenate([d["uf"] for d in draws])
    z = np.concatenate([d["zf"] for d in draws])
    keep = e >= cfg.min_particle_energy
    e, jet_of, u, z = e[keep], jet_of[keep], u[keep], z[keep]
    n = e.size
    shares = np.asarray(cfg.species_shares, float)
    species = np.searchsorted(np.cumsum(shares / shares.sum()), u[:, 0], side="right").clip(0, 4)
    angle = np.abs(z) * cfg.frag_angle_scale * (30.0 / e) ** cfg.frag_angle_power
    dirs = _rotate(_unit(jet_cos, jet_phi)[jet_of], np.minimum(angle, np.pi / 2), 2 * np.pi * u[:, 1])
    ch_cum = np.cumsum(cfg.charged_hadron_shares) / sum(cfg.charged_hadron_shares)
    charged_mass = np.array([M_PI, M_K, M_P])[np.searchsorted(ch_cum, u[:, 2], side="right").clip(0, 2)]
    mass = np.choose(species, [charged_mass, np.full(n, M_PI0), np.full(n, M_K0L), np.full(n, M_E), np.full(n, M_MU)])
    pdg = np.array([211, 111, 130, 11, 13])[species]
    charge = np.where((species == 0) | (species >= 3), np.where(u[:, 3] < 0.5, -1, 1), 0)
    ev = jet_ev[jet_of]
    groups = []  # (ev, e, dirs, mass, pdg, charge, jet, ispu) per group; stable-sorted by event below
    is_pi0 = species == 1
    keep_idx = np.flatnonzero(~is_pi0)
    groups.append((ev[keep_idx], e[keep_idx], dirs[keep_idx], mass[keep_idx], pdg[keep_idx], charge[keep_idx],
                   jet_of[keep_idx], np.zeros(keep_idx.size, np.int64)))
    if is_pi0.any():
        # pi0 -> gamma gamma: share z, opening angle m / (E sqrt(z (1 - z))) (= 2m/E at z = 1/2)
        share = 0.05 + 0.9 * u[is_pi0, 4]
        e_pi0 = np.maximum(e[is_pi0], 2 * M_PI0)
        opening = np.minimum(M_PI0 / (e_pi0 * np.sqrt(share * (1 - share))), 1.0)
        azim = 2 * np.pi * u[is_pi0, 3]
        k = int(is_pi0.sum())
        for dir_, en in ((_rotate(dirs[is_pi0], opening * (1 - share), azim), e_pi0 * share),
                         (_rotate(dirs[is_pi0], opening * share, azim + np.pi), e_pi0 * (1 - share))):
            groups.append((ev[is_pi0], en, dir_, np.zeros(k), np.full(k, 22), np.zeros(k, np.int64), jet_of[is_pi0],
                           np.zeros(k, np.int64)))
    # isolated lepton + neutrino (genMET)
    lep = np.stack([d["lep"] for d in draws])
    has_lep = lep[:, 0] < cfg.lepton_probability
    if has_lep.any():
        L = lep[has_lep]
        lo, hi = cfg.lepton_energy
        is_mu = L[:, 1] < 0.5
        nl = L.shape[0]
        lev = np.flatnonzero(has_lep)
        for cos_col, phi_col, e_col, pdg_l, m_l, q_l in (
                (2, 3, 6, np.where(is_mu, 13, 11), np.where(is_mu, M_MU, M_E), np.where(L[:, 6] < 0.5, 1, -1)),
                (4, 5, 5, np.full(nl, 12), np.zeros(nl), np.zeros(nl, np.int64))):
            d_l = _unit((2 * L[:, cos_col] - 1) * cfg.max_abs_cos_theta, (2 * L[:, phi_col] - 1) * np.pi)
            groups.append((lev, lo + (hi - lo) * L[:, e_col], d_l, m_l, pdg_l, q_l, np.full(nl, -1),
                           np.zeros(nl, np.int64)))
    n_pu = np.array([d["pu_pt"].size for d in draws])
    if n_pu.sum():
        pu_u = np.concatenate([d["pu_u"] for d in draws])
        pt_pu = np.concatenate([d["pu_pt"] for d in draws])
        eta_pu = (2 * pu_u[:, 0] - 1) * cfg.pu_max_abs_eta
        sp = np.searchsorted([0.65, 0.9], pu_u[:, 2], side="right")  # charged / photon / neutral hadron
        m_pu = np.array([M_PI, 0.0, M_K0L])[sp]
        npu = pt_pu.size
        groups.append((_segments(n_pu), np.sqrt((pt_pu * np.cosh(eta_pu)) ** 2 + m_pu ** 2),
                       _unit(np.tanh(eta_pu), (2 * pu_u[:, 1] - 1) * np.pi), m_pu, np.array([211, 22, 130])[sp],
                       np.where(sp == 0, np.where(pu_u[:, 3] < 0.5, -1, 1), 0), np.full(npu, -1), np.ones(npu, np.int64)))
    cols = [np.concatenate([grp[i] for grp in groups]) for i in range(8)]
    order = np.argsort(cols[0], kind="stable")
    ev, e, dirs, mass, pdg, charge, jet, ispu = (c[order] for c in cols)
    e = np.maximum(e, mass + 1e-3)
    p = np.sqrt(e ** 2 - mass ** 2)
    mom = dirs * p[:, None]
    jet_local = np.where(jet >= 0, jet - np.concatenate([[0], np.cumsum(n_jets)[:-1]])[ev], -1)
    return dict(ev=ev, e=e, px=mom[:, 0], py=mom[:, 1], pz=mom[:, 2], mass=mass, pdg=pdg, charge=charge.astype(np.int64),
                ispu=ispu.astype(np.int64), jet=jet_local.astype(np.int64), jet_ev=jet_ev,
                jet_eta=np.arctanh(jet_cos), jet_phi=jet_phi, n_events=E)


def _draw_detector(cfg: GeneratorConfig, rng: np.random.Generator, n: int, n_charged_acc: int) -> dict:
    """Per-event random numbers of the detector level (sizes known from the particle list)."""
    d = {"z": rng.standard_normal((n, 10)), "u": rng.random((n, 8)), "beta": rng.beta(*cfg.had_ecal_beta, size=n)}
    n_fake = int(rng.poisson(cfg.fake_track_rate * n_charged_acc)) if cfg.fake_track_rate > 0 and n_charged_acc else 0
    d["fake_u"] = rng.random((n_fake, 6))
    d["fake_pt"] = 0.2 + rng.exponential(0.5, n_fake)
    n_noise = int(rng.poisson(cfg.noise_clusters_mean)) if cfg.noise_clusters_mean > 0 else 0
    d["noise_u"] = rng.random((n_noise, 3))
    d["noise_e"] = cfg.noise_min_energy + rng.exponential(cfg.noise_mean_energy, n_noise)
    # enough normals for every possible cluster (<= deposits <= 2 n + noise): widths and hit counts
    d["cluster_z"] = rng.standard_normal((2 * n + n_noise + 1, 4))
    return d


def generate_events(cfg: GeneratorConfig, seed: int, indices) -> list[Event]:
    """Events ``indices`` of ``seed``; each is the same whatever block it is generated in.

    Event ``j`` draws only from ``SeedSequence([seed, j])`` (two spawned streams: generator level,
    detector level); everything else is element-wise or per-event segmented numpy.
    """
    indices = [int(j) for j in indices]
    if not indices:
        return []
    streams = [[np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), j]).spawn(2)] for j in indices]
    part = _build_particles(cfg, [_draw_generator_level(cfg, s[0]) for s in streams])
    E = len(indices)
    pev = part["ev"]
    e, pdg, q, mass = part["e"], part["pdg"], part["charge"], part["mass"]
    px, py, pz = part["px"], part["py"], part["pz"]
    pt, eta, phi, p = _kinematics(e, px, py, pz)
    n_per = np.bincount(pev, minlength=E)
    charged_acc = np.bincount(pev, weights=((q != 0) & (np.abs(eta) < cfg.tracker_max_abs_eta)).astype(float), minlength=E)
    det = [_draw_detector(cfg, s[1], int(n_per[i]), int(charged_acc[i])) for i, s in enumerate(streams)]
    z = np.concatenate([d["z"] for d in det])
    u = np.concatenate([d["u"] for d in det])
    beta_draw = np.concatenate([d["beta"] for d in det])
    n = e.size
    is_nu = pdg == 12
    visible = ~is_nu
    abs_eta = np.abs(eta)
    pidx = np.arange(n)
    p_first = np.concatenate([[0], np.cumsum(n_per)[:-1]])

    # ---- tracker (real tracks sorted by descending energy within each event, then fakes)
    lo, hi = cfg.track_eff_turn_on
    eff = np.clip((pt - lo) / (hi - lo), 0.0, 1.0) * cfg.track_eff_plateau * (1.0 - cfg.track_extra_loss)
    has_track = (q != 0) & (abs_eta < cfg.tracker_max_abs_eta) & (u[:, 0] < eff)
    ti = np.flatnonzero(has_track)
    ti = ti[np.lexsort((-e[ti], pev[ti]))]
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
    t_ev = pev[ti]
    t_owner = ti
    n_fake = np.array([d["fake_pt"].size for d in det])
    if n_fake.sum():
        fu = np.concatenate([d["fake_u"] for d in det])
        f_pt = np.concatenate([d["fake_pt"] for d in det])
        nfk = f_pt.size
        f_eta = (2 * fu[:, 0] - 1) * cfg.tracker_max_abs_eta
        f_phi = (2 * fu[:, 1] - 1) * np.pi
        f_q = np.where(fu[:, 2] < 0.5, -1, 1)
        fake = np.zeros((nfk, N_X))
        f_ndf = np.round(5 + 10 * fu[:, 3])
        fake[:, 0], fake[:, 1], fake[:, 2] = 1, f_pt, f_eta
        fake[:, 3], fake[:, 4], fake[:, 5] = np.sin(f_phi), np.cos(f_phi), f_pt * np.cosh(f_eta)
        fake[:, 6], fake[:, 7], fake[:, 8], fake[:, 9] = f_ndf * (3 + 5 * fu[:, 4]), f_ndf, 1.5, 0.1
        fake[:, 10] = 100 + 200 * fu[:, 5]
        fake[:, 11], fake[:, 13] = np.sinh(f_eta), f_q * 3e-4 * cfg.field_t / f_pt
        order = np.argsort(np.concatenate([t_ev, _segments(n_fake)]), kind="stable")
        tracks = np.concatenate([tracks, fake])[order]
        t_pt, t_eta, t_phi, t_q, t_p = (np.concatenate([a, b])[order] for a, b in (
            (t_pt, f_pt), (t_eta, f_eta), (t_phi, f_phi), (t_q, f_q), (t_p, f_pt * np.cosh(f_eta))))
        t_ev = np.concatenate([t_ev, _segments(n_fake)])[order]
        t_owner = np.concatenate([t_owner, np.full(nfk, -1)])[order]
    n_tracks_total = t_ev.size

    # ---- calorimeter deposits
    r_m = cfg.ecal_radius_mm / 1000.0
    bend_pt = 0.3 * cfg.field_t * r_m / 2.0
    reach = visible & (abs_eta < cfg.calo_max_abs_eta) & ((q == 0) | (pt > bend_pt))
    phi_calo = _wrap(phi - q * np.arcsin(np.minimum(1.0, bend_pt / np.maximum(pt, 1e-6))))
    is_em = (pdg == 22) | (pdg == 11)
    is_mu = pdg == 13
    is_had = ~is_em & ~is_mu & visible
    em_vis = e * (1 + np.hypot(cfg.em_stochastic / np.sqrt(e), cfg.em_constant) * z[:, 9])
    leak = np.where(e > cfg.em_leak_threshold, cfg.em_leak_fraction, 0.0)
    response = cfg.had_response_base + cfg.had_response_amp * (1 - np.exp(-e / cfg.had_response_scale))
    had_vis = np.maximum(0.0, e * response * (1 + np.hypot(cfg.had_stochastic / np.sqrt(e), cfg.had_constant) * z[:, 9]))
    mip = u[:, 1] < cfg.had_mip_probability
    had_ecal = np.where(mip, np.minimum(cfg.had_mip_energy, had_vis), beta_draw * had_vis)
    ecal = np.where(is_em, em_vis * (1 - leak), np.where(is_had, had_ecal, np.where(is_mu, cfg.mu_ecal, 0.0)))
    hcal = np.where(is_em, em_vis * leak, np.where(is_had, had_vis - had_ecal, np.where(
        is_mu, cfg.mu_hcal * (1 + cfg.mu_hcal_spread * z[:, 9]).clip(0.2), 0.0)))
    ecal, hcal = ecal * reach, hcal * reach
    p_split = np.minimum(cfg.split_probability_max, cfg.split_probability_scale * np.sqrt(e / 20.0))
    split = is_had & reach & (u[:, 2] < p_split)
    s_share = cfg.split_share[0] + (cfg.split_share[1] - cfg.split_share[0]) * u[:, 3]
    s_dist = cfg.split_distance[0] + (cfg.split_distance[1] - cfg.split_distance[0]) * u[:, 4]
    s_dir = 2 * np.pi * u[:, 5]
    main_share = np.where(split, 1 - s_share, 1.0)
    di = np.flatnonzero(reach & (ecal + hcal > 0))
    si = np.flatnonzero(split & (ecal + hcal > 0))
    n_noise = np.array([d["noise_e"].size for d in det])
    nz_u = np.concatenate([d["noise_u"] for d in det])
    noise_e = np.concatenate([d["noise_e"] for d in det])
    noise_em = nz_u[:, 2] < 0.5
    dep_ev = np.concatenate([pev[di], pev[si], _segments(n_noise)])
    dep_owner = np.concatenate([di, si, np.full(noise_e.size, -1)])
    dep_eta = np.concatenate([eta[di], eta[si] + s_dist[si] * np.cos(s_dir[si]), (2 * nz_u[:, 0] - 1) * cfg.calo_max_abs_eta])
    dep_phi = _wrap(np.concatenate([phi_calo[di], phi_calo[si] + s_dist[si] * np.sin(s_dir[si]), (2 * nz_u[:, 1] - 1) * np.pi]))
    dep_ecal = np.concatenate([ecal[di] * main_share[di], ecal[si] * s_share[si], noise_e * noise_em])
    dep_hcal = np.concatenate([hcal[di] * main_share[di], hcal[si] * s_share[si], noise_e * ~noise_em])
    dep_em = np.concatenate([is_em[di], np.zeros(si.size, bool), noise_em])
    dep_main = np.concatenate([np.ones(di.size, bool), np.zeros(si.size + noise_e.size, bool)])
    dep_e = dep_ecal + dep_hcal
    order = np.lexsort((-dep_e, dep_ev))   # by event, then descending energy (stable)
    dep_ev, dep_owner, dep_eta, dep_phi, dep_ecal, dep_hcal, dep_em, dep_main, dep_e = (
        a[order] for a in (dep_ev, dep_owner, dep_eta, dep_phi, dep_ecal, dep_hcal, dep_em, dep_main, dep_e))
    nd = dep_e.size

    # ---- clustering per event: join the most energetic deposit within the joining deposit's radius
    radius = np.where(dep_em, cfg.merge_radius_em, cfg.merge_radius_had)
    parent = np.arange(nd)
    if nd > 1 and radius.max() > 0:
        P_eta, pos = _padded(dep_ev, E, dep_eta, 1e3)
        P_phi, _ = _padded(dep_ev, E, dep_phi, 0.0)
        P_eta, P_phi = P_eta.astype(np.float32), P_phi.astype(np.float32)
        # [nd, width]: squared distances of each deposit to the deposits of its own event (float32, in place)
        dr2 = P_eta[dep_ev]
        np.subtract(dr2, dep_eta.astype(np.float32)[:, None], out=dr2)
        np.multiply(dr2, dr2, out=dr2)
        dphi = P_phi[dep_ev]
        np.subtract(dphi, dep_phi.astype(np.float32)[:, None], out=dphi)
        np.abs(dphi, out=dphi)
        np.minimum(dphi, np.float32(2 * np.pi) - dphi, out=dphi)
        np.multiply(dphi, dphi, out=dphi)
        np.add(dr2, dphi, out=dr2)
        width = dr2.shape[1]
        cand = dr2 < (radius ** 2).astype(np.float32)[:, None]
        cand &= np.arange(width)[None, :] < pos[:, None]
        first = np.concatenate([[0], np.cumsum(np.bincount(dep_ev, minlength=E))[:-1]])
        parent = np.where(cand.any(axis=1), first[dep_ev] + cand.argmax(axis=1), parent)
        for _ in range(int(math.log2(max(2, width))) + 2):
            parent = parent[parent]
    roots, dep_cluster = np.unique(parent, return_inverse=True)
    nc = roots.size
    c_ev = dep_ev[roots]
    c_e = np.bincount(dep_cluster, dep_e, nc)
    w = np.maximum(dep_e, 1e-9)
    c_w = np.bincount(dep_cluster, w, nc)
    c_eta = np.bincount(dep_cluster, w * dep_eta, nc) / c_w
    c_phi = np.arctan2(np.bincount(dep_cluster, w * np.sin(dep_phi), nc), np.bincount(dep_cluster, w * np.cos(dep_phi), nc))
    c_ecal = np.bincount(dep_cluster, dep_ecal, nc)
    c_hcal = np.bincount(dep_cluster, dep_hcal, nc)
    R = cfg.ecal_radius_mm
    dxyz = (R * np.cos(dep_phi), R * np.sin(dep_phi), R * np.sinh(dep_eta))
    cxyz = [np.bincount(dep_cluster, w * a, nc) / c_w for a in dxyz]
    var = [np.bincount(dep_cluster, w * (a - ca[dep_cluster]) ** 2, nc) / c_w for a, ca in zip(dxyz, cxyz)]
    c_emlike = c_ecal > 0.8 * np.maximum(c_e, 1e-9)
    c_local = _local_index(c_ev, E)
    cz_ = np.concatenate([d["cluster_z"] for d in det])[np.repeat(
        np.concatenate([[0], np.cumsum([d["cluster_z"].shape[0] for d in det])[:-1]]), np.bincount(c_ev, minlength=E)) + c_local]
    base_w = np.where(c_emlike, cfg.em_width_mm, cfg.had_width_mm)
    hits_mean = np.where(c_emlike, cfg.hits_per_gev_em * np.maximum(c_e, 0) ** 0.8, cfg.hits_per_gev_had * np.maximum(c_e, 0) ** 0.7)
    hits = np.maximum(0, np.round(hits_mean + np.sqrt(hits_mean) * cz_[:, 3])) + 1   # Poisson noise, normal approximation
    keep_c = c_e >= cfg.min_cluster_energy
    new_id = np.cumsum(keep_c) - 1
    kc = np.flatnonzero(keep_c)
    ce, ceta, cphi = c_e[kc], c_eta[kc], c_phi[kc]
    clusters = np.zeros((kc.size, N_X))
    clusters[:, 0] = 2
    clusters[:, 1], clusters[:, 2], clusters[:, 3], clusters[:, 4], clusters[:, 5] = (
        ce / np.cosh(ceta), ceta, np.sin(cphi), np.cos(cphi), ce)
    clusters[:, 6], clusters[:, 7], clusters[:, 8] = R * np.cos(cphi), R * np.sin(cphi), R * np.sinh(ceta)
    clusters[:, 9] = 2 * np.arctan(np.exp(-ceta))
    clusters[:, 10], clusters[:, 11], clusters[:, 12] = c_ecal[kc], c_hcal[kc], 0.0
    clusters[:, 13] = hits[kc]
    for k in range(3):
        clusters[:, 14 + k] = np.sqrt((base_w[kc] * (1 + 0.1 * cz_[kc, k])) ** 2 + var[k][kc])
    k_ev = c_ev[kc]
    n_clusters_total = kc.size
    dep_cl = np.where(keep_c[dep_cluster], new_id[dep_cluster], -1)

    # ---- element rows: per event tracks, then clusters
    elem_ev = np.concatenate([t_ev, k_ev])
    elem_order = np.argsort(elem_ev, kind="stable")
    elem_row = np.empty_like(elem_order)
    elem_row[elem_order] = np.arange(elem_order.size)
    track_row, cluster_row = elem_row[:n_tracks_total], elem_row[n_tracks_total:]
    n_el = np.bincount(elem_ev, minlength=E)
    el_first = np.concatenate([[0], np.cumsum(n_el)[:-1]])
    X = np.concatenate([tracks, clusters])[elem_order]

    # ---- truth (ytarget): tracked particles own their track; others compete for their best cluster
    ytarget = np.zeros((X.shape[0], N_Y))
    best_cluster = np.full(n, -1)
    main_mask = dep_main & (dep_owner >= 0)
    best_cluster[dep_owner[main_mask]] = dep_cl[main_mask]
    dep_in_best = np.zeros(n)
    dep_in_best[dep_owner[main_mask]] = dep_e[main_mask]
    untracked = visible & ~has_track
    cand = np.flatnonzero(untracked & (best_cluster >= 0))
    cand = cand[np.lexsort((-e[cand], best_cluster[cand]))]
    bc = best_cluster[cand]
    is_first = np.concatenate([[True], bc[1:] != bc[:-1]]) if bc.size else np.zeros(0, bool)
    owners, merged = cand[is_first], cand[~is_first]
    dropped = np.flatnonzero(untracked & (best_cluster < 0))
    owner_of_cluster = np.full(max(n_clusters_total, 1), -1)
    owner_of_cluster[best_cluster[owners]] = owners
    sum4 = np.stack([e, px, py, pz], axis=1)
    acc = np.zeros((n, 4))
    acc[owners] = sum4[owners]
    if merged.size:
        np.add.at(acc, owner_of_cluster[best_cluster[merged]], sum4[merged])
    e_visible = np.bincount(pev, e * visible, E)
    kept_mask = np.zeros(n, bool)
    kept_mask[ti] = True
    kept_mask[owners] = True
    e_kept = np.bincount(pev, e * kept_mask, E)
    e_merged = np.bincount(pev[merged], e[merged], E)
    e_dropped = np.bincount(pev[dropped], e[dropped], E)
    if np.any(np.abs(e_kept + e_merged + e_dropped - e_visible) > 1e-9 * np.maximum(1.0, e_visible)):
        raise AssertionError("generator: energy accounting broken")
    cls = _CLS_OF_PDG[pdg]
    local_pnum = pidx - p_first[pev]
    if ti.size:
        tr = track_row[np.flatnonzero(t_owner >= 0)]
        own = t_owner[t_owner >= 0]
        ytarget[tr, 0] = np.where((cls[own] == CLS_ELE) | (cls[own] == CLS_MU), cls[own], CLS_CH)
        ytarget[tr, 1], ytarget[tr, 2], ytarget[tr, 3] = q[own], pt[own], eta[own]
        ytarget[tr, 4], ytarget[tr, 5], ytarget[tr, 6] = np.sin(phi[own]), np.cos(phi[own]), e[own]
        ytarget[tr, 7], ytarget[tr, 8], ytarget[tr, 9] = part["ispu"][own], 1, 1
        ytarget[tr, 10] = 1.0
        ytarget[tr, 11] = dep_in_best[own] / e[own]
        ytarget[tr, 12], ytarget[tr, 13] = part["jet"][own], local_pnum[own]
    if owners.size:
        rows = cluster_row[best_cluster[owners]]
        a = acc[owners]
        o_pt, o_eta, o_phi, _ = _kinematics(a[:, 0], a[:, 1], a[:, 2], a[:, 3])
        ytarget[rows, 0] = np.where((cls[owners] == CLS_GAMMA) | (cls[owners] == CLS_ELE), CLS_GAMMA, CLS_NH)
        ytarget[rows, 2], ytarget[rows, 3], ytarget[rows, 4], ytarget[rows, 5] = o_pt, o_eta, np.sin(o_phi), np.cos(o_phi)
        ytarget[rows, 6], ytarget[rows, 7], ytarget[rows, 8], ytarget[rows, 9] = a[:, 0], part["ispu"][owners], 1, 1
        ytarget[rows, 11] = dep_in_best[owners] / np.maximum(ce[best_cluster[owners]], 1e-9)
        ytarget[rows, 12], ytarget[rows, 13] = part["jet"][owners], local_pnum[owners]

    # ---- rule-based PF baseline (ycand): tracks link to the nearest cluster at the calorimeter
    ycand = np.zeros_like(ytarget)
    link = np.full(n_tracks_total, -1)
    if n_tracks_total and n_clusters_total:
        t_phi_calo = _wrap(t_phi - t_q * np.arcsin(np.minimum(1.0, bend_pt / np.maximum(t_pt, 1e-6))))
        C_eta, c_pos = _padded(k_ev, E, ceta, 1e6)
        C_phi, _ = _padded(k_ev, E, cphi, 0.0)
        d2 = (t_eta[:, None] - C_eta[t_ev]) ** 2 + _dphi2(t_phi_calo[:, None], C_phi[t_ev])
        nearest = d2.argmin(axis=1)
        ok = (t_pt > bend_pt) & (d2[np.arange(n_tracks_total), nearest] < cfg.pf_link_radius ** 2)
        c_first = np.concatenate([[0], np.cumsum(np.bincount(k_ev, minlength=E))[:-1]])
        link = np.where(ok, c_first[t_ev] + nearest, -1)
    linked = link >= 0
    lc = np.maximum(link, 0)
    l_ecal = np.where(linked, clusters[lc, 10] if n_clusters_total else 0.0, 0.0)
    l_hcal = np.where(linked, clusters[lc, 11] if n_clusters_total else 0.0, 0.0)
    eop = l_ecal / np.maximum(t_p, 1e-6)
    electron = linked & (eop >= cfg.pf_electron_eop[0]) & (eop <= cfg.pf_electron_eop[1]) & (l_hcal < 0.1 * np.maximum(l_ecal, 1e-9))
    muon = linked & ~electron & (l_ecal < 0.5) & (l_hcal < 3.0) & (t_p > 3.0)
    t_mass = np.where(electron, M_E, np.where(muon, M_MU, M_PI))
    tr = track_row
    ycand[tr, 0] = np.where(electron, CLS_ELE, np.where(muon, CLS_MU, CLS_CH))
    ycand[tr, 1], ycand[tr, 2], ycand[tr, 3] = t_q, t_pt, t_eta
    ycand[tr, 4], ycand[tr, 5], ycand[tr, 6] = np.sin(t_phi), np.cos(t_phi), np.sqrt(t_p ** 2 + t_mass ** 2)
    ycand[tr, 8], ycand[tr, 9], ycand[tr, 10] = 1, 1, 1
    if n_clusters_total:
        remainder = ce - np.bincount(link[linked], t_p[linked], n_clusters_total)
        neutral = remainder > cfg.pf_neutral_threshold
        crow = cluster_row[neutral]
        r_e = remainder[neutral]
        ycand[crow, 0] = np.where(clusters[neutral, 10] > 0.5 * ce[neutral], CLS_GAMMA, CLS_NH)
        ycand[crow, 2], ycand[crow, 3] = r_e / np.cosh(ceta[neutral]), ceta[neutral]
        ycand[crow, 4], ycand[crow, 5], ycand[crow, 6] = np.sin(cphi[neutral]), np.cos(cphi[neutral]), r_e
        ycand[crow, 8], ycand[crow, 9], ycand[crow, 11] = 1, 1, 1

    # ---- jets around the generated axes (DeltaR < jet_radius), MET from neutrinos
    gen_sel = visible & (part["ispu"] == 0)
    genjets = _cone_jets(E, pev[gen_sel], sum4[gen_sel], eta[gen_sel], phi[gen_sel], part, cfg.jet_radius)
    X_ev = _segments(n_el)
    tsel = (ytarget[:, 0] > 0) & (ytarget[:, 7] == 0)
    t4 = _four_vectors(ytarget[tsel])
    targetjets = _cone_jets(E, X_ev[tsel], t4, ytarget[tsel, 3], np.arctan2(ytarget[tsel, 4], ytarget[tsel, 5]), part,
                            cfg.jet_radius)
    genmet = np.hypot(np.bincount(pev[is_nu], px[is_nu], E), np.bincount(pev[is_nu], py[is_nu], E))
    X32, yt32, yc32 = X.astype(np.float32), ytarget.astype(np.float32), ycand.astype(np.float32)
    out = []
    for i in range(E):
        a, b = el_first[i], el_first[i] + n_el[i]
        out.append(Event(X=X32[a:b], ytarget=yt32[a:b], ycand=yc32[a:b], genmet=float(genmet[i]),
                         genjets=genjets[i], targetjets=targetjets[i],
                         accounting=dict(visible=float(e_visible[i]), kept=float(e_kept[i]), merged=float(e_merged[i]),
                                         dropped=float(e_dropped[i]), n_merged=int((pev[merged] == i).sum()),
                                         n_dropped=int((pev[dropped] == i).sum()))))
    return out


def generate_event(cfg: GeneratorConfig, seed: int, index: int) -> Event:
    """Event ``index`` of ``seed`` (deterministic: its own ``SeedSequence([seed, index])``)."""
    return generate_events(cfg, seed, [index])[0]


def _four_vectors(y: np.ndarray) -> np.ndarray:
    pt, eta = y[:, 2].astype(float), y[:, 3].astype(float)
    phi = np.arctan2(y[:, 4], y[:, 5])
    return np.stack([y[:, 6], pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)


def _cone_jets(n_events, ev, p4, eta, phi, part, radius) -> list[np.ndarray]:
    """Per event: (pT, eta, phi, E) per jet axis of the particles within ``radius`` of their nearest axis."""
    jet_ev = part["jet_ev"]
    n_jets = np.bincount(jet_ev, minlength=n_events)
    A_eta, _ = _padded(jet_ev, n_events, part["jet_eta"], 1e6)
    A_phi, _ = _padded(jet_ev, n_events, part["jet_phi"], 0.0)
    d2 = (eta[:, None] - A_eta[ev]) ** 2 + _dphi2(phi[:, None], A_phi[ev])
    nearest = d2.argmin(axis=1) if ev.size else np.zeros(0, np.int64)
    inside = d2[np.arange(nearest.size), nearest] < radius ** 2 if ev.size else np.zeros(0, bool)
    j_first = np.concatenate([[0], np.cumsum(n_jets)[:-1]])
    gj = j_first[ev[inside]] + nearest[inside]
    nj = jet_ev.size
    s = np.stack([np.bincount(gj, p4[inside, k], nj) for k in range(4)], axis=1)
    used = np.bincount(gj, minlength=nj) > 0
    pt, jeta, jphi, _ = _kinematics(s[:, 0], s[:, 1], s[:, 2], s[:, 3])
    jets = np.stack([pt, jeta, jphi, s[:, 0]], axis=1).astype(np.float32)
    return [jets[j_first[i]:j_first[i] + n_jets[i]][used[j_first[i]:j_first[i] + n_jets[i]]] for i in range(n_events)]
