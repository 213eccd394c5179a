"""Clustering: each deposit joins the cluster of the most energetic deposit of its event within its
merge radius (Delta R in eta-phi), by pointer jumping over the energy-sorted distance matrix.

This equals greedy energy-ordered clustering except for rare chains. Cluster positions are
energy-weighted; widths combine a base width (mm) with the spread of the member deposits at the
calorimeter radius; hit counts are ``hits_per_gev * E^0.8`` (EM) or ``E^0.7`` (hadronic) with a
Gaussian of width sqrt(mean) in place of Poisson noise. Clusters below ``min_cluster_energy`` are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpoq.mlpf.generator.calorimeter import Deposits
from hpoq.mlpf.generator.common import N_X, firsts, local_index, padded
from hpoq.mlpf.generator.tracker import Geometry


@dataclass
class ClusteringSettings:
    """Merge radii (Delta R), shower widths (mm), hits per GeV and the minimum cluster energy (GeV)."""

    merge_radius_em: float = 0.02
    merge_radius_had: float = 0.08
    em_width_mm: float = 15.0
    had_width_mm: float = 60.0
    hits_per_gev_em: float = 20.0
    hits_per_gev_had: float = 8.0
    min_cluster_energy: float = 0.1


@dataclass
class Clusters:
    """Kept clusters of a block, grouped by event."""

    X: np.ndarray  # float64 [nc, 17] element features (type 2)
    ev: np.ndarray
    e: np.ndarray  # GeV
    eta: np.ndarray
    phi: np.ndarray
    of_deposit: np.ndarray  # kept-cluster index of each deposit, -1 where its cluster was dropped


def _parents(s: ClusteringSettings, dep: Deposits, n_events: int) -> np.ndarray:
    """Index of the root deposit (most energetic within reach) of each deposit."""
    nd = dep.e.size
    radius = np.where(dep.em, s.merge_radius_em, s.merge_radius_had)
    parent = np.arange(nd)
    if nd <= 1 or radius.max() <= 0:
        return parent
    P_eta, pos = padded(dep.ev, n_events, dep.eta, 1e3)
    P_phi, _ = padded(dep.ev, n_events, dep.phi, 0.0)
    P_eta, P_phi = P_eta.astype(np.float32), P_phi.astype(np.float32)
    # [nd, width]: squared distances of each deposit to the deposits of its own event (float32, in place)
    dr2 = P_eta[dep.ev]
    np.subtract(dr2, dep.eta.astype(np.float32)[:, None], out=dr2)
    np.multiply(dr2, dr2, out=dr2)
    dphi = P_phi[dep.ev]
    np.subtract(dphi, dep.phi.astype(np.float32)[:, None], out=dphi)
    np.abs(dphi, out=dphi)
    np.minimum(dphi, np.float32(2 * np.pi) - dphi, out=dphi)
    np.multiply(dphi, dphi, out=dphi)
    np.add(dr2, dphi, out=dr2)
    width = dr2.shape[1]
    cand = dr2 < (radius**2).astype(np.float32)[:, None]
    cand &= np.arange(width)[None, :] < pos[:, None]
    first = firsts(np.bincount(dep.ev, minlength=n_events))
    parent = np.where(cand.any(axis=1), first[dep.ev] + cand.argmax(axis=1), parent)
    for _ in range(int(math.log2(max(2, width))) + 2):
        parent = parent[parent]
    return parent


def cluster(s: ClusteringSettings, g: Geometry, dep: Deposits, det: list[dict], n_events: int) -> Clusters:
    """Clusters of the deposits ``dep``; widths and hit counts draw on ``det[i]["cluster_z"]``."""
    roots, dep_cluster = np.unique(_parents(s, dep, n_events), return_inverse=True)
    nc = roots.size
    c_ev = dep.ev[roots]
    c_e = np.bincount(dep_cluster, dep.e, nc)
    w = np.maximum(dep.e, 1e-9)
    c_w = np.bincount(dep_cluster, w, nc)
    c_eta = np.bincount(dep_cluster, w * dep.eta, nc) / c_w
    c_phi = np.arctan2(
        np.bincount(dep_cluster, w * np.sin(dep.phi), nc), np.bincount(dep_cluster, w * np.cos(dep.phi), nc)
    )
    c_ecal = np.bincount(dep_cluster, dep.ecal, nc)
    c_hcal = np.bincount(dep_cluster, dep.hcal, nc)
    R = g.ecal_radius_mm
    dxyz = (R * np.cos(dep.phi), R * np.sin(dep.phi), R * np.sinh(dep.eta))
    cxyz = [np.bincount(dep_cluster, w * a, nc) / c_w for a in dxyz]
    var = [np.bincount(dep_cluster, w * (a - ca[dep_cluster]) ** 2, nc) / c_w for a, ca in zip(dxyz, cxyz)]
    c_emlike = c_ecal > 0.8 * np.maximum(c_e, 1e-9)
    # the k-th cluster of event i uses row k of that event's normals
    cz_first = firsts([d["cluster_z"].shape[0] for d in det])
    cz_ = np.concatenate([d["cluster_z"] for d in det])[
        np.repeat(cz_first, np.bincount(c_ev, minlength=n_events)) + local_index(c_ev, n_events)
    ]
    base_w = np.where(c_emlike, s.em_width_mm, s.had_width_mm)
    hits_mean = np.where(
        c_emlike, s.hits_per_gev_em * np.maximum(c_e, 0) ** 0.8, s.hits_per_gev_had * np.maximum(c_e, 0) ** 0.7
    )
    hits = np.maximum(0, np.round(hits_mean + np.sqrt(hits_mean) * cz_[:, 3])) + 1
    keep_c = c_e >= s.min_cluster_energy
    new_id = np.cumsum(keep_c) - 1
    kc = np.flatnonzero(keep_c)
    ce, ceta, cphi = c_e[kc], c_eta[kc], c_phi[kc]
    X = np.zeros((kc.size, N_X))
    X[:, 0] = 2
    X[:, 1], X[:, 2], X[:, 3], X[:, 4], X[:, 5] = ce / np.cosh(ceta), ceta, np.sin(cphi), np.cos(cphi), ce
    X[:, 6], X[:, 7], X[:, 8] = R * np.cos(cphi), R * np.sin(cphi), R * np.sinh(ceta)
    X[:, 9] = 2 * np.arctan(np.exp(-ceta))
    X[:, 10], X[:, 11], X[:, 12] = c_ecal[kc], c_hcal[kc], 0.0
    X[:, 13] = hits[kc]
    for k in range(3):
        X[:, 14 + k] = np.sqrt((base_w[kc] * (1 + 0.1 * cz_[kc, k])) ** 2 + var[k][kc])
    return Clusters(
        X=X, ev=c_ev[kc], e=ce, eta=ceta, phi=cphi, of_deposit=np.where(keep_c[dep_cluster], new_id[dep_cluster], -1)
    )
