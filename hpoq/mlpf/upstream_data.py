"""Upstream MLPF's CLIC EDM4hep datasets as hpoq HDF5 shards (``hpoq convert-events``; docs/mlpf-data.md#hdf5-layout).

Two source forms of jpata/particleflow's ``clic_edm_{ttbar,qq,ww_fullhad,...}_pf`` samples:

- **parquet** (the output of upstream's ``mlpf/data/key4hep/postprocessing.py``, one awkward
  record per file with per-event ``X_track``, ``X_cluster``, ``ytarget_track``, ``ytarget_cluster``,
  ``ycand_track``, ``ycand_cluster``, ``genmet``, ``genjet``, ``targetjet``): read with awkward +
  pyarrow, no TensorFlow. :func:`events_from_parquet` reproduces upstream's
  ``mlpf.heptfds.edm4hep_utils.utils_pf.prepare_data_clic`` element by element (same events
  skipped, tracks then clusters, track features zero-padded to 17 columns, PDG id -> class index
  into [0, 211, 130, 22, 11, 13]) followed by the float32 cast of its ``generate_examples``;
- **tfds ArrayRecord** (upstream's built ``tensorflow_datasets`` directories): read through
  ``tfds.builder_from_directory(...).as_data_source`` where ``tensorflow_datasets`` and
  ``array_record`` are installed; the records already hold the prepared arrays.

hpoq's target layout has 14 columns, upstream's 13: the 14th, ``particle_number``, is 0.
Split: the last ``val_fraction`` of each input file's events go to the val split (upstream splits
whole files 90/10; per-file splitting keeps one file usable and the conversion streaming).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpoq.errors import ConfigError
from hpoq.mlpf import events as ev
from hpoq.mlpf.schema import CLASS_LABELS, ELEM_TYPES, X_FEATURES, Y_FEATURES

SCHEMA = "clic"
#: upstream's element features per event: tracks (16 columns) and clusters (17 columns)
N_X_FEATURES = 17
#: upstream's target columns (hpoq's Y_FEATURES without particle_number)
N_Y_UPSTREAM = 13
PARQUET_FIELDS = (
    "X_track",
    "X_cluster",
    "ytarget_track",
    "ytarget_cluster",
    "ycand_track",
    "ycand_cluster",
    "genmet",
    "genjet",
    "targetjet",
)
FORMATS = ("auto", "parquet", "tfds")


@dataclass
class ConvertedEvent:
    """One event in hpoq's layout (float32; what :func:`hpoq.mlpf.events.pack_events` packs)."""

    X: np.ndarray
    ytarget: np.ndarray
    ycand: np.ndarray
    genmet: float
    genjets: np.ndarray
    targetjets: np.ndarray


