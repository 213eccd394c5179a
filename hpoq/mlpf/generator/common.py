"""Constants and segmented-numpy helpers shared by the generator's stages.

Rows of a block of events are grouped by event (``ev`` ascending); the helpers turn per-event
counts into segment ids, positions inside a segment and padded per-event matrices.
Units: GeV for masses, radians for angles.
"""

from __future__ import annotations

import numpy as np

from hpoq.mlpf.schema import CLS_CH, CLS_ELE, CLS_GAMMA, CLS_MU, CLS_NH, X_FEATURES, Y_FEATURES

#: particle masses in GeV
M_PI0, M_PI, M_K, M_P, M_E, M_MU, M_K0L = 0.135, 0.1396, 0.4937, 0.9383, 0.000511, 0.1057, 0.4976
N_X, N_Y = len(X_FEATURES), len(Y_FEATURES)
#: target class of a PDG id (absolute value < 256)
CLS_OF_PDG = np.zeros(256, np.int64)
CLS_OF_PDG[[211, 130, 22, 11, 13]] = [CLS_CH, CLS_NH, CLS_GAMMA, CLS_ELE, CLS_MU]


def wrap(phi):
    """Angle(s) in [-pi, pi)."""
    return (phi + np.pi) % (2 * np.pi) - np.pi


def dphi2(a, b):
    """Squared azimuthal distance of angles in [-pi, pi] (cheaper than wrapping with %)."""
    d = np.abs(a - b)
    d = np.minimum(d, 2 * np.pi - d)
    return d * d


def rotate(axis: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
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


def unit(cos_theta, phi):
    """Unit vectors [n, 3] from polar cosine and azimuth."""
    sin_theta = np.sqrt(np.maximum(0.0, 1.0 - cos_theta**2))
    return np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta], axis=1)


def kinematics(e, px, py, pz):
    """(pT, eta, phi, |p|) of four-vectors given as components (GeV)."""
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(py, px)
    return pt, eta, phi, p


def segments(counts: np.ndarray) -> np.ndarray:
    """Segment id per row for segments of the given lengths."""
    return np.repeat(np.arange(counts.size), counts)


def firsts(counts) -> np.ndarray:
    """Index of the first row of each segment of the given lengths."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]])


def local_index(ev: np.ndarray, n_events: int) -> np.ndarray:
    """Position of each row inside its segment (``ev`` sorted ascending)."""
    counts = np.bincount(ev, minlength=n_events)
    return np.arange(ev.size) - np.repeat(np.cumsum(counts) - counts, counts)


def padded(ev: np.ndarray, n_events: int, values: np.ndarray, fill: float):
    """Scatter rows (grouped by ``ev``, ascending) into a padded [n_events, max_count] array."""
    pos = local_index(ev, n_events)
    width = int(pos.max()) + 1 if pos.size else 1
    out = np.full((n_events, width), fill, dtype=np.result_type(values, np.float64))
    out[ev, pos] = values
    return out, pos


def settings_of(cls, cfg):
    """An instance of the settings dataclass ``cls`` holding the same-named fields of ``cfg``."""
    import dataclasses

    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})
