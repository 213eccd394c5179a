"""Tracker: efficiency, momentum and angle resolution, track-quality features and fake tracks.

Units: GeV, mm, T, ns. A charged particle inside ``tracker_max_abs_eta`` gets a track with
probability ``clip((pT - lo) / (hi - lo), 0, 1) * plateau * (1 - extra_loss)``; its pT is smeared by
``hypot(a pT, b) (1 + |eta| / 3)`` (relative). Fake tracks: Poisson(rate x charged particles in the
acceptance) per event. Track feature columns follow ``hpoq.mlpf.schema.X_FEATURES`` (type 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.mlpf.generator.common import N_X, segments, wrap


@dataclass
class Geometry:
    """Solenoid field (T) and the calorimeter's inner radius (mm), shared by several stages."""

    field_t: float = 4.0
    ecal_radius_mm: float = 1500.0

    @property
    def bend_pt(self) -> float:
        """pT (GeV) below which a charged particle curls up before the calorimeter: 0.3 B R / 2."""
        return 0.3 * self.field_t * (self.ecal_radius_mm / 1000.0) / 2.0


@dataclass
class TrackerSettings:
    """Tracker acceptance, efficiency, resolutions (relative / mm / ns) and fake rate."""

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


@dataclass
class Tracks:
    """Tracks of a block of events, grouped by event: real tracks by descending energy, then fakes."""

    X: np.ndarray  # float64 [nt, 17] element features
    ev: np.ndarray  # event of each track
    owner: np.ndarray  # particle row of each track, -1 for a fake
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    q: np.ndarray
    p: np.ndarray
    has_track: np.ndarray  # bool per particle
    real: np.ndarray  # particle rows with a track, in the order of the real tracks


def _features(s: TrackerSettings, g: Geometry, pt, eta, phi, q, p, p_true, eta_true, mass, z, u) -> np.ndarray:
    """Track rows [nt, N_X]: kinematics, fit quality, dE/dx, inner radius, impact parameters, time."""
    ip_sig = np.hypot(s.impact_res_a_mm, s.impact_res_b_mm / np.maximum(p_true, 1e-3))
    nhits = np.maximum(3, np.round(s.track_hits_central - s.track_hits_eta_slope * np.abs(eta_true) + u[:, 1] * 2))
    ndf = 2 * nhits - 5
    chi2 = np.maximum(0.1, ndf + np.sqrt(2 * ndf) * z[:, 3])
    bg = p_true / np.maximum(mass, 1e-6)
    beta2 = bg**2 / (1 + bg**2)
    dedx = (1.0 / beta2) * (1.0 + 0.1 * np.log1p(bg**2)) * (1 + s.dedx_noise * z[:, 4])
    tracks = np.zeros((pt.size, N_X))
    tracks[:, 0] = 1
    tracks[:, 1], tracks[:, 2], tracks[:, 3], tracks[:, 4], tracks[:, 5] = pt, eta, np.sin(phi), np.cos(phi), p
    tracks[:, 6], tracks[:, 7], tracks[:, 8], tracks[:, 9] = chi2, ndf, dedx, s.dedx_noise * np.abs(dedx)
    tracks[:, 10] = s.track_inner_radius_mm + np.abs(0.5 * z[:, 5])
    tracks[:, 11] = np.sinh(eta)
    tracks[:, 12] = ip_sig * z[:, 6]
    tracks[:, 13] = q * 3e-4 * g.field_t / pt
    tracks[:, 14] = ip_sig * z[:, 7]
    tracks[:, 15] = s.time_res_ns * z[:, 8]
    return tracks


def _fakes(s: TrackerSettings, g: Geometry, det: list[dict]):
    """Fake-track rows and their (pT, eta, phi, q, p), or None when the block has none."""
    n_fake = np.array([d["fake_pt"].size for d in det])
    if not n_fake.sum():
        return None
    fu = np.concatenate([d["fake_u"] for d in det])
    f_pt = np.concatenate([d["fake_pt"] for d in det])
    f_eta = (2 * fu[:, 0] - 1) * s.tracker_max_abs_eta
    f_phi = (2 * fu[:, 1] - 1) * np.pi
    f_q = np.where(fu[:, 2] < 0.5, -1, 1)
    fake = np.zeros((f_pt.size, N_X))
    f_ndf = np.round(5 + 10 * fu[:, 3])
    fake[:, 0], fake[:, 1], fake[:, 2] = 1, f_pt, f_eta
    fake[:, 3], fake[:, 4], fake[:, 5] = np.sin(f_phi), np.cos(f_phi), f_pt * np.cosh(f_eta)
    fake[:, 6], fake[:, 7], fake[:, 8], fake[:, 9] = f_ndf * (3 + 5 * fu[:, 4]), f_ndf, 1.5, 0.1
    fake[:, 10] = 100 + 200 * fu[:, 5]
    fake[:, 11], fake[:, 13] = np.sinh(f_eta), f_q * 3e-4 * g.field_t / f_pt
    return segments(n_fake), fake, (f_pt, f_eta, f_phi, f_q, f_pt * np.cosh(f_eta))


def reconstruct_tracks(s: TrackerSettings, g: Geometry, part: dict, det: list[dict]) -> Tracks:
    """Tracks of the particles in ``part`` (with kinematics) using the detector draws ``det``."""
    z, u = part["z"], part["u"]
    pt, eta, phi, p, e, q, pev = part["pt"], part["eta"], part["phi"], part["p"], part["e"], part["charge"], part["ev"]
    lo, hi = s.track_eff_turn_on
    eff = np.clip((pt - lo) / (hi - lo), 0.0, 1.0) * s.track_eff_plateau * (1.0 - s.track_extra_loss)
    has_track = (q != 0) & (np.abs(eta) < s.tracker_max_abs_eta) & (u[:, 0] < eff)
    ti = np.flatnonzero(has_track)
    ti = ti[np.lexsort((-e[ti], pev[ti]))]
    t_pt_true, t_eta_true, t_p_true = pt[ti], eta[ti], p[ti]
    sig = np.hypot(s.track_pt_res_a * t_pt_true, s.track_pt_res_b) * (1 + np.abs(t_eta_true) / 3)
    t_pt = np.maximum(t_pt_true * (1 + sig * z[ti, 0]), 0.05)
    t_eta = t_eta_true + s.track_angle_res * z[ti, 1]
    t_phi = wrap(phi[ti] + s.track_angle_res * z[ti, 2])
    t_q = q[ti]
    t_p = t_pt * np.cosh(t_eta)
    tracks = _features(s, g, t_pt, t_eta, t_phi, t_q, t_p, t_p_true, t_eta_true, part["mass"][ti], z[ti], u[ti])
    t_ev, t_owner = pev[ti], ti
    fakes = _fakes(s, g, det)
    if fakes is not None:
        f_ev, fake, f_kin = fakes
        order = np.argsort(np.concatenate([t_ev, f_ev]), kind="stable")
        tracks = np.concatenate([tracks, fake])[order]
        t_pt, t_eta, t_phi, t_q, t_p = (
            np.concatenate([a, b])[order] for a, b in zip((t_pt, t_eta, t_phi, t_q, t_p), f_kin)
        )
        t_ev = np.concatenate([t_ev, f_ev])[order]
        t_owner = np.concatenate([t_owner, np.full(fake.shape[0], -1)])[order]
    return Tracks(
        X=tracks, ev=t_ev, owner=t_owner, pt=t_pt, eta=t_eta, phi=t_phi, q=t_q, p=t_p, has_track=has_track, real=ti
    )
