"""Upstream MLPF (jpata/particleflow; Pata et al. 2021, "MLPF: efficient machine-learned particle-flow
reconstruction using graph neural networks", Eur. Phys. J. C 81, 381) as the ``particleflow`` model.

The network is upstream's own ``mlpf.model.mlpf.MLPF`` from the PyPI package ``particleflow``
(installed by ``jobs/install_particleflow.sh``; ``pip install hpoq[particleflow]`` names the same
pins). Its ``forward(X, mask)`` returns the tuple MiniMLPF returns, ``(binary [B,N,2], pid [B,N,C],
momentum [B,N,5], pu [B,N,2])``, so hpoq's loss, training loop, checkpoints and data-parallel
backends apply unchanged.

Configuration: upstream's own keys, validated by upstream's pydantic ``MLPFConfig``:

- ``conv_type``: ``attention`` | ``gnn_lsh`` (upstream's top-level key);
- ``model.<key>``: any key of upstream's ``ModelArchitectureConfig`` (``model.input_encoding``,
  ``model.pt_mode``, ...) or of its per-type section (``model.attention.num_convs``,
  ``model.attention.num_heads``, ``model.attention.head_dim``, ``model.attention.dropout_ff``,
  ``model.attention.activation``, ``model.gnn_lsh.width``, ``model.gnn_lsh.bin_size``, ...).

Study-wide values come from the trainer's ``model_params`` (same keys), trial values override
them. A bad key or value fails with its key path, e.g.
``mlpf: model.attention.num_heads: Input should be a valid integer``.

Inputs: upstream feeds raw features (``input_norm: none``, the default for this model). With
``input_norm: standard`` hpoq's per-type transform and standardisation (hpoq.mlpf.features) is
applied to columns 6 and up only: upstream's regression heads take columns 0-5 (type, pT, eta,
sin phi, cos phi, E) raw as reference values, the other columns reach the network only through
its input embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from hpoq.errors import ConfigError

UPSTREAM_VERSION = "3.1.0"
CONV_TYPES = ("attention", "gnn_lsh")
#: the first ``RAW_COLUMNS`` input columns stay raw under input_norm standard (see module doc)
RAW_COLUMNS = 6
#: hpoq's defaults for upstream keys (applied before model_params and the trial config): the math
#: SDPA kernel, which every device has (upstream's default, flash, needs a recent GPU for training)
HPOQ_DEFAULTS = {"model.attention.attention_type": "math"}
INSTALL_HINT = "install it with 'make particleflow' or 'bash jobs/install_particleflow.sh .venv/bin/python'"


def unavailable_reason() -> str | None:
    """None when upstream's model imports, else why not (for test skips and errors)."""
    try:
        import mlpf.conf  # noqa: F401
        import mlpf.model.mlpf  # noqa: F401
    except Exception as exc:  # ImportError, or a dependency failing at import time
        return f"particleflow {UPSTREAM_VERSION} is not importable ({exc.__class__.__name__}: {exc}); {INSTALL_HINT}"
    return None


def is_upstream_key(key: str) -> bool:
    return key == "conv_type" or key.startswith("model.")


def _nested(flat: dict) -> dict:
    """{"model.attention.num_convs": 2} -> {"attention": {"num_convs": 2}} (below ``model``)."""
    out: dict = {}
    for key, value in flat.items():
        parts = key.split(".")[1:]
        if not parts or not all(parts):
            raise ConfigError(f"mlpf: {key!r} is not a model key path (write model.<key> or model.<section>.<key>)")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"mlpf: {key!r} sets a key below {part!r}, which is a value, not a section")
        node[parts[-1]] = value
    return out


def upstream_config(overrides: dict, *, input_dim: int, num_classes: int, elem_types: list):
    """Upstream's validated ``MLPFConfig`` from ``conv_type`` and ``model.<key>`` overrides."""
    reason = unavailable_reason()
    if reason:
        raise ConfigError(f"mlpf: model particleflow: {reason}")
    import pydantic
    from mlpf.conf import MLPFConfig

    values = dict(HPOQ_DEFAULTS, **overrides)
    conv_type = values.pop("conv_type", "attention")
    if conv_type not in CONV_TYPES:
        raise ConfigError(
            f"mlpf: conv_type must be one of {', '.join(CONV_TYPES)} for model particleflow, got {conv_type!r}"
        )
    model = _nested({k: v for k, v in values.items() if k.startswith("model.")})
    for section in CONV_TYPES:
        model.setdefault(section, {})
    model["type"] = conv_type
    raw = {
        "dataset": "clic",
        "data_dir": "",
        "conv_type": conv_type,
        "model": model,
        "input_dim": int(input_dim),
        "num_classes": int(num_classes),
        "elemtypes_nonzero": [int(t) for t in elem_types if int(t) != 0],
    }
    try:
        return MLPFConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"mlpf: {path}: {err['msg']}"
            + (f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else "")
        ) from None


def config_record(cfg) -> dict:
    """The JSON-able architecture part of an upstream config (for checkpoint metadata)."""
    return {
        "conv_type": cfg.conv_type.value,
        "model": cfg.model.model_dump(mode="json"),
        "input_dim": cfg.input_dim,
        "num_classes": cfg.num_classes,
        "elemtypes_nonzero": cfg.elemtypes_nonzero,
    }


def bin_size(cfg) -> int:
    """The LSH bin size (events are padded to a multiple of it), 1 for attention."""
    return int(cfg.model.gnn_lsh.bin_size) if cfg.conv_type.value == "gnn_lsh" else 1


class UpstreamMLPF(nn.Module):
    """Upstream's ``MLPF`` behind hpoq's optional input standardisation of columns >= RAW_COLUMNS."""

    def __init__(self, cfg, input_norm: str = "none", x_mean=None, x_std=None):
        super().__init__()
        from mlpf.model.mlpf import MLPF

        from hpoq.mlpf.features import column_plan_tensors

        if input_norm not in ("none", "standard"):
            raise ConfigError(f"mlpf: input_norm must be none or standard, got {input_norm!r}")
        self.input_norm = input_norm
        self.net = MLPF(cfg)
        n_types, n_feat = max(cfg.elemtypes_nonzero) + 1, cfg.input_dim
        log_mask, mm_mask = column_plan_tensors(n_types, n_feat)
        self.register_buffer("log_mask", log_mask, persistent=False)
        self.register_buffer("mm_mask", mm_mask, persistent=False)
        if input_norm == "standard":
            self.register_buffer("x_mean", torch.as_tensor(x_mean, dtype=torch.float32))
            self.register_buffer("x_std", torch.as_tensor(x_std, dtype=torch.float32))

    def normalise(self, X, mask):
        if self.input_norm == "none":
            return X
        from hpoq.mlpf.features import transform_torch

        types = X[..., 0].long().clamp(0, self.x_mean.shape[0] - 1)
        Xn = (transform_torch(X, self.log_mask, self.mm_mask) - self.x_mean[types]) / self.x_std[types]
        Xn = Xn * mask[..., None]
        return torch.cat([X[..., :RAW_COLUMNS], Xn[..., RAW_COLUMNS:]], -1)

    def forward(self, X, mask=None):
        if mask is None:
            mask = X[..., 0] != 0
        return self.net(self.normalise(X, mask), mask)