def _rows(array, width: int, path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts per event, concatenated rows [total, w]) of a per-event list of rows, as float64."""
    import awkward as ak

    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    flat = ak.flatten(array, axis=1)
    if len(flat) == 0:
        return counts, np.zeros((0, width))
    widths = np.unique(ak.to_numpy(ak.num(flat, axis=1)))
    if widths.size != 1:
        raise ConfigError(f"{path}: {field} rows have different lengths {widths.tolist()}; not an upstream CLIC file")
    return counts, np.asarray(ak.to_numpy(ak.flatten(flat, axis=1)), np.float64).reshape(-1, int(widths[0]))


def _class_index(pdg: np.ndarray, path, field: str) -> np.ndarray:
    lookup = {p: i for i, p in enumerate(CLASS_LABELS)}
    try:
        return np.array([lookup[p] for p in pdg.tolist()], np.float64)
    except KeyError as exc:
        raise ConfigError(f"{path}: {field} holds PDG id {exc.args[0]!r}, not one of {CLASS_LABELS}") from None


def _hpoq_targets(y: np.ndarray, path, field: str) -> np.ndarray:
    """Upstream's [n, 13] with PDG ids -> hpoq's [n, 14] with class indices (float32)."""
    out = np.zeros((y.shape[0], len(Y_FEATURES)), np.float32)
    out[:, :N_Y_UPSTREAM] = y[:, :N_Y_UPSTREAM]
    out[:, 0] = _class_index(y[:, 0], path, field)
    return out


def _read_parquet_columns(path) -> dict:
    try:
        import awkward as ak
    except ImportError:
        raise ConfigError("convert-events: reading parquet needs awkward and pyarrow ('make particleflow')") from None
    try:
        ret = ak.from_parquet(str(path))
    except ImportError as exc:
        raise ConfigError(f"convert-events: reading parquet needs pyarrow ({exc}); run 'make particleflow'") from None
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable parquet file ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    missing = [f for f in PARQUET_FIELDS if f not in ak.fields(ret)]
    if missing:
        raise ConfigError(f"{path}: not an upstream CLIC parquet file (field(s) {', '.join(missing)} missing)")
    cols = {
        f: _rows(ret[f], 4 if "jet" in f else (N_X_FEATURES if f.startswith("X") else N_Y_UPSTREAM), path, f)
        for f in PARQUET_FIELDS
        if f != "genmet"
    }
    cols["genmet"] = np.asarray(ak.to_numpy(ret["genmet"]), np.float64).reshape(-1)
    n = {len(c[0]) for k, c in cols.items() if k != "genmet"} | {cols["genmet"].size}
    if len(n) != 1:
        raise ConfigError(f"{path}: the fields hold different numbers of events {sorted(n)}")
    return cols


def events_from_parquet(path) -> list[ConvertedEvent]:
    """The events of one upstream parquet file, as upstream's ``prepare_data_clic`` keeps them."""
    cols = _read_parquet_columns(path)
    starts = {k: np.concatenate([[0], np.cumsum(c[0])]) for k, c in cols.items() if k != "genmet"}

    def get(field, i):
        return cols[field][1][starts[field][i] : starts[field][i + 1]]

    out = []
    for i in range(cols["genmet"].size):
        x1, x2 = get("X_track", i), get("X_cluster", i)
        if len(x1) == 0 and len(x2) == 0:
            continue
        yt = [get("ytarget_track", i), get("ytarget_cluster", i)]
        if len(yt[0]) == 0 and len(yt[1]) == 0:
            continue
        x1, x2 = (
            np.pad(x, [[0, 0], [0, N_X_FEATURES - x.shape[1]]]) if x.shape[1] < N_X_FEATURES else x for x in (x1, x2)
        )
        X = np.concatenate([x1, x2])
        ytarget = np.concatenate(yt)
        ycand = np.concatenate([get("ycand_track", i), get("ycand_cluster", i)])
        if ytarget.shape[0] != X.shape[0] or ycand.shape[0] != X.shape[0]:
            continue  # upstream skips such an event ("this should not happen")
        out.append(
            ConvertedEvent(
                X.astype(np.float32),
                _hpoq_targets(ytarget, path, "ytarget"),
                _hpoq_targets(ycand, path, "ycand"),
                float(np.float32(cols["genmet"][i])),
                get("genjet", i).astype(np.float32),
                get("targetjet", i).astype(np.float32),
            )
        )
    return out


def events_from_tfds(directory, split: str) -> list[ConvertedEvent]:
    """The events of a built upstream tfds dataset directory (ArrayRecord), split ``split``."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ConfigError(
            "convert-events: tfds ArrayRecord input needs tensorflow_datasets and array_record "
            "(pip install tensorflow-datasets array-record); the parquet form needs neither"
        ) from None
    builder = tfds.builder_from_directory(str(directory))
    if split not in builder.info.splits:
        raise ConfigError(f"{directory}: no split {split!r} (has {', '.join(builder.info.splits)})")
    out = []
    for ex in builder.as_data_source(split=split):
        X = np.asarray(ex["X"], np.float32)
        ys = []
        for key in ("ytarget", "ycand"):
            y = np.zeros((X.shape[0], len(Y_FEATURES)), np.float32)
            y[:, :N_Y_UPSTREAM] = np.asarray(ex[key], np.float32)[:, :N_Y_UPSTREAM]
            ys.append(y)
        out.append(
            ConvertedEvent(
                X,
                ys[0],
                ys[1],
                float(np.float32(ex["genmet"])),
                np.asarray(ex["genjets"], np.float32).reshape(-1, 4),
                np.asarray(ex["targetjets"], np.float32).reshape(-1, 4),
            )
        )
    return out


def _inputs(sources, fmt: str) -> list[tuple[str, Path]]:
    """(kind, path) per input; directories expand to their *.parquet files (sorted), or are a tfds dir."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    found = []
    for src in map(Path, sources):
        if not src.exists():
            raise ConfigError(f"input {src} does not exist")
        is_tfds = src.is_dir() and (src / "dataset_info.json").is_file()
        if fmt == "tfds" or (fmt == "auto" and is_tfds):
            if not is_tfds:
                raise ConfigError(f"input {src} is not a tfds dataset directory (no dataset_info.json)")
            found.append(("tfds", src))
        elif src.is_dir():
            files = sorted(src.glob("*.parquet"))
            if not files:
                raise ConfigError(f"input directory {src} holds no *.parquet files (nor dataset_info.json)")
            found += [("parquet", f) for f in files]
        else:
            found.append(("parquet", src))
    if not found:
        raise ConfigError("convert-events: give at least one input file or directory")
    return found


