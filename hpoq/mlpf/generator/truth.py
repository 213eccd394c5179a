"""Truth (``ytarget``): which particle each element stands for, upstream-style.

A tracked particle owns its track. A particle without a track competes only for its *best*
cluster (the one holding its main deposit): the most energetic competitor owns it and the others
are merged into it (their four-momenta added); a particle whose main deposit fell into a dropped
cluster is dropped. Energy is conserved: visible = kept + merged + dropped per event, checked to a
relative ``accounting_tolerance``. Columns follow ``hpoq.mlpf.schema.Y_FEATURES``; GeV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.errors import InternalError
from hpoq.mlpf.generator.calorimeter import Deposits
from hpoq.mlpf.generator.clustering import Clusters
from hpoq.mlpf.generator.common import CLS_OF_PDG, N_Y, firsts, kinematics
from hpoq.mlpf.generator.tracker import Tracks
from hpoq.mlpf.schema import CLS_CH, CLS_ELE, CLS_GAMMA, CLS_MU, CLS_NH


@dataclass
class TruthSettings:
    """Relative tolerance of the per-event energy-accounting check (visible = kept + merged + dropped)."""

    accounting_tolerance: float = 1e-9


@dataclass
class Truth:
    """``ytarget`` rows of a block and the per-event energy accounting (GeV, counts)."""

    ytarget: np.ndarray  # float64 [n_elements, 14]
    accounting: dict  # name -> array per event: visible, kept, merged, dropped, n_merged, n_dropped


def _competition(part: dict, tracks: Tracks, dep: Deposits, clusters: Clusters):
    """Best cluster per particle, the energy of its main deposit, and owners / merged / dropped rows."""
    n = part["e"].size
    best_cluster = np.full(n, -1)
    main_mask = dep.main & (dep.owner >= 0)
    best_cluster[dep.owner[main_mask]] = clusters.of_deposit[main_mask]
    dep_in_best = np.zeros(n)
    dep_in_best[dep.owner[main_mask]] = dep.e[main_mask]
    untracked = part["visible"] & ~tracks.has_track
    cand = np.flatnonzero(untracked & (best_cluster >= 0))
    cand = cand[np.lexsort((-part["e"][cand], best_cluster[cand]))]
    bc = best_cluster[cand]
    is_first = np.concatenate([[True], bc[1:] != bc[:-1]]) if bc.size else np.zeros(0, bool)
    dropped = np.flatnonzero(untracked & (best_cluster < 0))
    return best_cluster, dep_in_best, cand[is_first], cand[~is_first], dropped


def _accounting(s: TruthSettings, part: dict, tracks: Tracks, owners, merged, dropped) -> dict:
    """Per-event energy bookkeeping; raises InternalError if energy is not conserved."""
    e, pev, E = part["e"], part["ev"], part["n_events"]
    e_visible = np.bincount(pev, e * part["visible"], E)
    kept_mask = np.zeros(e.size, bool)
    kept_mask[tracks.real] = True
    kept_mask[owners] = True
    e_kept = np.bincount(pev, e * kept_mask, E)
    e_merged = np.bincount(pev[merged], e[merged], E)
    e_dropped = np.bincount(pev[dropped], e[dropped], E)
    if np.any(np.abs(e_kept + e_merged + e_dropped - e_visible) > s.accounting_tolerance * np.maximum(1.0, e_visible)):
        raise InternalError("generator: energy accounting broken")
    return dict(
        visible=e_visible,
        kept=e_kept,
        merged=e_merged,
        dropped=e_dropped,
        n_merged=np.bincount(pev[merged], minlength=E),
        n_dropped=np.bincount(pev[dropped], minlength=E),
    )


def assign_truth(
    s: TruthSettings,
    part: dict,
    tracks: Tracks,
    dep: Deposits,
    clusters: Clusters,
    track_row: np.ndarray,
    cluster_row: np.ndarray,
) -> Truth:
    """``ytarget`` for the element rows (``track_row`` / ``cluster_row``: row of each track / kept cluster)."""
    e, pdg, q, pev = part["e"], part["pdg"], part["charge"], part["ev"]
    best_cluster, dep_in_best, owners, merged, dropped = _competition(part, tracks, dep, clusters)
    owner_of_cluster = np.full(max(clusters.e.size, 1), -1)
    owner_of_cluster[best_cluster[owners]] = owners
    sum4 = np.stack([e, part["px"], part["py"], part["pz"]], axis=1)
    acc = np.zeros((e.size, 4))
    acc[owners] = sum4[owners]
    if merged.size:
        np.add.at(acc, owner_of_cluster[best_cluster[merged]], sum4[merged])
    accounting = _accounting(s, part, tracks, owners, merged, dropped)
    ytarget = np.zeros((track_row.size + cluster_row.size, N_Y))
    cls = CLS_OF_PDG[pdg]
    local_pnum = np.arange(e.size) - firsts(np.bincount(pev, minlength=part["n_events"]))[pev]
    if tracks.real.size:
        tr = track_row[np.flatnonzero(tracks.owner >= 0)]
        own = tracks.owner[tracks.owner >= 0]
        ytarget[tr, 0] = np.where((cls[own] == CLS_ELE) | (cls[own] == CLS_MU), cls[own], CLS_CH)
        ytarget[tr, 1], ytarget[tr, 2], ytarget[tr, 3] = q[own], part["pt"][own], part["eta"][own]
        ytarget[tr, 4], ytarget[tr, 5], ytarget[tr, 6] = np.sin(part["phi"][own]), np.cos(part["phi"][own]), e[own]
        ytarget[tr, 7], ytarget[tr, 8], ytarget[tr, 9] = part["ispu"][own], 1, 1
        ytarget[tr, 10] = 1.0
        ytarget[tr, 11] = dep_in_best[own] / e[own]
        ytarget[tr, 12], ytarget[tr, 13] = part["jet"][own], local_pnum[own]
    if owners.size:
        rows = cluster_row[best_cluster[owners]]
        a = acc[owners]
        o_pt, o_eta, o_phi, _ = kinematics(a[:, 0], a[:, 1], a[:, 2], a[:, 3])
        ytarget[rows, 0] = np.where((cls[owners] == CLS_GAMMA) | (cls[owners] == CLS_ELE), CLS_GAMMA, CLS_NH)
        ytarget[rows, 2], ytarget[rows, 3], ytarget[rows, 4], ytarget[rows, 5] = (
            o_pt,
            o_eta,
            np.sin(o_phi),
            np.cos(o_phi),
        )
        ytarget[rows, 6], ytarget[rows, 7], ytarget[rows, 8], ytarget[rows, 9] = a[:, 0], part["ispu"][owners], 1, 1
        ytarget[rows, 11] = dep_in_best[owners] / np.maximum(clusters.e[best_cluster[owners]], 1e-9)
        ytarget[rows, 12], ytarget[rows, 13] = part["jet"][owners], local_pnum[owners]
    return Truth(ytarget=ytarget, accounting=accounting)
