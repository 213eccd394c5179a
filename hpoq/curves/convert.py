"""Converters of the shared learning-curve files (npz / JSON) into :class:`CurveTable` form.

Each converter returns a table in memory; :func:`hpoq.curves.table.write_table` writes the
CSV form (``<hp columns>, <metric>_<epoch>``) and :func:`hpoq.curves.store.write_store` the
HDF5 form. ``python -m hpoq.main convert SRC --out OUT.csv.gz`` wraps :func:`convert_source`.

- CIFAR-10 (``cifar10_cnn_curves.json.gz``): pandas ``to_json`` column-oriented table; curve
  columns ``"0".."199"`` (accuracy), hyperparameters momentum, lr, batch_size, num_filters,
  num_layers; the undocumented ``index`` column is dropped.
- LCBench (``*_curves.npz`` + ``configs.csv.gz``): epochs 1..50 of a metric (entry 0 is the
  evaluation before training, entry 51 repeats the final value, as Ax does); the 7 varied
  hyperparameters; a per-row time = seconds per epoch = (time[50] - time[0]) / 50.
- TaskSet (``taskset_rnn_text_classification.npz``): 51 points of ``valid_loss`` (or another
  loss key); one task or all 12 pooled with ``task`` as a categorical hyperparameter. Curves
  with NaN (diverged runs) are dropped and counted. Finite values above ``clip`` (default 2.0,
  about 2.9x the chance-level cross-entropy ln 2) are clipped to ``clip``: diverged runs reach
  1e18 and would otherwise squash every other curve into one point after MinMax scaling, while
  for ranking a run above 2.0 is simply bad. The number of clipped cells is recorded in
  ``provenance``.
"""

from __future__ import annotations

import csv
import gzip
import json
import os

import numpy as np

from hpoq.curves.table import CurveTable, load_table
from hpoq.errors import ConfigError

LCBENCH_HPS = ["batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout"]
CIFAR_HPS = ["momentum", "lr", "batch_size", "num_filters", "num_layers"]
TASKSET_DEFAULT_TASK = "FixedTextRNNClassification_imdb_patch32_GRU128_bs128"
TASKSET_CLIP = 2.0


def _exists(path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f"source {path!r} does not exist")


def _num(text: str):
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() and not any(c in text for c in ".eE") else v


def _drop_nonfinite(configs, curves, time=None):
    keep = np.isfinite(curves).all(axis=1)
    if time is not None:
        keep &= np.isfinite(time)
    rows = np.flatnonzero(keep)
    return [configs[i] for i in rows], curves[rows], (None if time is None else time[rows]), int((~keep).sum())


def cifar_json_to_table(path: str, metric: str = "acc") -> CurveTable:
    """CIFAR-10 CNN curves (167 configs x 200 epochs of accuracy, mode ``max``)."""
    _exists(path)
    try:
        with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as fh:
            data = json.load(fh)
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"source {path!r} is not a readable (gzip) JSON table ({exc})") from None
    if not isinstance(data, dict) or any(k not in data for k in CIFAR_HPS):
        raise ConfigError(f"source {path!r} is not the CIFAR-10 curve table (columns {', '.join(CIFAR_HPS)} expected)")
    epoch_cols = sorted((int(k) for k in data if k.isdigit()))
    if not epoch_cols or epoch_cols != list(range(epoch_cols[0], epoch_cols[0] + len(epoch_cols))):
        raise ConfigError(f"source {path!r} has no consecutive epoch columns '0', '1', ...")
    rows = sorted(data[str(epoch_cols[0])], key=int)
    configs = [{hp: data[hp][r] for hp in CIFAR_HPS} for r in rows]
    curves = np.array(
        [[data[str(e)][r] if data[str(e)][r] is not None else np.nan for e in epoch_cols] for r in rows], dtype=float
    )
    configs, curves, _, dropped = _drop_nonfinite(configs, curves)
    return CurveTable(
        hp_names=list(CIFAR_HPS),
        configs=configs,
        curves=curves,
        metric=metric,
        mode="max",
        source=os.path.abspath(path),
        dropped=dropped,
        provenance={"first_epoch": epoch_cols[0], "converter": "cifar_json", "dropped_columns": ["index"]},
    )


def _read_csv_gz(path: str) -> tuple[list[str], list[list[str]]]:
    _exists(path)
    try:
        with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as fh:
            rows = list(csv.reader(fh))
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path!r} is not a readable CSV ({exc})") from None
    if not rows:
        raise ConfigError(f"{path!r} is empty")
    return rows[0], rows[1:]


def _load_npz(path: str):
    _exists(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"source {path!r} is not a readable npz file ({exc})") from None


