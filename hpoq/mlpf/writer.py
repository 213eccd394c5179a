"""Write a synthetic MLPF dataset: train/val shards, per-type feature stats, manifest
(docs/mlpf-data.md#synthetic-events, docs/mlpf-data.md#hdf5-layout).

Events of the whole dataset are numbered 0..N-1; the first ``N - n_val`` form the train split and
the rest the val split. Event ``j`` always comes from ``SeedSequence([seed, j])``, so the shards
do not depend on how the work is split. The manifest is written last: a directory without
``dataset.json`` is an unfinished dataset.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hpoq.errors import ConfigError
from hpoq.mlpf import events as ev
from hpoq.mlpf.features import finish_stats, type_stats
from hpoq.mlpf.generator import GeneratorConfig, generate_events, make_config
from hpoq.mlpf.schema import CLASS_LABELS, ELEM_TYPES, SYNTHETIC_SCHEMA, X_FEATURES

#: events generated together (vectorised); the output does not depend on it
BLOCK = 64
#: rough in-memory size of one packed clic event (X, ytarget, ycand, ~90 elements x 45 float32)
EVENT_BYTES = 20_000


def shard_name(split: str, k: int, n: int) -> str:
    return f"{split}/shard-{k:05d}-of-{n:05d}.h5"


def _plan(n_events: int, val_fraction: float, shards: int) -> dict:
    n_val = int(round(n_events * val_fraction))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    n_train = n_events - n_val
    if n_train < 1:
        raise ConfigError(f"--events {n_events} with --val-fraction {val_fraction:g} leaves no training events")
    plan = {}
    for split, lo, hi, k in (
        ("train", 0, n_train, shards),
        ("val", n_train, n_events, max(1, round(shards * val_fraction / max(1e-9, 1 - val_fraction)))),
    ):
        if hi <= lo:
            continue
        k = max(1, min(k, hi - lo))
        bounds = np.linspace(lo, hi, k + 1).round().astype(int)
        plan[split] = [(shard_name(split, i, k), int(bounds[i]), int(bounds[i + 1])) for i in range(k)]
    return plan


def _make_shard(args):
    """Generate one shard's events; (manifest entry, stats sums, arrays, attrs)."""
    out, rel, lo, hi, cfg_dict, seed, compression, source = args
    cfg = GeneratorConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg_dict.items()})
    events = []
    for start in range(lo, hi, BLOCK):
        events += generate_events(cfg, seed, range(start, min(start + BLOCK, hi)))
    events = [e for e in events if e.X.shape[0] > 0]  # empty events give log(0) targets (docs/mlpf-data.md#pitfalls)
    if not events:
        raise ConfigError(f"shard {rel} would hold no events")
    arrays, counts = ev.pack_events(events)
    attrs = ev.shard_attrs(SYNTHETIC_SCHEMA, X_FEATURES, CLASS_LABELS, ELEM_TYPES, source, counts)
    stats = type_stats(arrays["elements/X"], len(ELEM_TYPES))
    entry = dict(
        path=rel,
        n_events=counts["n_events"],
        n_elements=counts["n_elements"],
        first_event=lo,
        skipped_empty=(hi - lo) - counts["n_events"],
    )
    return entry, stats, arrays, attrs


def _write_one(args):
    """Worker-process path: write the shard without stats (added by a rewrite once all are known)."""
    entry, stats, arrays, attrs = _make_shard(args)
    ev.write_shard(Path(args[0]) / (entry["path"] + ".nostats"), arrays, attrs, compression=args[6])
    return entry, stats


def generate_dataset(
    out,
    n_events: int,
    seed: int,
    *,
    preset: str = "clic",
    shards: int = 1,
    val_fraction: float = 0.2,
    compression: str = "lzf",
    workers: int = 1,
    overwrite: bool = False,
    memory_bytes: int = 1 << 30,
    **overrides,
) -> dict:
    """Generate and write the dataset; returns the manifest. Validates everything before writing.

    With one worker and at most ``memory_bytes`` of events, shards are held in memory and written
    once; otherwise each is written without stats and rewritten with them at the end. Both paths
    give the same bytes.
    """
    out = Path(out)
    if n_events < 2:
        raise ConfigError(f"--events must be at least 2, got {n_events}")
    if shards < 1:
        raise ConfigError(f"--shards must be at least 1, got {shards}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must lie in [0, 1), got {val_fraction:g}")
    if seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {seed}")
    if compression not in ev.COMPRESSIONS:
        raise ConfigError(f"--compression must be one of {', '.join(ev.COMPRESSIONS)}, got {compression!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    cfg = make_config(preset, **overrides)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if (out / ev.MANIFEST).exists() and not overwrite:
        raise ConfigError(f"{out / ev.MANIFEST} exists; choose another --out or pass --overwrite")
    plan = _plan(n_events, val_fraction, shards)
    made = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    if (out / ev.MANIFEST).exists():
        os.remove(out / ev.MANIFEST)  # the dataset is unfinished until the new manifest lands
    try:
        return _generate(out, plan, cfg, seed, compression, workers, n_events, memory_bytes)
    except BaseException:
        # a full disk, a kill of a worker, a bad knob: nothing half-written stays behind
        for split in plan:
            for rel, _, _ in plan[split]:
                for path in (out / rel, out / (rel + ".nostats")):
                    path.unlink(missing_ok=True)
        for folder in [out / split for split in plan] + made:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def _generate(out: Path, plan: dict, cfg, seed: int, compression: str, workers: int, n_events: int, memory_bytes):
    """The shards of ``plan`` and the manifest, written into the existing folder ``out``."""
    source = {"generator": cfg.to_dict(), "seed": int(seed), "n_events_requested": int(n_events)}
    jobs = [
        (str(out), rel, lo, hi, cfg.to_dict(), int(seed), compression, source)
        for split in plan
        for rel, lo, hi in plan[split]
    ]
    in_memory = workers == 1 or len(jobs) == 1
    if in_memory and n_events * EVENT_BYTES > memory_bytes:
        in_memory = False
        workers = 1
    if in_memory:
        # one process and the events fit in memory: keep the shards, write each once with its stats
        made = [_make_shard(j) for j in jobs]
        results = [(m[0], m[1]) for m in made]
        held = {m[0]["path"]: (m[2], m[3]) for m in made}
    elif workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_write_one, jobs))
    else:
        results = [_write_one(j) for j in jobs]
    splits, i = {}, 0
    total = None
    for split in plan:
        splits[split] = []
        for _ in plan[split]:
            entry, stats = results[i]
            i += 1
            splits[split].append(entry)
            if split == "train":
                total = stats if total is None else tuple(a + b for a, b in zip(total, stats))
    x_mean, x_std = finish_stats(*total)
    for split in splits:
        for entry in splits[split]:
            if in_memory:
                arrays, attrs = held.pop(entry["path"])
                arrays["stats/x_mean"], arrays["stats/x_std"] = x_mean, x_std
                ev.write_shard(out / entry["path"], arrays, attrs, compression=compression)
            else:
                ev.add_stats(
                    out / (entry["path"] + ".nostats"), out / entry["path"], x_mean, x_std, compression=compression
                )
    return ev.write_manifest(
        out,
        splits,
        schema=SYNTHETIC_SCHEMA,
        x_features=X_FEATURES,
        class_labels=CLASS_LABELS,
        elem_types=ELEM_TYPES,
        source=source,
        stats={"x_mean": x_mean, "x_std": x_std},
    )
