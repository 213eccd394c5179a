"""Jets and missing energy of generated events: cone jets around the generated jet axes.

A particle joins its nearest generated jet axis if within Delta R < ``jet_radius``; a jet is the
four-momentum sum of its particles, reported as (pT, eta, phi, E) in GeV; axes that received no
particle are left out. ``genjets`` are built from the visible non-PU generator particles,
``targetjets`` from the non-PU ``ytarget`` rows; genMET is the neutrinos' |sum pT| (GeV).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.mlpf.generator.common import dphi2, firsts, kinematics, padded


@dataclass
class JetSettings:
    """Cone radius (Delta R) of genjets and targetjets."""

    jet_radius: float = 0.4


def cone_jets(s: JetSettings, part: dict, ev, p4, eta, phi) -> list[np.ndarray]:
    """Per event: float32 [m, 4] (pT, eta, phi, E) per jet axis of ``part`` that got a particle."""
    n_events, jet_ev = part["n_events"], part["jet_ev"]
    n_jets = np.bincount(jet_ev, minlength=n_events)
    A_eta, _ = padded(jet_ev, n_events, part["jet_eta"], 1e6)
    A_phi, _ = padded(jet_ev, n_events, part["jet_phi"], 0.0)
    d2 = (eta[:, None] - A_eta[ev]) ** 2 + dphi2(phi[:, None], A_phi[ev])
    nearest = d2.argmin(axis=1) if ev.size else np.zeros(0, np.int64)
    inside = d2[np.arange(nearest.size), nearest] < s.jet_radius**2 if ev.size else np.zeros(0, bool)
    j_first = firsts(n_jets)
    gj = j_first[ev[inside]] + nearest[inside]
    nj = jet_ev.size
    sums = np.stack([np.bincount(gj, p4[inside, k], nj) for k in range(4)], axis=1)
    used = np.bincount(gj, minlength=nj) > 0
    pt, jeta, jphi, _ = kinematics(sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3])
    jets = np.stack([pt, jeta, jphi, sums[:, 0]], axis=1).astype(np.float32)
    return [
        jets[j_first[i] : j_first[i] + n_jets[i]][used[j_first[i] : j_first[i] + n_jets[i]]] for i in range(n_events)
    ]


def four_vectors(y: np.ndarray) -> np.ndarray:
    """(E, px, py, pz) of rows in the ``ytarget`` layout."""
    pt, eta = y[:, 2].astype(float), y[:, 3].astype(float)
    phi = np.arctan2(y[:, 4], y[:, 5])
    return np.stack([y[:, 6], pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)


def event_jets(s: JetSettings, part: dict, ytarget: np.ndarray, element_ev: np.ndarray):
    """(genjets, targetjets, genmet) of a block: two lists of per-event jets and genMET per event (GeV)."""
    E, pev = part["n_events"], part["ev"]
    gen_sel = part["visible"] & (part["ispu"] == 0)
    sum4 = np.stack([part["e"], part["px"], part["py"], part["pz"]], axis=1)
    genjets = cone_jets(s, part, pev[gen_sel], sum4[gen_sel], part["eta"][gen_sel], part["phi"][gen_sel])
    tsel = (ytarget[:, 0] > 0) & (ytarget[:, 7] == 0)
    targetjets = cone_jets(
        s,
        part,
        element_ev[tsel],
        four_vectors(ytarget[tsel]),
        ytarget[tsel, 3],
        np.arctan2(ytarget[tsel, 4], ytarget[tsel, 5]),
    )
    is_nu = part["pdg"] == 12
    genmet = np.hypot(np.bincount(pev[is_nu], part["px"][is_nu], E), np.bincount(pev[is_nu], part["py"][is_nu], E))
    return genjets, targetjets, genmet
