"""MiniMLPF backbone layers (docs/mlpf-data.md#model-and-training): attention, kNN (GravNet-like), LSH-binned, and a
registry name -> layer class. Every layer maps (x [B, N, d], mask [B, N] bool) -> x [B, N, d] and
leaves padded rows at zero, so padding never changes real elements' outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "relu6": nn.ReLU6, "leakyrelu": nn.LeakyReLU, "gelu": nn.GELU}


def ffn(d_in: int, d_hidden: int, d_out: int, activation: str, dropout: float) -> nn.Sequential:
    """The MLPF FFN block: Linear -> act -> LayerNorm -> Dropout -> Linear."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden),
        ACTIVATIONS[activation](),
        nn.LayerNorm(d_hidden),
        nn.Dropout(dropout),
        nn.Linear(d_hidden, d_out),
    )


class AttentionLayer(nn.Module):
    """Pre-LN transformer block with a key-padding mask (F.scaled_dot_product_attention)."""

    def __init__(self, width: int, num_heads: int, head_dim: int, ffn_mult: int, activation: str, dropout: float, **_):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * inner)
        self.proj = nn.Linear(inner, width)
        self.ln2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, width * ffn_mult), ACTIVATIONS[activation](), nn.Linear(width * ffn_mult, width)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):
        B, N, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(B, N, -1)))
        x = x + self.drop(self.ffn(self.ln2(x)))
        return x * mask[..., None]


def _sq_dist(c):
    """Pairwise squared distances [G, N, N] of coordinates [G, N, D] via one batched matmul."""
    sq = c.pow(2).sum(-1)
    return (sq[:, :, None] + sq[:, None, :] - 2 * torch.bmm(c, c.transpose(1, 2))).clamp_min(0)


class _KernelMessages(nn.Module):
    """Kernel-weighted message passing: exp(-dist_mult d^2) weights, two aggregates, a sigmoid
    gate against a self term, residual and LayerNorm (GravNet, Qasim et al. 2019).

    ``nbr_msgs_fn(m)`` returns either ``(w [..., k], neighbour messages [..., k, P])`` (kNN:
    weighted mean and max) or ``(w [G, S, S], None)`` for dense bins (LSH: weighted mean and the
    weighted sum / S by batched matmul, as upstream GNN-LSH aggregates; no S x S x P tensor).
    """

    def __init__(self, width: int, propagate_dim: int, activation: str, dropout: float):
        super().__init__()
        self.msg = nn.Linear(width, propagate_dim)
        self.update = nn.Linear(2 * propagate_dim + width, width)
        self.gate = nn.Linear(width, width)
        self.act = ACTIVATIONS[activation]()
        self.ln = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask, nbr_msgs_fn):
        m = self.msg(x)
        w, nbr = nbr_msgs_fn(m)
        wsum = w.sum(-1, keepdim=True).clamp_min(1e-9)
        if nbr is None:
            agg = torch.bmm(w, m)
            mean, mx = agg / wsum, agg / w.shape[-1]
        else:
            valid = w > 0
            mean = (w[..., None] * nbr).sum(-2) / wsum
            mx = torch.where(valid[..., None], w[..., None] * nbr, torch.full_like(nbr, -1e9)).amax(-2)
            mx = torch.where(valid.any(-1, keepdim=True), mx, torch.zeros_like(mx))
        upd = self.act(self.update(torch.cat([mean, mx, x], -1)))
        g = torch.sigmoid(self.gate(x))
        return self.ln(x + self.drop(g * upd)) * mask[..., None]


