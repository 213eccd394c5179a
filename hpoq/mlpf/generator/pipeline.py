"""The generator's pipeline over a block of events: draws, then the stages in order.

Event ``j`` of seed ``s`` draws only from ``SeedSequence([s, j])`` spawned into two streams (the
generator level, then the detector level); every stage after the draws is element-wise or
segmented per event, so an event is the same whatever block, shard or process generates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hpoq.mlpf.generator.calorimeter import CalorimeterSettings, Deposits, deposit_energy
from hpoq.mlpf.generator.clustering import ClusteringSettings, Clusters, cluster
from hpoq.mlpf.generator.common import firsts, kinematics
from hpoq.mlpf.generator.config import GeneratorConfig
from hpoq.mlpf.generator.genjets import JetSettings, event_jets
from hpoq.mlpf.generator.pf import PFSettings, pf_candidates
from hpoq.mlpf.generator.process import ProcessSettings, build_particles, draw_generator_level
from hpoq.mlpf.generator.tracker import Geometry, TrackerSettings, Tracks, reconstruct_tracks
from hpoq.mlpf.generator.truth import Truth, TruthSettings, assign_truth


@dataclass
class Event:
    """One event: elements (tracks first, then clusters) and per-event extras."""

    X: np.ndarray  # float32 [n, 17]
    ytarget: np.ndarray  # float32 [n, 14]
    ycand: np.ndarray  # float32 [n, 14]
    genmet: float
    genjets: np.ndarray  # float32 [m, 4] (pT, eta, phi, E)
    targetjets: np.ndarray  # float32 [k, 4]
    accounting: dict = field(default_factory=dict)


@dataclass
class Block:
    """Every stage's output for a block of events (rows grouped by event)."""

    particles: dict
    tracks: Tracks
    deposits: Deposits
    clusters: Clusters
    element_ev: np.ndarray  # event of each element row (tracks first, then clusters, per event)
    X: np.ndarray  # float64 [n_elements, 17]
    truth: Truth
    ycand: np.ndarray  # float64 [n_elements, 14]
    genjets: list
    targetjets: list
    genmet: np.ndarray


def draw_detector(
    tracker: TrackerSettings, calo: CalorimeterSettings, rng: np.random.Generator, n: int, n_charged_acc: int
) -> dict:
    """Per-event random numbers of the detector level (sizes known from the particle list).

    The order of the draws is part of the data format: changing it changes every event.
    """
    d = {"z": rng.standard_normal((n, 10)), "u": rng.random((n, 8)), "beta": rng.beta(*calo.had_ecal_beta, size=n)}
    n_fake = (
        int(rng.poisson(tracker.fake_track_rate * n_charged_acc))
        if tracker.fake_track_rate > 0 and n_charged_acc
        else 0
    )
    d["fake_u"] = rng.random((n_fake, 6))
    d["fake_pt"] = 0.2 + rng.exponential(0.5, n_fake)
    n_noise = int(rng.poisson(calo.noise_clusters_mean)) if calo.noise_clusters_mean > 0 else 0
    d["noise_u"] = rng.random((n_noise, 3))
    d["noise_e"] = calo.noise_min_energy + rng.exponential(calo.noise_mean_energy, n_noise)
    # enough normals for every possible cluster (<= deposits <= 2 n + noise): widths and hit counts
    d["cluster_z"] = rng.standard_normal((2 * n + n_noise + 1, 4))
    return d