def lcbench_npz_to_table(
    npz_path: str, configs_path: str | None = None, metric: str = "val_balanced_accuracy", mode: str | None = None
) -> CurveTable:
    """LCBench curves of one dataset: epochs 1..50 of ``metric``, hyperparameters from ``configs.csv.gz``."""
    z = _load_npz(npz_path)
    if metric not in z.files:
        keys = ", ".join(k for k in z.files if k not in ("trial", "epoch"))
        raise ConfigError(f"source {npz_path!r} has no metric {metric!r} (available: {keys})")
    values = np.asarray(z[metric], dtype=float)
    if values.ndim != 2 or values.shape[1] < 51:
        raise ConfigError(f"source {npz_path!r}: {metric!r} must be [trials, >= 51 epochs], got {values.shape}")
    curves = values[:, 1:51]
    time = None
    if "time" in z.files:
        t = np.asarray(z["time"], dtype=float)
        time = (t[:, 50] - t[:, 0]) / 50.0
    trials = (
        np.asarray(z["trial"]).reshape(len(curves), -1)[:, 0].astype(int)
        if "trial" in z.files
        else np.arange(len(curves))
    )
    configs_path = configs_path or os.path.join(os.path.dirname(npz_path), "configs.csv.gz")
    header, rows = _read_csv_gz(configs_path)
    missing = [h for h in LCBENCH_HPS + ["trial"] if h not in header]
    if missing:
        raise ConfigError(f"{configs_path!r} lacks column(s) {', '.join(missing)}")
    by_trial = {int(r[header.index("trial")]): r for r in rows}
    try:
        configs = [{hp: _num(by_trial[int(t)][header.index(hp)]) for hp in LCBENCH_HPS} for t in trials]
    except KeyError as exc:
        raise ConfigError(f"{configs_path!r} has no config for trial {exc.args[0]}") from None
    if mode is None:
        mode = "min" if ("loss" in metric or "cross_entropy" in metric) else "max"
    configs, curves, time, dropped = _drop_nonfinite(configs, curves, time)
    return CurveTable(
        hp_names=list(LCBENCH_HPS),
        configs=configs,
        curves=curves,
        metric=metric,
        mode=mode,
        time=time,
        source=os.path.abspath(npz_path),
        dropped=dropped,
        provenance={"first_epoch": 1, "converter": "lcbench_npz", "time": "seconds per epoch"},
    )


def taskset_npz_to_table(
    path: str, metric: str = "valid_loss", task: str | None = TASKSET_DEFAULT_TASK, clip: float | None = TASKSET_CLIP
) -> CurveTable:
    """TaskSet RNN curves (51 points). ``task``: a task name, its index, or ``"all"`` / None to pool the 12 tasks."""
    z = _load_npz(path)
    for key in ("task_names", "task_idx", "hp_names", "hp", metric):
        if key not in z.files:
            raise ConfigError(f"source {path!r} is not the TaskSet npz (no key {key!r})")
    names = [str(n) for n in z["task_names"]]
    task_idx = np.asarray(z["task_idx"], dtype=int)
    if task in (None, "all"):
        rows = np.arange(len(task_idx))
    else:
        if str(task).isdigit() and int(task) < len(names):
            task = names[int(task)]
        if task not in names:
            raise ConfigError(f"unknown TaskSet task {task!r}; tasks: all, {', '.join(names)}")
        rows = np.flatnonzero(task_idx == names.index(task))
    hp_names = [str(n) for n in z["hp_names"]]
    hp = np.asarray(z["hp"], dtype=float)[rows]
    curves = np.asarray(z[metric], dtype=float)[rows]
    configs = [{h: float(v) for h, v in zip(hp_names, hp_row)} for hp_row in hp]
    if task in (None, "all"):
        hp_names = ["task"] + hp_names
        configs = [{"task": names[task_idx[r]], **c} for r, c in zip(rows, configs)]
    configs, curves, _, dropped = _drop_nonfinite(configs, curves)
    clipped = 0
    if clip is not None:
        clipped = int((curves > clip).sum())
        curves = np.minimum(curves, clip)
    mode = "max" if "acc" in metric else "min"
    return CurveTable(
        hp_names=hp_names,
        configs=configs,
        curves=curves,
        metric=metric,
        mode=mode,
        source=os.path.abspath(path),
        dropped=dropped,
        provenance={
            "first_epoch": 1,
            "converter": "taskset_npz",
            "task": task or "all",
            "clip": clip,
            "clipped_cells": clipped,
        },
    )


def convert_source(
    src: str, metric: str | None = None, mode: str | None = None, task: str | None = None, configs: str | None = None
) -> CurveTable:
    """Load any supported source as a curve table: CSV/CSV.gz (``metric`` required), the CIFAR
    JSON, an LCBench npz or the TaskSet npz (recognised by name and content)."""
    _exists(src)
    base = os.path.basename(src).lower()
    if base.endswith((".json", ".json.gz")):
        return cifar_json_to_table(src, metric or "acc")
    if base.endswith(".npz"):
        z = _load_npz(src)
        if "task_names" in z.files:
            return taskset_npz_to_table(src, metric or "valid_loss", task if task is not None else TASKSET_DEFAULT_TASK)
        return lcbench_npz_to_table(src, configs, metric or "val_balanced_accuracy", mode)
    if base.endswith((".h5", ".hdf5")):
        from hpoq.curves.store import read_store

        table = read_store(src)
        if metric is not None and metric != table.metric:
            raise ConfigError(f"curve store {src!r} holds metric {table.metric!r}, not {metric!r}")
        return table
    if metric is None:
        raise ConfigError(f"--metric is required for the CSV table {src!r}")
    return load_table(src, metric, mode or "min")


__all__ = [
    "cifar_json_to_table",
    "lcbench_npz_to_table",
    "taskset_npz_to_table",
    "convert_source",
    "TASKSET_DEFAULT_TASK",
    "TASKSET_CLIP",
    "LCBENCH_HPS",
    "CIFAR_HPS",
]