class KNNLayer(nn.Module):
    """GravNet-like layer: learned coordinates, masked top-k neighbours by squared distance. O(N^2)."""

    def __init__(
        self,
        width: int,
        k: int = 16,
        distance_dim: int = 8,
        num_messages: int = 1,
        dist_mult: float = 1.0,
        activation: str = "elu",
        dropout: float = 0.0,
        propagate_dim: int | None = None,
        **_,
    ):
        super().__init__()
        self.k, self.dist_mult = k, dist_mult
        self.coords = nn.Linear(width, distance_dim)
        self.passes = nn.ModuleList(
            _KernelMessages(width, propagate_dim or width, activation, dropout) for _ in range(num_messages)
        )

    def forward(self, x, mask):
        B, N, _ = x.shape
        c = self.coords(x)
        d2 = _sq_dist(c)
        d2 = d2.masked_fill(~mask[:, None, :], float("inf"))
        k = min(self.k, N)
        dist, idx = torch.topk(d2, k, dim=-1, largest=False)
        w = torch.exp(-self.dist_mult * dist)  # exp(-inf) = 0 for padding neighbours
        w = w * mask[..., None]
        flat = idx + (torch.arange(B, device=x.device) * N)[:, None, None]

        def nbr_msgs(m):
            return w, m.reshape(B * N, -1)[flat]

        for p in self.passes:
            x = p(x, mask, nbr_msgs)
        return x


class LSHLayer(nn.Module):
    """GNN-LSH-like layer (Pata et al. 2021): sort elements by a random-rotation hash of learned
    coordinates, cut into bins of ``bin_size`` and run dense kernel message passing per bin.

    Elements in the same hash bucket keep their input order, so bin membership (and hence the
    output) is permutation-invariant only up to bucket boundaries; use ``attention``/``knn`` where
    exact invariance matters.
    """

    def __init__(
        self,
        width: int,
        bin_size: int = 64,
        distance_dim: int = 8,
        num_messages: int = 1,
        dist_mult: float = 1.0,
        activation: str = "elu",
        dropout: float = 0.0,
        propagate_dim: int | None = None,
        hash_seed: int = 0,
        **_,
    ):
        super().__init__()
        self.bin_size, self.dist_mult = bin_size, dist_mult
        self.coords = nn.Linear(width, distance_dim)
        g = torch.Generator().manual_seed(int(hash_seed))
        self.register_buffer("rotation", torch.randn(distance_dim, 8, generator=g))
        self.passes = nn.ModuleList(
            _KernelMessages(width, propagate_dim or width, activation, dropout) for _ in range(num_messages)
        )

    def forward(self, x, mask):
        B, N, D = x.shape
        c = self.coords(x)
        proj = c.detach() @ self.rotation
        bucket = torch.cat([proj, -proj], -1).argmax(-1).to(x.dtype)
        key = torch.where(mask, bucket, torch.full_like(bucket, 1e9))  # padding last
        order = torch.sort(key, dim=-1, stable=True).indices
        nb = max(1, math.ceil(N / self.bin_size))
        pad = nb * self.bin_size - N
        xs = torch.gather(x, 1, order[..., None].expand(-1, -1, D))
        cs = torch.gather(c, 1, order[..., None].expand(-1, -1, c.shape[-1]))
        ms = torch.gather(mask, 1, order)
        if pad:
            xs, cs = F.pad(xs, (0, 0, 0, pad)), F.pad(cs, (0, 0, 0, pad))
            ms = F.pad(ms, (0, pad), value=False)
        S = self.bin_size
        xb, cb, mb = xs.view(B * nb, S, D), cs.view(B * nb, S, -1), ms.view(B * nb, S)
        d2 = _sq_dist(cb)
        w = torch.exp(-self.dist_mult * d2) * mb[:, None, :] * mb[:, :, None]

        def nbr_msgs(m):
            return w, None

        for p in self.passes:
            xb = p(xb, mb, nbr_msgs)
        out = xb.view(B, nb * S, D)[:, :N]
        return torch.zeros_like(out).scatter(1, order[..., None].expand(-1, -1, D), out)


BACKBONES = {"attention": AttentionLayer, "knn": KNNLayer, "lsh": LSHLayer}
