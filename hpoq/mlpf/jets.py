"""Jet metrics with FastJet (Cacciari, Salam, Soyez 2012, "FastJet user manual", EPJC 72, 1896; anti-kt:
Cacciari, Salam, Soyez 2008, JHEP 04, 063) through the scikit-hep ``fastjet`` package
(docs/mlpf-data.md#outputs-loss-and-the-hpo-metric).

Particles (rows of a ``ytarget``/``ycand``-layout array with class > 0: pT in GeV, eta, sin phi,
cos phi, E in GeV) are clustered into jets with anti-kt, R = 0.4 (``JET_RADIUS``), E-scheme. Each gen
jet (pT, eta, phi, E) is matched to the nearest reconstructed jet within Delta R < ``match_dr``
(one reco jet may serve two gen jets, as in upstream's ``match_jets``). ``match_dr`` is 0.2 where
upstream's CLIC setting is 0.1 (mlpf/conf.py JET_CONFIG): hpoq's synthetic gen jets are cones
around the generated axes, and the gen-level particles themselves, re-clustered with anti-kt,
match 89 % of them at 0.1 against 97 % at 0.2 (150 events, presets easy and clic). The response
of a gen jet is reco-jet pT / gen-jet pT, 0 when unmatched. Summaries: median, IQR / median (of
matched jets) and the fraction of gen jets matched.

Which definition applies follows the dataset (:func:`jet_config` of the manifest's ``schema``):

- **converted CLIC events** (schema ``clic``, ``hpoq convert-events``): upstream's own definition,
  ``mlpf/conf.py`` ``JET_CONFIG["clic"]`` as used by ``mlpf/model/inference.py``: e+e- generalised
  kt (``ee_genkt_algorithm``, R = 0.4, p = -1), reconstructed and gen jets with pT > 5 GeV
  (``jet_ptcut``), a gen jet matched to the nearest jet within Delta R < 0.1 (:data:`CLIC`);
- **hpoq's synthetic events** (schema ``synthetic-clic``): hpoq's choice, anti-kt R = 0.4, no pT
  cut, Delta R < 0.2 (:data:`SYNTHETIC`): the synthetic gen jets are cones in (eta, phi) around the
  generated axes (hpoq.mlpf.generator), which the hadron-collider anti-kt reproduces (the 89 % /
  97 % match above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.mlpf.schema import Y_CLS, Y_COS, Y_E, Y_ETA, Y_PT, Y_SIN

JET_RADIUS = 0.4
MATCH_DR = 0.2
ALGORITHMS = ("antikt", "ee_genkt")


@dataclass(frozen=True)
class JetConfig:
    """A jet definition and its matching: FastJet ``algorithm`` with ``radius``; jets (reconstructed and
    gen) below ``min_pt`` GeV dropped; a gen jet matched within Delta R < ``match_dr``."""

    algorithm: str
    radius: float
    match_dr: float
    min_pt: float


#: hpoq's synthetic events (cones in eta-phi): anti-kt 0.4, matched within 0.2, no pT cut
SYNTHETIC = JetConfig("antikt", JET_RADIUS, MATCH_DR, 0.0)
#: converted CLIC events: upstream's JET_CONFIG["clic"] (mlpf/conf.py, particleflow 3.1.0)
CLIC = JetConfig("ee_genkt", 0.4, 0.1, 5.0)


def jet_config(schema: str | None) -> JetConfig:
    """The jet definition for a dataset's manifest ``schema``: upstream's for converted CLIC, hpoq's otherwise."""
    return CLIC if schema == "clic" else SYNTHETIC


def _jet_definition(algorithm: str, radius: float):
    import fastjet

    if algorithm == "antikt":
        return fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    if algorithm == "ee_genkt":
        return fastjet.JetDefinition(fastjet.ee_genkt_algorithm, radius, -1.0)
    raise ValueError(f"unknown jet algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def particle_p4(particles: np.ndarray) -> np.ndarray:
    """(px, py, pz, E) [n, 4] of the rows with class > 0 (float64)."""
    sel = particles[:, Y_CLS] > 0
    pt, eta = particles[sel, Y_PT].astype(float), particles[sel, Y_ETA].astype(float)
    phi = np.arctan2(particles[sel, Y_SIN].astype(float), particles[sel, Y_COS].astype(float))
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), particles[sel, Y_E].astype(float)], -1)


