"""The upstream MLPF loss (docs/mlpf-data.md#outputs-loss-and-the-hpo-metric) as sums and counts, so that
data-parallel ranks can
normalise by global counts (all-reduced) and the fixed-weight ``val_loss`` of 1.5 is exact.

Per batch: binary = sum of is-particle cross-entropy over valid elements; focal = sum of the focal
loss over elements with a true particle (divided later by the number of *valid elements*, as
upstream does: this makes the class weight depend on occupancy, kept for fidelity); regression =
sum over true particles of w . (pred - target)^2 with w = (1, .01, .01, .01, 1) and the pT and E
terms multiplied by sqrt(target pT / GeV), divided later by the number of true particles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

REG_WEIGHTS = (1.0, 0.01, 0.01, 0.01, 1.0)


@dataclass(frozen=True)
class LossWeights:
    binary: float = 10.0
    classification: float = 1.0
    regression: float = 1.0
    focal_gamma: float = 2.0


DEFAULT_WEIGHTS = LossWeights()


def loss_sums(outputs, batch, gamma: float, charge=None):
    """Dict of per-batch sums (scalars with grad) and counts.

    With the optional charge head (a 5th output) and ``charge`` targets, ``charge`` holds the
    summed cross-entropy of (charge + 1) over true particles; it enters the training total only,
    never the fixed-weight val_loss.
    """
    binary, pid, momentum = outputs[0], outputs[1], outputs[2]
    mask = batch["mask"]
    cls = batch["cls"]
    valid = mask.reshape(-1)
    is_part = (cls > 0) & mask
    ce_bin = F.cross_entropy(binary.reshape(-1, 2).float(), is_part.reshape(-1).long(), reduction="none")
    binary_sum = (ce_bin * valid).sum()
    logp = F.log_softmax(pid.reshape(-1, pid.shape[-1]).float(), -1)
    tgt = cls.reshape(-1)
    logp_t = logp.gather(1, tgt[:, None])[:, 0]
    p_t = logp_t.exp()
    focal = -((1 - p_t).clamp_min(0) ** gamma) * logp_t if gamma > 0 else -logp_t
    part = is_part.reshape(-1)
    focal_sum = (focal * part).sum()
    w = torch.tensor(REG_WEIGHTS, dtype=torch.float32, device=momentum.device)
    sq = (momentum.float() - batch["reg"]) ** 2 * w
    sqrt_pt = batch["pt_true"].clamp_min(0).sqrt()
    sq = torch.cat([sq[..., :1] * sqrt_pt[..., None], sq[..., 1:4], sq[..., 4:] * sqrt_pt[..., None]], -1)
    reg_sum = (sq.sum(-1) * is_part).sum()
    out = {
        "binary": binary_sum,
        "focal": focal_sum,
        "regression": reg_sum,
        "n_valid": valid.sum().double(),
        "n_particles": part.sum().double(),
    }
    if len(outputs) > 4 and charge is not None:
        q = (charge.reshape(-1).clamp(-1, 1) + 1).long()
        ce_q = F.cross_entropy(outputs[4].reshape(-1, 3).float(), q, reduction="none")
        out["charge"] = (ce_q * part).sum()
    return out


def combine(sums: dict, weights: LossWeights, n_valid, n_particles) -> dict:
    """The total loss and its terms from sums, normalised by the (global) counts given."""
    nv = torch.as_tensor(n_valid).clamp_min(1.0)
    npart = torch.as_tensor(n_particles).clamp_min(1.0)
    binary = weights.binary * sums["binary"] / nv
    cls = weights.classification * sums["focal"] / nv
    reg = weights.regression * sums["regression"] / npart
    total = binary + cls + reg
    if "charge" in sums:
        total = total + sums["charge"] / npart
    return {"total": total, "binary": binary, "classification": cls, "regression": reg}
