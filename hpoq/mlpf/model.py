"""MiniMLPF: a small, faithful MLPF in PyTorch (docs/mlpf-data.md#outputs-loss-and-the-hpo-metric,
docs/mlpf-data.md#model-and-training).

Input ``X`` float32 [B, N, F] (raw features, column 0 = element type, 0 = padding); output the
upstream tuple ``(binary [B,N,2], pid [B,N,C], momentum [B,N,5], pu [B,N,2])`` plus ``charge
[B,N,3]`` when ``charge_head`` is on. Momentum is (log pT ratio, eta, sin phi, cos phi, log E
ratio) relative to the element's own pT/ET and p/E. Padded elements produce zeros and never
influence real elements (all mixing is masked).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from hpoq.errors import ConfigError
from hpoq.mlpf.backbones import ACTIVATIONS, BACKBONES, ffn
from hpoq.mlpf.features import column_plan_tensors, transform_torch


@dataclass
class ModelConfig:
    """Architecture hyperparameters (docs/mlpf-data.md#model-and-training and the search space of 6)."""

    input_dim: int = 17
    n_types: int = 3  # element types including padding (max type + 1)
    num_classes: int = 6
    conv_type: str = "attention"  # attention | knn | lsh | none
    num_convs: int = 2
    width: int = 32  # embedding width d (attention: num_heads * head_dim by preset)
    num_heads: int = 2
    head_dim: int = 16
    ffn_mult: int = 1
    head_width: int = 32
    dropout: float = 0.0
    activation: str = "elu"
    input_encoding: str = "split"  # split | joint
    task_queries: bool = True  # event context: learned query readout (True) or masked mean-pool (False)
    num_queries: int = 4
    input_norm: str = "standard"  # standard | none
    k: int = 16
    distance_dim: int = 8
    num_messages: int = 1
    dist_mult: float = 1.0
    bin_size: int = 64
    charge_head: bool = False

    def validate(self) -> "ModelConfig":
        if self.conv_type not in (*BACKBONES, "none"):
            raise ConfigError(f"model: unknown conv_type {self.conv_type!r}; choose attention, knn, lsh or none")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"model: unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.input_encoding not in ("split", "joint"):
            raise ConfigError(f"model: input_encoding must be split or joint, got {self.input_encoding!r}")
        if self.input_norm not in ("standard", "none"):
            raise ConfigError(f"model: input_norm must be standard or none, got {self.input_norm!r}")
        for name in (
            "num_convs",
            "width",
            "num_heads",
            "head_dim",
            "ffn_mult",
            "head_width",
            "k",
            "distance_dim",
            "num_messages",
            "bin_size",
            "input_dim",
            "num_classes",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < (0 if name == "num_convs" else 1):
                raise ConfigError(f"model: {name} must be a positive integer, got {v!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"model: dropout must lie in [0, 1), got {self.dropout!r}")
        return self


PRESETS = {
    "tiny": dict(width=32, num_heads=2, head_dim=16, num_convs=2, ffn_mult=1, head_width=32),
    "small": dict(width=64, num_heads=4, head_dim=16, num_convs=3, ffn_mult=1, head_width=64),
    "base": dict(width=128, num_heads=8, head_dim=16, num_convs=4, ffn_mult=1, head_width=128),
    "paper": dict(width=256, num_heads=16, head_dim=16, num_convs=3, ffn_mult=1, head_width=256),
}


def model_config(preset: str = "tiny", **overrides) -> ModelConfig:
    """The preset's config with ``overrides`` (unknown keys are an error)."""
    if preset not in PRESETS:
        raise ConfigError(f"model: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ConfigError(f"model: unknown parameter(s) {', '.join(bad)}")
    values = dict(PRESETS[preset])
    values.update(overrides)
    return ModelConfig(**values).validate()


class MiniMLPF(nn.Module):
    def __init__(self, cfg: ModelConfig, x_mean=None, x_std=None):
        super().__init__()
        self.cfg = cfg = cfg.validate()
        F_, T, d = cfg.input_dim, cfg.n_types, cfg.width
        log_mask, mm_mask = column_plan_tensors(T, F_)
        self.register_buffer("log_mask", log_mask, persistent=False)
        self.register_buffer("mm_mask", mm_mask, persistent=False)
        mean = torch.zeros(T, F_) if x_mean is None else torch.as_tensor(x_mean, dtype=torch.float32)
        std = torch.ones(T, F_) if x_std is None else torch.as_tensor(x_std, dtype=torch.float32)
        if mean.shape != (T, F_) or std.shape != (T, F_):
            raise ConfigError(f"model: feature stats have shape {tuple(mean.shape)}, expected {(T, F_)}")
        self.register_buffer("x_mean", mean)
        self.register_buffer("x_std", std)
        act = cfg.activation
        emb_out = T * d if cfg.input_encoding == "split" else d
        self.embed = ffn(F_, d, emb_out, act, cfg.dropout)
        backbone_kwargs = dict(
            width=d,
            num_heads=cfg.num_heads,
            head_dim=cfg.head_dim,
            ffn_mult=cfg.ffn_mult,
            activation=act,
            dropout=cfg.dropout,
            k=cfg.k,
            distance_dim=cfg.distance_dim,
            num_messages=cfg.num_messages,
            dist_mult=cfg.dist_mult,
            bin_size=cfg.bin_size,
            propagate_dim=d * cfg.ffn_mult if cfg.conv_type != "attention" else None,
        )
        n_layers = 0 if cfg.conv_type == "none" else cfg.num_convs
        self.layers = (
            nn.ModuleList(BACKBONES[cfg.conv_type](hash_seed=i, **backbone_kwargs) for i in range(n_layers))
            if n_layers
            else nn.ModuleList()
        )
        if cfg.task_queries:
            self.queries = nn.Parameter(torch.randn(cfg.num_queries, d) / d**0.5)
            self.context = ffn(cfg.num_queries * d, d, d, act, cfg.dropout)
        else:
            self.context = ffn(d, d, d, act, cfg.dropout)
        h_in = d + F_
        hw = cfg.head_width
        self.head_binary = ffn(h_in, hw, 2, act, cfg.dropout)
        self.head_pid = ffn(h_in, hw, cfg.num_classes, act, cfg.dropout)
        self.head_pt = ffn(h_in, hw, T, act, cfg.dropout)  # per element type log pT ratio
        self.head_angles = ffn(h_in, hw, 6, act, cfg.dropout)  # a, b for eta, sin phi, cos phi
        self.head_energy = ffn(h_in + 1, hw, T, act, cfg.dropout)  # per element type, on top of the E >= |p| floor
        self.head_charge = ffn(h_in, hw, 3, act, cfg.dropout) if cfg.charge_head else None

    def normalise(self, X, mask):
        if self.cfg.input_norm == "none":
            return X
        Xt = transform_torch(X, self.log_mask, self.mm_mask)
        types = X[..., 0].long().clamp(0, self.cfg.n_types - 1)
        Xn = (Xt - self.x_mean[types]) / self.x_std[types]
        return Xn * mask[..., None]

    def forward(self, X, mask=None):
        if mask is None:
            mask = X[..., 0] != 0
        cfg = self.cfg
        B, N, _ = X.shape
        m = mask[..., None].to(X.dtype)
        types = X[..., 0].long().clamp(0, cfg.n_types - 1)
        Xn = self.normalise(X, mask)
        h = self.embed(Xn)
        if cfg.input_encoding == "split":
            h = h.view(B, N, cfg.n_types, cfg.width).gather(2, types[..., None, None].expand(-1, -1, 1, cfg.width))[
                :, :, 0
            ]
        h = h * m
        for layer in self.layers:
            h = layer(h, mask)
        # event context, broadcast-added to every element
        if cfg.task_queries:
            scores = torch.einsum("bnd,qd->bqn", h, self.queries) / cfg.width**0.5
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
            pooled = torch.einsum("bqn,bnd->bqd", torch.softmax(scores, -1), h).reshape(B, -1)
        else:
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        h = (h + self.context(pooled)[:, None, :]) * m
        z = torch.cat([h, Xn], -1)
        binary = self.head_binary(z)
        pid = self.head_pid(z)
        log_pt = self.head_pt(z).gather(-1, types[..., None])[..., 0]
        ab = self.head_angles(z)
        eta = ab[..., 0] * X[..., 2] + ab[..., 1]
        sin_phi = ab[..., 2] * X[..., 3] + ab[..., 3]
        cos_phi = ab[..., 4] * X[..., 4] + ab[..., 5]
        # E floor: log(|p_pred| / E_elem) from the detached pT and eta predictions, so that E >= |p|
        pt_elem = X[..., 1].abs().clamp_min(1e-6)
        e_elem = X[..., 5].abs().clamp_min(1e-6)
        log_p_pred = log_pt.detach() + torch.log(pt_elem) + torch.log(torch.cosh(eta.detach().clamp(-10, 10)))
        floor = log_p_pred - torch.log(e_elem)
        extra = self.head_energy(torch.cat([z, floor[..., None]], -1)).gather(-1, types[..., None])[..., 0]
        log_e = floor + torch.relu(extra)
        momentum = torch.stack([log_pt, eta, sin_phi, cos_phi, log_e], -1) * m
        pu = torch.zeros(B, N, 2, dtype=binary.dtype, device=X.device)
        out = (binary * m, pid * m, momentum, pu)
        if self.head_charge is not None:
            out = out + (self.head_charge(z) * m,)
        return out


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