def _write_events(out: Path, rel: str, events: list, source: dict, compression: str) -> dict:
    arrays, counts = ev.pack_events(events)
    attrs = ev.shard_attrs(SCHEMA, X_FEATURES, CLASS_LABELS, ELEM_TYPES, source, counts)
    ev.write_shard(out / rel, arrays, attrs, compression=compression)
    return {"path": rel, **counts}


def convert_events(
    sources,
    out,
    *,
    fmt: str = "auto",
    split: str = "train",
    val_fraction: float = 0.1,
    compression: str = "lzf",
    overwrite: bool = False,
) -> dict:
    """Convert upstream files to ``out``/{train,val}/shard-*.h5 plus ``dataset.json``; the manifest.

    Everything is checked before the first shard is written; on a failure the shards written so
    far are removed, so ``out`` never holds a half-converted dataset.
    """
    out = Path(out)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must lie in [0, 1), got {val_fraction:g}")
    if compression not in ev.COMPRESSIONS:
        raise ConfigError(f"--compression must be one of {', '.join(ev.COMPRESSIONS)}, got {compression!r}")
    inputs = _inputs(sources, fmt)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if (out / ev.MANIFEST).exists() and not overwrite:
        raise ConfigError(f"{out / ev.MANIFEST} exists; choose another --out or pass --overwrite")
    if overwrite and out.is_dir():
        for old in list(out.glob("train/*.h5")) + list(out.glob("val/*.h5")) + [out / ev.MANIFEST]:
            old.unlink(missing_ok=True)
    written: list[Path] = []
    try:
        _convert_all(inputs, out, split, val_fraction, compression, written)
        if not written or not any(p.parent.name == "train" for p in written):
            raise ConfigError("convert-events: the inputs hold no events for the train split")
        return ev.index_shards(out)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _convert_all(inputs, out: Path, split: str, val_fraction: float, compression: str, written: list) -> None:
    n = len(inputs)
    for k, (kind, path) in enumerate(inputs):
        events = events_from_parquet(path) if kind == "parquet" else events_from_tfds(path, split)
        n_val = int(round(len(events) * val_fraction))
        if val_fraction > 0 and n_val == 0 and len(events) > 1:
            n_val = 1
        source = {
            "format": f"particleflow-{kind}",
            "files": [os.path.basename(p) for _, p in inputs],
            "upstream_version": "3.1.0",
            "val_fraction": val_fraction,
            "split": split if kind == "tfds" else None,
        }
        for name, part in (("train", events[: len(events) - n_val]), ("val", events[len(events) - n_val :])):
            if part:
                rel = f"{name}/shard-{k:05d}-of-{n:05d}.h5"
                written.append(out / rel)
                _write_events(out, rel, part, source, compression)


def summary(manifest: dict) -> dict:
    """What the CLI prints."""
    return {
        "content_hash": manifest["content_hash"],
        "schema": manifest["schema"],
        "splits": {
            k: {"n_events": v["n_events"], "n_elements": v["n_elements"], "shards": len(v["shards"])}
            for k, v in manifest["splits"].items()
        },
        "source": json.loads(json.dumps(manifest["source"])),
    }
