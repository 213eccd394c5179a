"""One MLPF work unit: train a configuration from epoch ``start`` to ``end`` data-parallel over a
trial group, validate after every epoch, checkpoint at the end (docs/mlpf-data.md#model-and-training "Training loop",
1.5, 5; docs/runtime.md#data-parallelism-inside-a-trial).

Exactness rules that make resume equal to training straight through:
- the LR is a function of the global step and the horizon ``R`` (never of ``end``);
- the batch plan is a function of (seed, epoch) and the cursor is in the checkpoint;
- the dropout RNG is re-seeded at every epoch from (seed, config, epoch, rank) and its state is
  saved too; model, optimizer (incl. moments), global step and epoch are in the checkpoint.

Models (``TrainSettings.model``, built through :data:`MODEL_FACTORIES`): ``mini`` (MiniMLPF,
hpoq.mlpf.model) and ``particleflow`` (upstream's MLPF, hpoq.mlpf.upstream). Both return the same
output tuple, so the loss, loop, checkpoints and backends are shared.

Metric: ``val_loss``, the docs/mlpf-data.md#outputs-loss-and-the-hpo-metric total with the *default* weights over
the whole val split.
``val_loss: global`` (default): from all-reduced sums and counts over the split (never means of
per-rank means), so it does not depend on how the split is batched or over how many ranks.
``val_loss: batch_mean``: upstream MLPF's convention (mlpf/model/training.py ``eval_epoch``): each
val batch's loss normalised by its own counts, then the mean over all batches of all ranks; it
weights small batches as much as large ones and changes with ``val_token_budget`` and the number
of ranks. ``objective`` may instead select a jet metric (:data:`OBJECTIVES`) as the curve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hpoq.atomic import atomic_path, write_atomic
from hpoq.errors import ConfigError
from hpoq.mlpf import events as ev
from hpoq.mlpf import jets, upstream
from hpoq.mlpf.batches import LazyEvents, PreparedEvents
from hpoq.mlpf.distributed import make_backend, pick_device
from hpoq.mlpf.loss import DEFAULT_WEIGHTS, LossWeights, combine, loss_sums
from hpoq.mlpf.model import MiniMLPF, ModelConfig, model_config
from hpoq.mlpf.optim import OPTIMIZERS, SCHEDULES, lr_at, make_optimizer
from hpoq.mlpf.sampler import DistributedBatchPlan, validation_batches
from hpoq.registry import Interval, Options, check_number, check_value
from hpoq.seeding import derive_seed

CHECKPOINT = "mlpf-state.pt"
CHECKPOINT_META = "mlpf-checkpoint.json"
METRICS_LOG = "mlpf-metrics.jsonl"

#: training hyperparameters a trial config may set, with their defaults
TRAIN_DEFAULTS = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup_frac": 0.0,
    "token_budget": 4096,
    "focal_gamma": 2.0,
    "binary_weight": 10.0,
}
#: architecture keys a trial config may set (ModelConfig fields the data does not fix)
MODEL_KEYS = tuple(
    f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("input_dim", "n_types", "num_classes")
)
MODELS = ("mini", "particleflow")
VAL_LOSS_MODES = ("global", "batch_mean")
#: curve a work unit returns -> (key in the evaluation result, direction); jet metrics: hpoq.mlpf.jets
OBJECTIVES = {
    "val_loss": ("total", "min"),
    "jet_iqr_over_median": ("jet_response_iqr_over_median", "min"),  # jet pT resolution
    "jet_median_deviation": ("jet_median_deviation", "min"),  # |median jet response - 1|
    "jet_match_fraction": ("jet_match_fraction", "max"),  # gen jets with a matched jet
}
INPUT_NORMS = ("auto", "standard", "none")


class TrainingFailed(Exception):
    """Divergence (non-finite loss) or out-of-memory: the trial fails, the study goes on.

    ``kind``: ``oom`` for out of memory, else None (the runtime's ``trainer``)."""

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        self.kind = kind


@dataclass
class TrainSettings:
    """Per-study settings (the trainer's ``params``); units: epochs, events, tokens = elements."""

    data: str
    preset: str = "tiny"
    R: int = 10  # horizon in epochs: the LR schedule spans R epochs
    backend: str = "auto"  # auto | horovod | torch | none
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 autocast on CUDA where supported, fp32 on CPU) | fp32 | bf16 (CPU too)
    micro_batches: int = 1  # batches per rank per optimiser step (gradient accumulation)
    max_train_events: int | None = None
    max_val_events: int | None = None
    val_token_budget: int = 8192
    num_threads: int | None = None  # torch.set_num_threads per rank (None: leave as is)
    verify_checksums: bool = True
    store_host: str | None = None  # torch backend: TCPStore host for multi-node groups
    log_metrics: bool = True
    secondary_metrics: bool = False  # jet response and MET resolution in the metrics log (costs val time)
    in_memory: object = "auto"  # auto | true | false: hold splits in memory (auto: up to 1 GB)
    model: str = "mini"  # mini (MiniMLPF) | particleflow (upstream MLPF, hpoq.mlpf.upstream)
    model_params: dict | None = None  # particleflow: study-wide conv_type / model.<key> values (trials override)
    input_norm: str = "auto"  # auto (mini: standard; particleflow: none, upstream's raw inputs) | standard
    # | none
    pad_multiple: object = "auto"  # events padded to a multiple of this (auto: 8 on CUDA, 1 on CPU; x LSH bin size)
    val_loss: str = "global"  # global (sums / global counts) | batch_mean (upstream: mean of per-batch means)
    objective: str = "val_loss"  # the returned curve: a key of OBJECTIVES
    deterministic: bool = False  # deterministic CUDA kernels (bitwise-equal resume on GPU; slower)

    def validate(self) -> "TrainSettings":
        for name, allowed in (
            ("model", MODELS),
            ("val_loss", VAL_LOSS_MODES),
            ("objective", tuple(OBJECTIVES)),
            ("input_norm", INPUT_NORMS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"trainer.params.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        check_value("trainer.params.pad_multiple", self.pad_multiple, [Options("auto"), Interval(int, 1, None)])
        if self.model_params is not None:
            if self.model != "particleflow":
                raise ConfigError(
                    "trainer.params.model_params: only for model particleflow (MiniMLPF keys go in the space)"
                )
            if not isinstance(self.model_params, dict):
                raise ConfigError(
                    f"trainer.params.model_params must be a mapping, got {type(self.model_params).__name__}"
                )
            bad = [k for k in self.model_params if not (isinstance(k, str) and upstream.is_upstream_key(k))]
            if bad:
                raise ConfigError(f"trainer.params.model_params: {bad[0]!r} is not conv_type or a model.<key> path")
        return self


def split_config(config: dict, model_kind: str = "mini") -> tuple[dict, dict]:
    """(model overrides, training hyperparameters) of a trial config; unknown keys are an error.

    ``mini``: model keys are :data:`MODEL_KEYS`; ``particleflow``: upstream's ``conv_type`` and
    ``model.<key>`` paths (validated later against upstream's config class).
    """
    model, train = {}, dict(TRAIN_DEFAULTS)
    for key, value in config.items():
        if key in TRAIN_DEFAULTS:
            train[key] = value
        elif model_kind == "particleflow" and upstream.is_upstream_key(key):
            model[key] = value
        elif model_kind == "mini" and key in MODEL_KEYS:
            if key in ("task_queries", "charge_head") and isinstance(value, str):
                value = value.lower() in ("on", "true", "yes", "1")
            model[key] = value
        else:
            keys = "conv_type, model.<key>" if model_kind == "particleflow" else ", ".join(MODEL_KEYS)
            raise ConfigError(
                f"mlpf: unknown hyperparameter {key!r} for model {model_kind} (training: "
                f"{', '.join(TRAIN_DEFAULTS)}; model: {keys})"
            )
    if train["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"mlpf: optimizer must be one of {', '.join(OPTIMIZERS)}, got {train['optimizer']!r}")
    if train["schedule"] not in SCHEDULES:
        raise ConfigError(f"mlpf: schedule must be one of {', '.join(SCHEDULES)}, got {train['schedule']!r}")
    for key in ("lr", "weight_decay", "warmup_frac", "focal_gamma", "binary_weight"):
        check_number(f"mlpf: {key}", train[key], 0)
    if not isinstance(train["token_budget"], int) or train["token_budget"] < 1:
        raise ConfigError(f"mlpf: token_budget must be a positive integer, got {train['token_budget']!r}")
    return model, train


# ------------------------------------------------------------------ data (cached per process)

_DATA_CACHE: dict = {}
#: in_memory: auto keeps a split in memory up to this size (X, ytarget, ycand as float32)
IN_MEMORY_BYTES = 1 << 30
BYTES_PER_ELEMENT = 4 * (17 + 14 + 14)


def load_data(settings: TrainSettings):
    """(manifest, train PreparedEvents, val PreparedEvents, train shard bounds), cached per process."""
    key = (os.path.abspath(settings.data), settings.max_train_events, settings.max_val_events, settings.in_memory)
    manifest = ev.read_manifest(settings.data)
    cached = _DATA_CACHE.get(key)
    if cached is not None and cached[0]["content_hash"] == manifest["content_hash"]:
        return cached
    if "val" not in manifest["splits"]:
        raise ConfigError(f"{settings.data}: the dataset has no val split (generate it with --val-fraction > 0)")
    if settings.in_memory not in ("auto", True, False):
        raise ConfigError(f"mlpf: in_memory must be auto, true or false, got {settings.in_memory!r}")
    splits = {}
    for split, limit in (("train", settings.max_train_events), ("val", settings.max_val_events)):
        n_el = manifest["splits"][split]["n_elements"]
        in_memory = settings.in_memory if settings.in_memory != "auto" else n_el * BYTES_PER_ELEMENT <= IN_MEMORY_BYTES
        if in_memory:
            splits[split] = PreparedEvents(
                ev.load_split(
                    settings.data, split, manifest=manifest, verify_checksum=settings.verify_checksums, max_events=limit
                )
            )
        else:
            splits[split] = LazyEvents(
                settings.data, split, manifest, max_events=limit, verify_checksum=settings.verify_checksums
            )
    train, val = splits["train"], splits["val"]
    bounds, start = [], 0
    for entry in manifest["splits"]["train"]["shards"]:
        end = min(start + entry["n_events"], train.n_events)
        if end > start:
            bounds.append((start, end))
        start = end
    result = (manifest, train, val, bounds)
    _DATA_CACHE.clear()
    _DATA_CACHE[key] = result
    return result


# ------------------------------------------------------------------ checkpoints


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def rng_state(device) -> dict:
    """Every RNG the training loop draws from: torch's CPU generator and, on CUDA, the device's."""
    state = {"rng_cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    """Restore what :func:`rng_state` saved (a CUDA state only onto a CUDA device)."""
    torch.set_rng_state(state["rng_cpu"].cpu())
    if torch.device(device).type == "cuda" and "rng_cuda" in state:
        torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)


def save_checkpoint(
    directory: Path, model, optimizer, plan, global_step: int, epoch: int, meta: dict, device="cpu"
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    inner = optimizer.state_dict()
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": inner,
        "global_step": int(global_step),
        "epoch": int(epoch),
        "sampler": plan.state_dict(),
        **rng_state(device),
    }
    _atomic_torch_save(state, directory / CHECKPOINT)
    write_atomic(
        directory / CHECKPOINT_META,
        json.dumps(dict(meta, epoch=int(epoch), global_step=int(global_step)), indent=1, sort_keys=True),
    )


def load_checkpoint(directory: Path, expected_epoch: int, meta: dict, device) -> dict:
    path, meta_path = directory / CHECKPOINT, directory / CHECKPOINT_META
    if not path.is_file() or not meta_path.is_file():
        raise ConfigError(f"mlpf: no checkpoint in {directory} to resume from epoch {expected_epoch}")
    saved = json.loads(meta_path.read_text())
    if saved.get("epoch") != expected_epoch:
        raise ConfigError(f"mlpf: checkpoint in {directory} is at epoch {saved.get('epoch')}, not {expected_epoch}")
    for key in ("config", "model", "R", "data_hash", "world_size", "micro_batches"):
        if saved.get(key) != meta.get(key):
            raise ConfigError(
                f"mlpf: checkpoint in {directory} was written with a different {key} "
                f"({saved.get(key)!r} != {meta.get(key)!r})"
            )
    return torch.load(path, map_location=device, weights_only=True)


# ------------------------------------------------------------------ the model factory seam


@dataclass
class ModelSpec:
    """A validated architecture: ``record`` (JSON, checkpoint metadata), ``pad_multiple`` the model
    needs (LSH bin size, else 1) and ``build()`` -> the nn.Module (call after seeding)."""

    record: dict
    pad_multiple: int
    build: Callable


def _mini_spec(settings: TrainSettings, model_over: dict, manifest: dict) -> ModelSpec:
    if settings.input_norm != "auto":
        model_over = {"input_norm": settings.input_norm, **model_over}
    mcfg = model_config(
        settings.preset,
        **model_over,
        input_dim=int(manifest["input_dim"]),
        n_types=int(max(manifest["elem_types"])) + 1,
        num_classes=int(manifest["num_classes"]),
    )
    stats = manifest["stats"]
    return ModelSpec(
        dataclasses.asdict(mcfg), 1, lambda: MiniMLPF(mcfg, np.asarray(stats["x_mean"]), np.asarray(stats["x_std"]))
    )


def _particleflow_spec(settings: TrainSettings, model_over: dict, manifest: dict) -> ModelSpec:
    values = {**(settings.model_params or {}), **model_over}
    cfg = upstream.upstream_config(
        values,
        input_dim=int(manifest["input_dim"]),
        num_classes=int(manifest["num_classes"]),
        elem_types=manifest["elem_types"],
    )
    norm = "none" if settings.input_norm == "auto" else settings.input_norm
    stats = manifest["stats"]
    record = dict(upstream.config_record(cfg), input_norm=norm, upstream_version=upstream.UPSTREAM_VERSION)
    return ModelSpec(
        record, upstream.bin_size(cfg), lambda: upstream.UpstreamMLPF(cfg, norm, stats["x_mean"], stats["x_std"])
    )


#: model name -> f(settings, model overrides of the trial config, manifest) -> ModelSpec
MODEL_FACTORIES: dict[str, Callable[..., ModelSpec]] = {"mini": _mini_spec, "particleflow": _particleflow_spec}


def pad_multiple(settings: TrainSettings, spec: ModelSpec, device) -> int:
    """Batches are padded to this many elements: the setting (auto: 8 on CUDA, 1 on CPU), made a
    multiple of the model's own need (upstream's LSH reshapes events into bins of ``bin_size``)."""
    base = (8 if device.type == "cuda" else 1) if settings.pad_multiple == "auto" else int(settings.pad_multiple)
    return math.lcm(base, spec.pad_multiple)


def uses_bf16(precision: str, device) -> bool:
    """bf16 autocast? ``auto``: on a CUDA device that supports bf16 (compute capability 8.0+), fp32
    elsewhere; ``bf16``: on any device (CPU autocast too: slow, but the same code path); ``fp32``: never."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"mlpf: precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "auto":
        return torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported()
    return precision == "bf16"


def use_deterministic_cuda(on: bool = True) -> None:
    """Deterministic CUDA kernels (``deterministic: true``): a resumed unit then equals the unit trained
    straight through bit for bit on GPUs too (atomics in scatter/index backward make it differ in the
    last bits otherwise). cuBLAS needs its workspace setting before its first call."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(on)


# ------------------------------------------------------------------ the unit


def train_unit(
    settings: TrainSettings,
    config: dict,
    start_epoch: int,
    end_epoch: int,
    checkpoint_dir,
    comm=None,
    return_state: bool = False,
):
    """Train ``config`` from ``start_epoch`` to ``end_epoch``; the val_loss per epoch (same on all ranks).

    With ``return_state`` also this rank's final model ``state_dict`` (tests, benchmarks).
    """
    if not (0 <= start_epoch < end_epoch):
        raise ConfigError(f"mlpf: need 0 <= start_epoch < end_epoch, got {start_epoch}, {end_epoch}")
    if end_epoch > settings.R:
        raise ConfigError(f"mlpf: end_epoch {end_epoch} exceeds the horizon R = {settings.R} (set trainer param R)")
    if settings.micro_batches < 1:
        raise ConfigError(f"mlpf: micro_batches must be >= 1, got {settings.micro_batches}")
    settings.validate()
    model_over, hp = split_config(dict(config), settings.model)
    if settings.num_threads:
        torch.set_num_threads(int(settings.num_threads))
    manifest, train, val, bounds = load_data(settings)
    spec = MODEL_FACTORIES[settings.model](settings, model_over, manifest)
    device = pick_device(settings.device, comm)
    use_bf16 = uses_bf16(settings.precision, device)
    if device.type == "cuda":
        use_deterministic_cuda(settings.deterministic)
    cfg_json = json.dumps(config, sort_keys=True, default=str)
    backend = make_backend(settings.backend, comm, device, store_host=settings.store_host)
    try:
        curve, model = _run(
            settings,
            hp,
            spec,
            cfg_json,
            manifest,
            train,
            val,
            bounds,
            start_epoch,
            end_epoch,
            Path(checkpoint_dir),
            backend,
            device,
            use_bf16,
        )
        return (curve, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}) if return_state else curve
    except torch.cuda.OutOfMemoryError as exc:  # outside the training step (validation, the model's .to(device))
        raise TrainingFailed(f"out of memory: {str(exc)[:100]}", kind="oom") from None
    finally:
        backend.close()
        if device.type == "cuda":  # give the failed (or finished) unit's cached blocks back for the next unit
            torch.cuda.empty_cache()


def _run(
    settings,
    hp,
    spec,
    cfg_json,
    manifest,
    train,
    val,
    bounds,
    start_epoch,
    end_epoch,
    ckpt_dir,
    backend,
    device,
    use_bf16,
) -> list[float]:
    rank, world = backend.rank, backend.size
    torch.manual_seed(derive_seed(settings.seed, "mlpf-init", cfg_json))
    model = spec.build().to(device)
    optimizer = make_optimizer(hp["optimizer"], model.parameters(), hp["lr"], hp["weight_decay"])
    plan = DistributedBatchPlan(
        train.n_elements,
        bounds,
        hp["token_budget"],
        derive_seed(settings.seed, "mlpf-sampler"),
        world_size=world,
        rank=rank,
        micro_batches=settings.micro_batches,
    )
    steps_per_epoch = plan.steps_per_epoch(0)
    if steps_per_epoch < 1:
        raise ConfigError(
            f"mlpf: token_budget {hp['token_budget']} leaves no full step on {world} rank(s) "
            f"x {settings.micro_batches} micro-batches for {train.n_events} training events"
        )
    total_steps = settings.R * steps_per_epoch
    weights = LossWeights(binary=float(hp["binary_weight"]), focal_gamma=float(hp["focal_gamma"]))
    meta = {
        "config": json.loads(cfg_json),
        "model": spec.record,
        "R": settings.R,
        "data_hash": manifest["content_hash"],
        "world_size": world,
        "micro_batches": settings.micro_batches,
        "backend": backend.name,
        "preset": settings.preset,
        "model_kind": settings.model,
        "val_loss_mode": settings.val_loss,
        "objective": settings.objective,
    }
    optimizer = backend.wrap(model, optimizer, settings.micro_batches)
    global_step = 0
    if start_epoch > 0:
        global_step = _restore(load_checkpoint(ckpt_dir, start_epoch, meta, device), model, optimizer, plan, device)
    backend.broadcast(model, optimizer)
    pad = pad_multiple(settings, spec, device)
    secondary = settings.secondary_metrics or settings.objective != "val_loss"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    curve = []
    lr = lr_at(global_step, total_steps, float(hp["lr"]), hp["schedule"], float(hp["warmup_frac"]))
    for epoch in range(start_epoch, end_epoch):
        t0, c0 = time.perf_counter(), time.process_time()
        torch.manual_seed(derive_seed(settings.seed, "mlpf-dropout", cfg_json, epoch, rank))
        model.train()
        train_acc = torch.zeros(3, dtype=torch.float64)  # loss sum over steps, steps, events
        for micro in plan.steps(epoch):
            batches = [train.batch(evs, pad_multiple=pad, device=device) for evs in micro]
            step_loss = _accumulate_gradients(model, batches, backend, weights, autocast, device, epoch)
            backend.reduce_gradients(model)
            lr = lr_at(global_step, total_steps, float(hp["lr"]), hp["schedule"], float(hp["warmup_frac"]))
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            train_acc += torch.tensor([step_loss, 1.0, float(sum(len(e) for e in micro))], dtype=torch.float64)
        val_terms = evaluate(
            model,
            val,
            settings.val_token_budget,
            backend,
            device,
            autocast,
            pad,
            secondary=secondary,
            val_loss=settings.val_loss,
            jet_config=jets.jet_config(manifest.get("schema")),
        )
        train_tot = backend.allreduce_sum(train_acc.to(device)).cpu()
        val_loss = float(val_terms["total"])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        if rank == 0 and settings.log_metrics:
            _log_epoch(ckpt_dir, epoch, val_loss, val_terms, train_tot, lr, dt, cpu)
        if not math.isfinite(val_loss):
            raise TrainingFailed(f"diverged at epoch {epoch + 1}: val_loss {val_loss} (lr {hp['lr']:g})")
        curve.append(objective_value(val_terms, settings.objective))
    if rank == 0:
        save_checkpoint(ckpt_dir, model, optimizer, plan, global_step, end_epoch, meta, device)
    backend.barrier()  # nobody starts the next unit before the checkpoint is on disk
    return curve, model


def _restore(state: dict, model, optimizer, plan, device="cpu") -> int:
    """Load a checkpoint's model, optimizer, sampler and RNG state; returns its global step."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    plan.load_state_dict(state["sampler"])
    set_rng_state(state, device)
    return int(state["global_step"])


def _accumulate_gradients(model, batches, backend, weights, autocast, device, epoch: int) -> float:
    """Backward pass over one step's micro-batches; the loss is normalised by the global element counts.

    Returns the step's summed loss (this rank's share).
    """
    counts = torch.tensor(
        [[float(b["mask"].sum()), float(((b["cls"] > 0) & b["mask"]).sum())] for b in batches],
        dtype=torch.float64,
    ).sum(0)
    counts = backend.allreduce_sum(counts.to(device)).cpu()
    step_loss = 0.0
    try:
        for b in batches:
            with autocast():
                out = model(b["X"], b["mask"])
            terms = combine(loss_sums(out, b, weights.focal_gamma, charge=b["charge"]), weights, counts[0], counts[1])
            terms["total"].backward()
            step_loss += float(terms["total"].detach())
    except torch.cuda.OutOfMemoryError as exc:
        raise TrainingFailed(f"out of memory at epoch {epoch + 1}: {str(exc)[:100]}", kind="oom") from None
    return step_loss


def _log_epoch(ckpt_dir, epoch: int, val_loss: float, val_terms: dict, train_tot, lr: float, dt: float, cpu: float):
    """Append one epoch's metrics to the trial's metrics log (rank 0 only)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    val_parts = {
        (f"val_{k}" if k in ("binary", "classification", "regression") else k): float(v)
        for k, v in val_terms.items()
        if k != "total"
    }
    record = {
        "epoch": epoch + 1,
        "val_loss": val_loss,
        **val_parts,
        "train_loss": float(train_tot[0] / max(1.0, float(train_tot[1]))),
        "lr": lr,
        "seconds": dt,
        "cpu_seconds_rank0": cpu,
        "train_events_per_s": float(train_tot[2]) / dt,
    }
    with open(ckpt_dir / METRICS_LOG, "a") as fh:
        fh.write(json.dumps(record) + "\n")


@torch.no_grad()
def evaluate(
    model,
    val: PreparedEvents,
    token_budget: int,
    backend,
    device,
    autocast=contextlib.nullcontext,
    pad: int = 1,
    secondary: bool = False,
    val_loss: str = "global",
    jet_config=None,
) -> dict:
    """Fixed-weight (default) loss terms over the whole val split.

    ``val_loss`` ``global``: from all-reduced sums and counts; ``batch_mean``: each batch's terms
    normalised by its own counts, averaged over all batches of all ranks (upstream's convention).
    With ``secondary``: jet pT response (median, IQR/median, |median - 1|, match fraction; FastJet
    with ``jet_config``, hpoq.mlpf.jets.jet_config of the dataset's schema) and the MET resolution
    (IQR of MET_pred - genMET, GeV), from all-reduced fixed-bin histograms, so every rank gets the
    same numbers.
    """
    model.eval()
    acc = torch.zeros(5, dtype=torch.float64)
    per_batch = torch.zeros(5, dtype=torch.float64)  # sums of per-batch total and terms; number of batches
    hist = _SecondaryHistograms(jet_config) if secondary else None
    for evs in validation_batches(val.n_elements, token_budget, backend.size, backend.rank):
        b = val.batch(evs, pad_multiple=pad, device=device)
        with autocast():
            out = model(b["X"], b["mask"])
        s = loss_sums(out, b, DEFAULT_WEIGHTS.focal_gamma, charge=b["charge"])
        sums = torch.stack([s[k].double().cpu() for k in ("binary", "focal", "regression", "n_valid", "n_particles")])
        acc += sums
        if val_loss == "batch_mean":
            terms = combine(
                {"binary": sums[0], "focal": sums[1], "regression": sums[2]}, DEFAULT_WEIGHTS, sums[3], sums[4]
            )
            per_batch += torch.stack(
                [terms[k].double() for k in ("total", "binary", "classification", "regression")]
                + [torch.ones((), dtype=torch.float64)]
            )
        if hist is not None:
            hist.add(out, b, evs, val)
    acc = backend.allreduce_sum(acc.to(device)).cpu()
    sums = {"binary": acc[0], "focal": acc[1], "regression": acc[2]}
    result = {k: float(v) for k, v in combine(sums, DEFAULT_WEIGHTS, acc[3], acc[4]).items()}
    if val_loss == "batch_mean":
        per_batch = backend.allreduce_sum(per_batch.to(device)).cpu()
        n = max(1.0, float(per_batch[4]))
        keys = ("total", "binary", "classification", "regression")
        result.update({k: float(per_batch[i]) / n for i, k in enumerate(keys)})
    if hist is not None:
        result.update(hist.summary(backend, device))
    return result


class _SecondaryHistograms:
    """Fixed-bin histograms of jet responses and MET residuals, all-reduced at the end; jets as
    ``jet_config`` defines them (hpoq.mlpf.jets: upstream's for converted CLIC, hpoq's for synthetic events)."""

    def __init__(self, jet_config=None):
        from hpoq.mlpf import jets

        self.jets = jets
        self.jet_config = jet_config or jets.SYNTHETIC
        self.n_r, self.n_m = jets.RATIO_EDGES.size - 1, jets.MET_EDGES.size - 1
        self.hist = np.zeros(self.n_r + self.n_m + 2)  # ratio histogram, MET histogram, (gen jets, matched)

    def add(self, out, b, evs, val) -> None:
        jets, n_r, n_m = self.jets, self.n_r, self.n_m
        parts = jets.predicted_particles(out, b["X"])
        mask = b["mask"].cpu().numpy()
        events = [parts[i][mask[i]] for i in range(len(evs))]
        genjets = [val.event_genjets(int(e)) for e in evs]
        ratios = np.concatenate([np.zeros(0)] + jets.ratios_for(events, genjets, self.jet_config))
        self.hist[:n_r] += jets.histogram(ratios[ratios > 0], jets.RATIO_EDGES)
        self.hist[-2:] += (ratios.size, float((ratios > 0).sum()))
        for p_i, ev_i in zip(events, evs):
            sel = p_i[:, 0] > 0
            phi = np.arctan2(p_i[sel, 4], p_i[sel, 5])
            met = np.hypot((p_i[sel, 2] * np.cos(phi)).sum(), (p_i[sel, 2] * np.sin(phi)).sum())
            self.hist[n_r : n_r + n_m] += jets.histogram(np.array([met - val.event_genmet(int(ev_i))]), jets.MET_EDGES)

    def summary(self, backend, device) -> dict:
        jets, n_r, n_m = self.jets, self.n_r, self.n_m
        hist = backend.allreduce_sum(torch.from_numpy(self.hist).to(device)).cpu().numpy()
        rh, mh = hist[:n_r], hist[n_r : n_r + n_m]
        med = jets.histogram_quantile(rh, jets.RATIO_EDGES, 0.5)
        iqr = jets.histogram_quantile(rh, jets.RATIO_EDGES, 0.75) - jets.histogram_quantile(rh, jets.RATIO_EDGES, 0.25)
        return dict(
            jet_response_median=med,
            jet_response_iqr_over_median=iqr / med if med else float("nan"),
            jet_median_deviation=abs(med - 1.0),
            jet_match_fraction=float(hist[-1] / max(1.0, hist[-2])),
            met_resolution_iqr_gev=jets.histogram_quantile(mh, jets.MET_EDGES, 0.75)
            - jets.histogram_quantile(mh, jets.MET_EDGES, 0.25),
        )


#: the curve value of a jet objective when no gen jet has a matched jet (the metric is undefined):
#: finite, so the runtime does not fail the trial, and worse than any defined value in practice
#: (a median response of 0, i.e. |0 - 1| = 1; IQR / median 10)
UNDEFINED_JET_VALUE = {"jet_iqr_over_median": 10.0, "jet_median_deviation": 1.0, "jet_match_fraction": 0.0}


def objective_value(val_terms: dict, objective: str) -> float:
    """The curve value of one epoch for ``objective`` (see :data:`UNDEFINED_JET_VALUE`)."""
    value = float(val_terms[OBJECTIVES[objective][0]])
    return value if math.isfinite(value) else UNDEFINED_JET_VALUE[objective]


def single_process_unit(
    settings: TrainSettings, config: dict, start_epoch: int, end_epoch: int, checkpoint_dir
) -> list[float]:
    """Convenience for scripts and benchmarks: one process, no MPI."""
    return train_unit(
        dataclasses.replace(settings, backend="none"), config, start_epoch, end_epoch, checkpoint_dir, None
    )