def _particles_with_draws(cfg: GeneratorConfig, seed: int, indices: list[int]):
    """Generator-level particles with kinematics and their detector-level draws (per-particle columns)."""
    streams = [[np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), j]).spawn(2)] for j in indices]
    process = cfg.stage(ProcessSettings)
    part = build_particles(process, [draw_generator_level(process, s[0]) for s in streams])
    E = len(indices)
    part["pt"], part["eta"], part["phi"], part["p"] = kinematics(part["e"], part["px"], part["py"], part["pz"])
    part["visible"] = part["pdg"] != 12
    n_per = np.bincount(part["ev"], minlength=E)
    in_acceptance = (part["charge"] != 0) & (np.abs(part["eta"]) < cfg.tracker_max_abs_eta)
    charged_acc = np.bincount(part["ev"], weights=in_acceptance.astype(float), minlength=E)
    tracker, calo = cfg.stage(TrackerSettings), cfg.stage(CalorimeterSettings)
    det = [draw_detector(tracker, calo, s[1], int(n_per[i]), int(charged_acc[i])) for i, s in enumerate(streams)]
    for key in ("z", "u", "beta"):
        part[key] = np.concatenate([d[key] for d in det])
    return part, det


def element_rows(track_ev: np.ndarray, cluster_ev: np.ndarray):
    """(row of each track, row of each cluster, event of each row, order): per event tracks, then clusters."""
    elem_ev = np.concatenate([track_ev, cluster_ev])
    order = np.argsort(elem_ev, kind="stable")
    row = np.empty_like(order)
    row[order] = np.arange(order.size)
    return row[: track_ev.size], row[track_ev.size :], elem_ev[order], order


def run_stages(cfg: GeneratorConfig, seed: int, indices) -> Block:
    """Every stage's output for events ``indices`` of ``seed``."""
    indices = [int(j) for j in indices]
    E = len(indices)
    part, det = _particles_with_draws(cfg, seed, indices)
    geometry = cfg.stage(Geometry)
    tracks = reconstruct_tracks(cfg.stage(TrackerSettings), geometry, part, det)
    deposits = deposit_energy(cfg.stage(CalorimeterSettings), geometry, part, det)
    clusters = cluster(cfg.stage(ClusteringSettings), geometry, deposits, det, E)
    track_row, cluster_row, element_ev, order = element_rows(tracks.ev, clusters.ev)
    X = np.concatenate([tracks.X, clusters.X])[order]
    truth = assign_truth(cfg.stage(TruthSettings), part, tracks, deposits, clusters, track_row, cluster_row)
    ycand = pf_candidates(cfg.stage(PFSettings), geometry, tracks, clusters, track_row, cluster_row, E)
    genjets, targetjets, genmet = event_jets(cfg.stage(JetSettings), part, truth.ytarget, element_ev)
    return Block(
        particles=part,
        tracks=tracks,
        deposits=deposits,
        clusters=clusters,
        element_ev=element_ev,
        X=X,
        truth=truth,
        ycand=ycand,
        genjets=genjets,
        targetjets=targetjets,
        genmet=genmet,
    )


def generate_events(cfg: GeneratorConfig, seed: int, indices) -> list[Event]:
    """Events ``indices`` of ``seed``; each is the same whatever block it is generated in."""
    indices = [int(j) for j in indices]
    if not indices:
        return []
    b = run_stages(cfg, seed, indices)
    n_el = np.bincount(b.element_ev, minlength=len(indices))
    el_first = firsts(n_el)
    X32, yt32, yc32 = b.X.astype(np.float32), b.truth.ytarget.astype(np.float32), b.ycand.astype(np.float32)
    acc = b.truth.accounting
    out = []
    for i in range(len(indices)):
        lo, hi = el_first[i], el_first[i] + n_el[i]
        out.append(
            Event(
                X=X32[lo:hi],
                ytarget=yt32[lo:hi],
                ycand=yc32[lo:hi],
                genmet=float(b.genmet[i]),
                genjets=b.genjets[i],
                targetjets=b.targetjets[i],
                accounting={k: (int(v[i]) if k.startswith("n_") else float(v[i])) for k, v in acc.items()},
            )
        )
    return out


def generate_event(cfg: GeneratorConfig, seed: int, index: int) -> Event:
    """Event ``index`` of ``seed`` (deterministic: its own ``SeedSequence([seed, index])``)."""
    return generate_events(cfg, seed, [index])[0]
