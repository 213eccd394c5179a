"""Jet pT response without fastjet (docs/mlpf.md 1.5, secondary metrics).

Particles (rows of a ``ytarget``/``ycand``-layout array with class > 0) are assigned to the nearest
gen-jet axis within Delta R < ``radius``; the response of a jet is |sum of the assigned particles'
pT vectors| / gen-jet pT. Summaries: median, IQR / median and the fraction of gen jets that
received any particle.
"""
from __future__ import annotations

import numpy as np

from hpoq.mlpf.schema import Y_CLS, Y_COS, Y_ETA, Y_PT, Y_SIN


def jet_pt_ratios(particles: np.ndarray, genjets: np.ndarray, radius: float = 0.4) -> np.ndarray:
    """Reconstructed / gen pT per gen jet of one event (0 for a jet that got no particle)."""
    if genjets.shape[0] == 0:
        return np.zeros(0)
    sel = particles[:, Y_CLS] > 0
    pt, eta = particles[sel, Y_PT].astype(float), particles[sel, Y_ETA].astype(float)
    phi = np.arctan2(particles[sel, Y_SIN], particles[sel, Y_COS])
    n_jets = genjets.shape[0]
    if pt.size == 0:
        return np.zeros(n_jets)
    dphi = np.abs(phi[:, None] - genjets[None, :, 2])
    dphi = np.minimum(dphi, 2 * np.pi - dphi)
    d2 = (eta[:, None] - genjets[None, :, 1]) ** 2 + dphi ** 2
    nearest = d2.argmin(axis=1)
    inside = d2[np.arange(nearest.size), nearest] < radius ** 2
    px = np.bincount(nearest[inside], pt[inside] * np.cos(phi[inside]), n_jets)
    py = np.bincount(nearest[inside], pt[inside] * np.sin(phi[inside]), n_jets)
    return np.hypot(px, py) / np.maximum(genjets[:, 0], 1e-9)


def response_summary(ratios: np.ndarray) -> dict:
    """Median, IQR / median (of matched jets) and match fraction of per-jet ratios."""
    ratios = np.asarray(ratios, float)
    matched = ratios[ratios > 0]
    if matched.size == 0:
        return {"median": float("nan"), "iqr_over_median": float("nan"), "match_fraction": 0.0}
    med = float(np.median(matched))
    q75, q25 = np.percentile(matched, [75, 25])
    return {"median": med, "iqr_over_median": float((q75 - q25) / med), "match_fraction": matched.size / ratios.size}