def cluster_jets(events: list, radius: float = JET_RADIUS, algorithm: str = "antikt", min_pt: float = 0.0) -> list:
    """Per event, the jets (pT, eta, phi, E) [m, 4] of its particles, by pT descending.

    ``events``: per event a particle array (``ytarget`` layout). One FastJet call for all events.
    """
    import awkward as ak
    import fastjet

    p4 = [particle_p4(np.asarray(p)) for p in events]
    if not p4:
        return []
    counts = np.array([len(x) for x in p4])
    flat = np.concatenate(p4) if counts.sum() else np.zeros((0, 4))
    records = ak.unflatten(ak.zip({k: flat[:, i] for i, k in enumerate(("px", "py", "pz", "E"))}), counts)
    jets = fastjet.ClusterSequence(records, _jet_definition(algorithm, radius)).inclusive_jets(min_pt=min_pt)
    out = []
    for ev in ak.to_list(jets):
        px = np.array([j["px"] for j in ev], float)
        py = np.array([j["py"] for j in ev], float)
        pz = np.array([j["pz"] for j in ev], float)
        e = np.array([j["E"] for j in ev], float)
        pt = np.hypot(px, py)
        eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0))
        arr = np.stack([pt, eta, np.arctan2(py, px), e], -1).reshape(-1, 4)
        out.append(arr[np.argsort(-arr[:, 0], kind="stable")])
    return out


def match_response(jets: np.ndarray, genjets: np.ndarray, match_dr: float = MATCH_DR) -> np.ndarray:
    """Reco / gen pT per gen jet: the nearest reco jet within ``match_dr`` (0 when none)."""
    genjets = np.asarray(genjets, float).reshape(-1, 4)
    if genjets.shape[0] == 0 or len(jets) == 0:
        return np.zeros(genjets.shape[0])
    dphi = np.angle(np.exp(1j * (genjets[:, None, 2] - jets[None, :, 2])))
    dr = np.hypot(genjets[:, None, 1] - jets[None, :, 1], dphi)
    nearest = dr.argmin(axis=1)
    ok = dr[np.arange(nearest.size), nearest] < match_dr
    return np.where(ok, jets[nearest, 0] / np.maximum(genjets[:, 0], 1e-9), 0.0)


def jet_pt_ratios_batch(
    events: list,
    genjets: list,
    radius: float = JET_RADIUS,
    match_dr: float = MATCH_DR,
    algorithm: str = "antikt",
    min_pt: float = 0.0,
) -> list:
    """:func:`jet_pt_ratios` for many events with one clustering call; ``min_pt`` (GeV) drops reconstructed
    and gen jets below it, as upstream's ``jet_ptcut``."""
    out = []
    for j, g in zip(cluster_jets(events, radius, algorithm, min_pt=min_pt), genjets):
        g = np.asarray(g, float).reshape(-1, 4)
        out.append(match_response(j, g[g[:, 0] > min_pt] if min_pt > 0 else g, match_dr))
    return out


def ratios_for(events: list, genjets: list, config: JetConfig) -> list:
    """:func:`jet_pt_ratios_batch` with a :class:`JetConfig`."""
    return jet_pt_ratios_batch(events, genjets, config.radius, config.match_dr, config.algorithm, config.min_pt)


def jet_pt_ratios(
    particles: np.ndarray,
    genjets: np.ndarray,
    radius: float = JET_RADIUS,
    match_dr: float = MATCH_DR,
    algorithm: str = "antikt",
) -> np.ndarray:
    """Reconstructed / gen pT per gen jet of one event (0 for a gen jet without a matched jet)."""
    return jet_pt_ratios_batch([particles], [genjets], radius, match_dr, algorithm)[0]


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

    The class is argmax(pid) where argmax(binary) says "particle", else 0
    (docs/mlpf-data.md#outputs-loss-and-the-hpo-metric).
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
