"""The ``mlpf`` trainer plugin: MiniMLPF or upstream's MLPF on HDF5 events, data-parallel over the trial group.

Study file::

    trainer:
      name: mlpf
      params: {data: data/mlpf-synth, preset: tiny, R: 27, backend: auto, seed: 0}

``model: particleflow`` trains upstream's own network (hpoq.mlpf.upstream; install with
``make particleflow``); ``model_params`` then holds study-wide upstream keys (``conv_type``,
``model.attention.num_heads``, ...) that trial configs override. ``objective`` selects the curve:
``val_loss`` (default) or a FastJet jet metric (``jet_iqr_over_median``, ``jet_median_deviation``,
``jet_match_fraction``; the last one is maximised). ``val_loss: batch_mean`` switches to upstream's
mean of per-batch means (see hpoq.mlpf.training).

``train`` is called on every rank of a trial group with the group's communicator (or None); all
ranks return the same per-epoch ``val_loss`` list (docs/mlpf-data.md#outputs-loss-and-the-hpo-metric, minimised).
Divergence (non-finite
loss) and CUDA out-of-memory raise :class:`TrainerError`; bad parameters raise ConfigError.
The hyperparameters a trial config may set are :data:`hpoq.mlpf.training.TRAIN_DEFAULTS` and
:data:`hpoq.mlpf.training.MODEL_KEYS` (see :mod:`hpoq.mlpf.search_space`).
"""

from __future__ import annotations

from hpoq.errors import ConfigError
from hpoq.registry import Boolean, Interval, Mapping, Options, Text
from hpoq.trainers.base import Trainer, TrainerError


class MLPFTrainer(Trainer):
    name = "mlpf"
    parameter_constraints = {
        "data": [Text()],
        "preset": [Text()],
        "R": [Interval(int, 1, None)],
        "backend": [Options("auto", "horovod", "torch", "none")],
        "seed": [Interval(int, 0, None)],
        "device": [Options("auto", "cpu", "cuda")],
        "precision": [Options("auto", "fp32", "bf16")],
        "micro_batches": [Interval(int, 1, None)],
        "max_train_events": [Interval(int, 1, None), None],
        "max_val_events": [Interval(int, 1, None), None],
        "val_token_budget": [Interval(int, 1, None)],
        "num_threads": [Interval(int, 1, None), None],
        "verify_checksums": [Boolean()],
        "store_host": [Text(), None],
        "log_metrics": [Boolean()],
        "secondary_metrics": [Boolean()],
        "in_memory": [Options("auto"), Boolean()],
        # literal lists (not hpoq.mlpf.training's tuples): naming the trainer must not import torch
        "model": [Options("mini", "particleflow")],
        "model_params": [Mapping(), None],
        "input_norm": [Options("auto", "standard", "none")],
        "pad_multiple": [Options("auto"), Interval(int, 1, None)],
        "val_loss": [Options("global", "batch_mean")],
        "objective": [Options("val_loss", "jet_iqr_over_median", "jet_median_deviation", "jet_match_fraction")],
        "deterministic": [Boolean()],
    }
    metric = "val_loss"
    mode = "min"
    #: parameters holding paths, resolved against the study file's directory
    path_params = ("data",)

    def __init__(
        self,
        data: str,
        preset: str = "tiny",
        R: int = 10,
        backend: str = "auto",
        seed: int = 0,
        device: str = "auto",
        precision: str = "auto",
        micro_batches: int = 1,
        max_train_events: int | None = None,
        max_val_events: int | None = None,
        val_token_budget: int = 8192,
        num_threads: int | None = 1,
        verify_checksums: bool = True,
        store_host: str | None = None,
        log_metrics: bool = True,
        secondary_metrics: bool = False,
        in_memory="auto",
        model: str = "mini",
        model_params: dict | None = None,
        input_norm: str = "auto",
        pad_multiple="auto",
        val_loss: str = "global",
        objective: str = "val_loss",
        deterministic: bool = False,
    ):
        params = dict(
            data=data,
            preset=preset,
            R=R,
            backend=backend,
            seed=seed,
            device=device,
            precision=precision,
            micro_batches=micro_batches,
            max_train_events=max_train_events,
            max_val_events=max_val_events,
            val_token_budget=val_token_budget,
            num_threads=num_threads,
            verify_checksums=verify_checksums,
            store_host=store_host,
            log_metrics=log_metrics,
            secondary_metrics=secondary_metrics,
            in_memory=in_memory,
            model=model,
            model_params=model_params,
            input_norm=input_norm,
            pad_multiple=pad_multiple,
            val_loss=val_loss,
            objective=objective,
            deterministic=deterministic,
        )
        super().__init__(**params)
        from hpoq.mlpf.distributed import BACKENDS
        from hpoq.mlpf.model import PRESETS

        if backend not in BACKENDS:
            raise ConfigError(f"trainer.params.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if preset not in PRESETS:
            raise ConfigError(f"trainer.params.preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        if not isinstance(R, int) or R < 1:
            raise ConfigError(f"trainer.params.R must be a positive integer (the horizon in epochs), got {R!r}")
        from hpoq.mlpf.training import OBJECTIVES

        self._settings().validate()
        self._check_data(data)
        self.metric = objective
        self.mode = OBJECTIVES[objective][1]
        if model == "particleflow":
            self._check_upstream(model_params or {})

    @staticmethod
    def _check_data(data: str) -> None:
        """A missing, damaged or empty dataset fails the study at validation (exit 2, nothing written), not
        every trial at its first epoch."""
        from hpoq.mlpf.events import read_manifest

        try:
            manifest = read_manifest(data)
        except ConfigError as exc:
            raise ConfigError(f"trainer.params.data: {exc}") from None
        for split in ("train", "val"):
            n = int((manifest["splits"].get(split) or {}).get("n_events", 0))
            if n < 1:
                raise ConfigError(
                    f"trainer.params.data: {data}: the {split} split has no events; regenerate the dataset "
                    "('hpoq generate-data' with --val-fraction > 0, or 'hpoq convert-events')"
                )

    @staticmethod
    def _check_upstream(model_params: dict) -> None:
        """Fail at study validation, not in the first trial: upstream importable, its keys valid."""
        from hpoq.mlpf import upstream

        reason = upstream.unavailable_reason()
        if reason:
            raise ConfigError(f"trainer.params.model: particleflow: {reason}")
        try:  # the data fixes input_dim / num_classes later; CLIC's values check everything else
            upstream.upstream_config(model_params, input_dim=17, num_classes=6, elem_types=[0, 1, 2])
        except ConfigError as exc:
            raise ConfigError(f"trainer.params.model_params: {str(exc).removeprefix('mlpf: ')}") from None

    def _settings(self):
        from hpoq.mlpf.training import TrainSettings

        return TrainSettings(**self.params)

    def train(self, config: dict, start_epoch: int, end_epoch: int, checkpoint_dir: str, comm=None) -> list[float]:
        from hpoq.mlpf.training import TrainingFailed, train_unit

        try:
            return train_unit(self._settings(), config, start_epoch, end_epoch, checkpoint_dir, comm)
        except TrainingFailed as exc:
            raise TrainerError(str(exc), kind=exc.kind) from None

    def wants_gpu(self) -> bool:
        """On CUDA unless ``device: cpu`` or no GPU is visible (the runtime then gives this rank its own GPU)."""
        if self.params["device"] == "cpu":
            return False
        import torch

        return torch.cuda.is_available()
