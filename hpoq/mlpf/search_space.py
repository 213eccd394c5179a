"""MLPF search spaces in the study file's ``space:`` format (hpoq.study.space; docs/mlpf-data.md#search-spaces).

``SEARCH_SPACE`` is the project's recommended live-training space. Conditional parameters are
explicit: ``num_heads``/``head_dim`` exist only when ``conv_type`` is ``attention``; ``width`` and
``ffn_mult`` only for ``knn``/``lsh``; ``k``, ``distance_dim``, ``num_messages`` only for ``knn``;
``bin_size`` only for ``lsh``. Paste :func:`space_yaml` into a study file, e.g.::

    trainer: {name: mlpf, params: {data: data/mlpf, preset: tiny, R: 27, backend: auto}}
    space:   <the output of space_yaml()>

``SEARCH_SPACE_CPU`` has the same structure with smaller widths and depths, so that 20 trials x
10 epochs fit in minutes on two CPU cores (benchmarks/mlpf.py, CI-sized studies).
The loss-weight parameters (``focal_gamma``, ``binary_weight``) are optional: ``val_loss`` always
uses the default weights, so trials stay comparable (docs/mlpf-data.md#outputs-loss-and-the-hpo-metric).

``SEARCH_SPACE_UPSTREAM`` (preset ``upstream``) is particleflow's own Ray Tune space
(mlpf/raytune/search_space.py of particleflow 3.1.0) in upstream's own key names, for the trainer's
``model: particleflow``: optimizer adamw / lamb, lr 2e-4 / 4e-4 / 8e-4, attention with 1-5 layers,
8 / 16 / 32 heads of dimension 8 / 16 / 32, feed-forward dropout 0 / 0.01 / 0.1 / 0.2 and the
activations elu / relu / relu6 / leakyrelu. Upstream draws every value with ``tune.choice``
(uniform over the listed values); ``num_convs`` is an ``int`` in [1, 5] here, the same
distribution. ``SPACE_PRESETS`` names all spaces; ``space_yaml("upstream")`` prints one.
"""

from __future__ import annotations

SEARCH_SPACE: dict = {
    "optimizer": {"type": "choice", "values": ["adamw", "lamb"]},
    "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
    "weight_decay": {"type": "choice", "values": [0.0, 1.0e-3, 1.0e-2, 1.0e-1]},
    "schedule": {"type": "choice", "values": ["cosine", "onecycle", "constant"]},
    "warmup_frac": {"type": "choice", "values": [0.0, 0.05]},
    "token_budget": {"type": "choice", "values": [2048, 4096, 8192, 16384]},
    "conv_type": {"type": "choice", "values": ["attention", "knn", "lsh", "none"]},
    "num_convs": {"type": "int", "low": 0, "high": 6},
    "dropout": {"type": "choice", "values": [0.0, 0.01, 0.1, 0.2]},
    "activation": {"type": "choice", "values": ["elu", "relu", "relu6", "leakyrelu", "gelu"]},
    "input_encoding": {"type": "choice", "values": ["split", "joint"]},
    "task_queries": {"type": "choice", "values": [True, False]},
    "num_heads": {"type": "choice", "values": [2, 4, 8, 16], "when": {"conv_type": "attention"}},
    "head_dim": {"type": "choice", "values": [8, 16, 32], "when": {"conv_type": "attention"}},
    "width": {"type": "choice", "values": [32, 64, 128, 256], "when": {"conv_type": ["knn", "lsh"]}},
    "ffn_mult": {"type": "choice", "values": [1, 2, 4], "when": {"conv_type": ["knn", "lsh"]}},
    "k": {"type": "choice", "values": [4, 8, 16, 32], "when": {"conv_type": "knn"}},
    "distance_dim": {"type": "choice", "values": [4, 8, 16, 32], "when": {"conv_type": "knn"}},
    "num_messages": {"type": "choice", "values": [1, 2, 3], "when": {"conv_type": "knn"}},
    "bin_size": {"type": "choice", "values": [32, 64, 128, 256], "when": {"conv_type": "lsh"}},
}

#: optional loss-weight parameters (docs/mlpf-data.md#search-spaces, "loss")
LOSS_WEIGHT_SPACE: dict = {
    "focal_gamma": {"type": "choice", "values": [0.0, 1.0, 2.0, 3.0]},
    "binary_weight": {"type": "choice", "values": [1.0, 10.0]},
}

SEARCH_SPACE_CPU: dict = {
    **{
        k: SEARCH_SPACE[k]
        for k in (
            "optimizer",
            "lr",
            "weight_decay",
            "schedule",
            "warmup_frac",
            "dropout",
            "activation",
            "input_encoding",
            "task_queries",
        )
    },
    "token_budget": {"type": "choice", "values": [1024, 2048, 4096]},
    "conv_type": {"type": "choice", "values": ["attention", "knn", "lsh", "none"]},
    "num_convs": {"type": "int", "low": 0, "high": 3},
    "num_heads": {"type": "choice", "values": [2, 4], "when": {"conv_type": "attention"}},
    "head_dim": {"type": "choice", "values": [8, 16], "when": {"conv_type": "attention"}},
    "width": {"type": "choice", "values": [16, 32, 48], "when": {"conv_type": ["knn", "lsh"]}},
    "ffn_mult": {"type": "choice", "values": [1, 2], "when": {"conv_type": ["knn", "lsh"]}},
    "k": {"type": "choice", "values": [4, 8, 16], "when": {"conv_type": "knn"}},
    "distance_dim": {"type": "choice", "values": [4, 8], "when": {"conv_type": "knn"}},
    "num_messages": {"type": "choice", "values": [1, 2], "when": {"conv_type": "knn"}},
    "bin_size": {"type": "choice", "values": [32, 64], "when": {"conv_type": "lsh"}},
}


SEARCH_SPACE_UPSTREAM: dict = {
    "optimizer": {"type": "choice", "values": ["adamw", "lamb"]},
    "lr": {"type": "choice", "values": [2.0e-4, 4.0e-4, 8.0e-4]},
    "conv_type": {"type": "choice", "values": ["attention"]},
    "model.attention.num_convs": {"type": "int", "low": 1, "high": 5},
    "model.attention.num_heads": {"type": "choice", "values": [8, 16, 32]},
    "model.attention.head_dim": {"type": "choice", "values": [8, 16, 32]},
    "model.attention.dropout_ff": {"type": "choice", "values": [0.0, 0.01, 0.1, 0.2]},
    "model.attention.activation": {"type": "choice", "values": ["elu", "relu", "relu6", "leakyrelu"]},
}

#: preset name -> space (``recommended`` and ``cpu`` for MiniMLPF, ``upstream`` for model: particleflow)
SPACE_PRESETS: dict = {"recommended": SEARCH_SPACE, "cpu": SEARCH_SPACE_CPU, "upstream": SEARCH_SPACE_UPSTREAM}


def space_yaml(space: dict | str | None = None) -> str:
    """The space (a mapping or a preset name) as a YAML fragment for a study file's ``space:`` section."""
    import yaml

    from hpoq.errors import ConfigError

    if isinstance(space, str):
        if space not in SPACE_PRESETS:
            raise ConfigError(f"unknown MLPF search-space preset {space!r}; choose one of {', '.join(SPACE_PRESETS)}")
        space = SPACE_PRESETS[space]
    return yaml.safe_dump(space or SEARCH_SPACE, sort_keys=False, default_flow_style=None)
