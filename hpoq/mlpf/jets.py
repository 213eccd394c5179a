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


#: fixed histogram binning, so that ranks can all-reduce histograms instead of gathering values
RATIO_EDGES = np.linspace(0.0, 2.5, 1001)
MET_EDGES = np.linspace(-100.0, 100.0, 801)


def predicted_particles(outputs, X) -> np.ndarray:
    """Per element (class, charge, pT, eta, sin phi, cos phi, E) from model outputs (numpy [B, N, 7]).

    The class is argmax(pid) where argmax(binary) says "particle", else 0 (mlpf.md 1.3).
    """
    import torch

    binary, pid, mom = (o.detach().float() for o in outputs[:3])
    is_part = binary.argmax(-1) == 1
    cls = torch.where(is_part, pid.argmax(-1), torch.zeros_like(is_part, dtype=torch.long))
    pt = torch.exp(mom[..., 0].clamp(-10, 10)) * X[..., 1].abs()
    e = torch.exp(mom[..., 4].clamp(-10, 10)) * X[..., 5].abs()
    out = torch.stack([cls.float(), torch.zeros_like(pt), pt, mom[..., 1], mom[..., 2], mom[..., 3], e], -1)
    return out.cpu().numpy()


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts with under/overflow folded into the first/last bin."""
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
    return np.bincount(idx, minlength=edges.size - 1).astype(np.float64)


def histogram_quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Quantile ``q`` of a histogram (bin centre), NaN if empty."""
    total = counts.sum()
    if total <= 0:
        return float("nan")
    i = int(np.searchsorted(np.cumsum(counts), q * total))
    i = min(i, counts.size - 1)
    return float(0.5 * (edges[i] + edges[i + 1]))
