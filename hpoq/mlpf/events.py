"""MLPF events in HDF5 shards with a ``dataset.json`` manifest (docs/mlpf-data.md#hdf5-layout).

Layout of one shard (one writer per file; ``train/shard-00003-of-00016.h5``)::

    /  attrs: schema_version, schema, x_features (JSON), y_features (JSON), class_labels, elem_types,
              source (JSON), n_events, n_elements
    /events/offsets     int64  [n_events+1]   CSR row pointer into /elements/*
    /events/n_elements  int32  [n_events]
    /events/genmet      float32[n_events]
    /events/jet_offsets int64  [n_events+1];  /jets/genjets, /jets/targetjets float32 [M, 4]
    /elements/X         float32[N_total, F]   tracks first, then clusters, per event
    /elements/ytarget   float32[N_total, 14]
    /elements/ycand     float32[N_total, 14]
    /stats/x_mean, /stats/x_std  float32 [n_types, F]  (train split, after the fixed transform)

**Column contract for converted real events** (CLIC, CMS, Delphes): X column 0 is the element
type (0 is reserved for padding, so types start at 1), the remaining columns are free but their
names go into ``x_features``; ``ytarget``/``ycand`` follow :data:`hpoq.mlpf.schema.Y_FEATURES`
(class index into ``class_labels``, charge, pT, eta, sin phi, cos phi, E, ...), one row per
element, all-zero where an element has no particle. A converter writes shards with
:func:`write_shard` (into ``DIR/train/`` and ``DIR/val/``) and then calls :func:`index_shards`,
which computes the train statistics and writes the manifest; the trainer reads only this layout.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpoq.atomic import atomic_h5, write_atomic
from hpoq.errors import ConfigError
from hpoq.mlpf.schema import SCHEMA_VERSION, Y_FEATURES

MANIFEST = "dataset.json"
FORMAT = "hpoq-mlpf-events"
# Element arrays are chunked by 256 rows (about 3 events) and lzf runs without the shuffle filter:
# a random single-event read decompresses one small chunk per array (about half the time of 1024-row
# shuffled chunks), while files stay as small and writing is no slower (benchmarks/mlpf.py).
CHUNK_ROWS = 256
COMPRESSIONS = ("lzf", "gzip", "none")


def _atomic_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True), fsync=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class EventArrays:
    """Concatenated events of one split, in memory (CSR layout)."""

    X: np.ndarray  # float32 [N_total, F]
    ytarget: np.ndarray  # float32 [N_total, 14]
    ycand: np.ndarray  # float32 [N_total, 14]
    offsets: np.ndarray  # int64 [n_events + 1]
    genmet: np.ndarray  # float32 [n_events]
    jet_offsets: np.ndarray | None = None  # int64 [n_events + 1] into genjets
    genjets: np.ndarray | None = None  # float32 [M, 4] (pT, eta, phi, E)

    @property
    def n_events(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def n_elements(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, events: np.ndarray) -> "EventArrays":
        """The events ``events`` (in that order), re-packed."""
        events = np.asarray(events, np.int64)
        counts = self.offsets[events + 1] - self.offsets[events]
        rows = _ranges(self.offsets[events], counts)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        jet_offsets = genjets = None
        if self.genjets is not None:
            jcounts = self.jet_offsets[events + 1] - self.jet_offsets[events]
            genjets = self.genjets[_ranges(self.jet_offsets[events], jcounts)]
            jet_offsets = np.concatenate([[0], np.cumsum(jcounts)]).astype(np.int64)
        return EventArrays(
            self.X[rows], self.ytarget[rows], self.ycand[rows], offsets, self.genmet[events], jet_offsets, genjets
        )

    def event_genjets(self, i: int) -> np.ndarray:
        if self.genjets is None:
            return np.zeros((0, 4), np.float32)
        return self.genjets[self.jet_offsets[i] : self.jet_offsets[i + 1]]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    rep_start = np.repeat(starts - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + rep_start


def pack_events(events) -> tuple[dict, dict]:
    """Arrays for :func:`write_shard` from a list of :class:`hpoq.mlpf.generator.Event`."""
    n_el = np.array([e.X.shape[0] for e in events], np.int64)
    n_jets = np.array([e.genjets.shape[0] for e in events], np.int64)
    arrays = {
        "events/offsets": np.concatenate([[0], np.cumsum(n_el)]).astype(np.int64),
        "events/n_elements": n_el.astype(np.int32),
        "events/genmet": np.array([e.genmet for e in events], np.float32),
        "events/jet_offsets": np.concatenate([[0], np.cumsum(n_jets)]).astype(np.int64),
        "elements/X": np.concatenate([e.X for e in events]).astype(np.float32),
        "elements/ytarget": np.concatenate([e.ytarget for e in events]).astype(np.float32),
        "elements/ycand": np.concatenate([e.ycand for e in events]).astype(np.float32),
        "jets/genjets": np.concatenate([e.genjets for e in events] + [np.zeros((0, 4), np.float32)]).astype(np.float32),
    }
    # targetjets may have a different count per event: store them with their own offsets
    n_tj = np.array([e.targetjets.shape[0] for e in events], np.int64)
    arrays["events/targetjet_offsets"] = np.concatenate([[0], np.cumsum(n_tj)]).astype(np.int64)
    arrays["jets/targetjets"] = np.concatenate([e.targetjets for e in events] + [np.zeros((0, 4), np.float32)]).astype(
        np.float32
    )
    return arrays, {"n_events": int(n_el.size), "n_elements": int(n_el.sum())}


def write_shard(path: Path, arrays: dict, attrs: dict, compression: str = "lzf") -> None:
    """Write one shard atomically (tmp + rename). Timestamps are off so equal input gives equal bytes."""

    if compression not in COMPRESSIONS:
        raise ConfigError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comp = (
        {}
        if compression == "none"
        else (
            {"compression": "lzf"}
            if compression == "lzf"
            else {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        )
    )
    with atomic_h5(path, track_order=False) as f:  # in memory first: a full disk is one OSError, not a crash
        for key in (
            "schema_version",
            "schema",
            "x_features",
            "y_features",
            "class_labels",
            "elem_types",
            "source",
            "n_events",
            "n_elements",
        ):
            f.attrs[key] = attrs[key]
        for name in sorted(arrays):  # a fixed creation order: equal arrays give equal bytes
            arr = np.ascontiguousarray(arrays[name])
            kwargs = dict(track_times=False)
            if name.startswith("elements/") or name.startswith("jets/"):
                if arr.shape[0] > 0:
                    kwargs.update(chunks=(min(CHUNK_ROWS, arr.shape[0]),) + arr.shape[1:], **comp)
            f.create_dataset(name, data=arr, **kwargs)


def read_shard_arrays(path: Path) -> tuple[dict, dict]:
    """All datasets and attributes of a shard, for rewriting it."""
    import h5py

    arrays, attrs = {}, {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: f.attrs[k] for k in f.attrs}
    return arrays, attrs


def add_stats(src: Path, dst: Path, x_mean: np.ndarray, x_std: np.ndarray, compression: str = "lzf") -> None:
    """Rewrite shard ``src`` as ``dst`` with /stats (train statistics are known only after all
    shards). A fresh single-pass write, not an in-place edit, keeps the bytes reproducible."""
    arrays, attrs = read_shard_arrays(src)
    arrays["stats/x_mean"] = np.asarray(x_mean, np.float32)
    arrays["stats/x_std"] = np.asarray(x_std, np.float32)
    write_shard(dst, arrays, attrs, compression=compression)
    if Path(src) != Path(dst):
        os.remove(src)


def shard_attrs(
    schema: str, x_features: list, class_labels: list, elem_types: list, source: dict, counts: dict
) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "schema": schema,
        "x_features": json.dumps(list(x_features)),
        "y_features": json.dumps(Y_FEATURES),
        "class_labels": np.asarray(class_labels, np.int64),
        "elem_types": np.asarray(elem_types, np.int64),
        "source": json.dumps(source, sort_keys=True),
        "n_events": counts["n_events"],
        "n_elements": counts["n_elements"],
    }


def write_manifest(
    directory: Path,
    splits: dict,
    *,
    schema: str,
    x_features: list,
    class_labels: list,
    elem_types: list,
    source: dict,
    stats: dict,
) -> dict:
    """Write ``dataset.json`` last (atomic). ``splits``: name -> list of {path, n_events, n_elements}."""
    directory = Path(directory)
    manifest_splits = {}
    hashes = []
    for name, shards in splits.items():
        entries = []
        for sh in shards:
            full = directory / sh["path"]
            digest = sha256_file(full)
            hashes.append(digest)
            entries.append(dict(sh, sha256=digest, bytes=full.stat().st_size))
        manifest_splits[name] = {
            "n_events": int(sum(s["n_events"] for s in shards)),
            "n_elements": int(sum(s["n_elements"] for s in shards)),
            "shards": entries,
        }
    manifest = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "schema": schema,
        "x_features": list(x_features),
        "y_features": list(Y_FEATURES),
        "class_labels": list(map(int, class_labels)),
        "elem_types": list(map(int, elem_types)),
        "input_dim": len(x_features),
        "num_classes": len(class_labels),
        "source": source,
        "splits": manifest_splits,
        "stats": {"x_mean": np.asarray(stats["x_mean"]).tolist(), "x_std": np.asarray(stats["x_std"]).tolist()},
        "content_hash": hashlib.sha256("".join(hashes).encode()).hexdigest(),
    }
    _atomic_json(directory / MANIFEST, manifest)
    return manifest


# ---------------------------------------------------------------- reading


def read_manifest(directory) -> dict:
    """Load and check ``dataset.json`` (ConfigError naming the problem otherwise)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ConfigError(
            f"MLPF data directory {directory} does not exist; create it with 'hpoq generate-data --out {directory}'"
        )
    if not path.is_file():
        raise ConfigError(f"{path} is missing; create the dataset with 'hpoq generate-data --out {directory}'")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc.__class__.__name__}); the manifest is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(
            f"{path} is not an hpoq MLPF manifest "
            f"(format {manifest.get('format') if isinstance(manifest, dict) else None!r})"
        )
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: schema_version {manifest.get('schema_version')!r} is not supported (expected {SCHEMA_VERSION})"
        )
    for key in ("x_features", "splits", "stats", "elem_types", "class_labels"):
        if key not in manifest:
            raise ConfigError(f"{path}: key {key!r} is missing")
    return manifest


def _open_shard(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is truncated or not an HDF5 file ({str(exc).splitlines()[0][:80]})") from None


def check_shard(path: Path, manifest: dict, entry: dict | None = None, verify_checksum: bool = False) -> None:
    """Check one shard against the manifest: size, checksum (optional), attributes and shapes."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"shard {path} listed in the manifest is missing")
    if entry is not None:
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            raise ConfigError(
                f"shard {path} has {size} bytes but the manifest says {entry['bytes']}: truncated or replaced"
            )
        if verify_checksum and "sha256" in entry and sha256_file(path) != entry["sha256"]:
            raise ConfigError(f"shard {path} does not match its sha256 in the manifest: corrupted or replaced")
    with _open_shard(path) as f:
        _check_open_shard(f, path, manifest)


def _check_open_shard(f, path: Path, manifest: dict) -> None:
    for key in ("schema", "x_features", "n_events"):
        if key not in f.attrs:
            raise ConfigError(f"{path} is not an hpoq MLPF shard (attribute {key!r} missing)")
    for name in ("events/offsets", "elements/X", "elements/ytarget"):
        if name not in f:
            raise ConfigError(f"{path} is not an hpoq MLPF shard (dataset /{name} missing)")
    x_features = json.loads(f.attrs["x_features"])
    n_feat = f["elements/X"].shape[1] if f["elements/X"].ndim == 2 else -1
    expected = len(manifest["x_features"])
    if n_feat != len(x_features) or n_feat != expected:
        raise ConfigError(
            f"{path}: elements/X has {n_feat} features but the manifest lists {expected} "
            f"({len(x_features)} in the file's x_features)"
        )
    if f["elements/ytarget"].ndim != 2 or f["elements/ytarget"].shape[1] != len(Y_FEATURES):
        raise ConfigError(f"{path}: elements/ytarget must have {len(Y_FEATURES)} columns")
    offsets = f["events/offsets"]
    if offsets.shape[0] != int(f.attrs["n_events"]) + 1:
        n_events = int(f.attrs["n_events"])
        raise ConfigError(f"{path}: events/offsets has {offsets.shape[0]} entries for {n_events} events")
    if int(offsets[-1]) != f["elements/X"].shape[0]:
        n_rows = f["elements/X"].shape[0]
        raise ConfigError(f"{path}: offsets end at {int(offsets[-1])} but elements/X has {n_rows} rows")


def load_split(
    directory, split: str, *, manifest: dict | None = None, verify_checksum: bool = True, max_events: int | None = None
) -> EventArrays:
    """Read a whole split into memory (the in-memory mode for shards under ~1 GB)."""
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    if split not in manifest["splits"]:
        raise ConfigError(f"{directory}: no split {split!r} (have {', '.join(manifest['splits'])})")
    parts = []
    have = 0
    for entry in manifest["splits"][split]["shards"]:
        if max_events is not None and have >= max_events:
            break
        path = directory / entry["path"]
        check_shard(path, manifest, entry, verify_checksum=verify_checksum)
        try:
            with _open_shard(path) as f:
                offsets = f["events/offsets"][:]
                jets = (f["events/jet_offsets"][:], f["jets/genjets"][:]) if "jets/genjets" in f else None
                parts.append(
                    (
                        f["elements/X"][:],
                        f["elements/ytarget"][:],
                        f["elements/ycand"][:] if "elements/ycand" in f else None,
                        offsets,
                        f["events/genmet"][:] if "events/genmet" in f else None,
                        jets,
                    )
                )
        except (OSError, KeyError) as exc:
            raise ConfigError(
                f"{path}: cannot read ({exc.__class__.__name__}: {str(exc)[:80]}); file truncated or damaged"
            ) from None
        have += offsets.size - 1
    if not parts:
        raise ConfigError(f"{directory}: split {split!r} has no events")
    Xs, ys, cs, offs, mets, joffs, jets = [], [], [], [0], [], [], []
    base = jbase = 0
    with_jets = all(p[5] is not None for p in parts)
    for X, y, c, off, met, jet in parts:
        Xs.append(X)
        ys.append(y)
        cs.append(c if c is not None else np.zeros_like(y))
        offs.append(off[1:] + base)
        mets.append(met if met is not None else np.zeros(off.size - 1, np.float32))
        base += X.shape[0]
        if with_jets:
            joffs.append(jet[0][1:] + jbase)
            jets.append(jet[1])
            jbase += jet[1].shape[0]
    arrays = EventArrays(
        np.concatenate(Xs),
        np.concatenate(ys),
        np.concatenate(cs),
        np.concatenate([np.array([0], np.int64)] + [np.asarray(o, np.int64) for o in offs[1:]]),
        np.concatenate(mets),
        np.concatenate([np.array([0], np.int64)] + [np.asarray(o, np.int64) for o in joffs]) if with_jets else None,
        np.concatenate(jets) if with_jets else None,
    )
    if max_events is not None and arrays.n_events > max_events:
        arrays = arrays.subset(np.arange(max_events))
    return arrays


class ShardReader:
    """Lazy random access to single events of one shard (for data that does not fit in memory).

    Opens the file read-only on first use (so it is safe to create before DataLoader workers fork)
    with a ``rdcc_nbytes`` chunk cache; the offsets are read once.
    """

    def __init__(self, path, cache_bytes: int = 64 << 20):
        self.path = Path(path)
        self.cache_bytes = int(cache_bytes)
        self._f = None
        self._offsets = None
        self._jet_offsets = None

    def _file(self):
        if self._f is None:
            import h5py

            try:
                self._f = h5py.File(self.path, "r", rdcc_nbytes=self.cache_bytes, rdcc_nslots=10007)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"{self.path} is truncated or not an HDF5 file ({str(exc).splitlines()[0][:80]})"
                ) from None
            self._offsets = self._f["events/offsets"][:]
            self._X, self._y = self._f["elements/X"], self._f["elements/ytarget"]
        return self._f

    def __len__(self) -> int:
        self._file()
        return int(self._offsets.size - 1)

    def event(self, i: int):
        """(X, ytarget) of event ``i``."""
        self._file()
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return self._X[a:b], self._y[a:b]

    def n_elements(self) -> np.ndarray:
        self._file()
        return np.diff(self._offsets)

    def genmet(self) -> np.ndarray:
        f = self._file()
        return f["events/genmet"][:] if "events/genmet" in f else np.zeros(len(self), np.float32)

    def genjets(self, i: int) -> np.ndarray:
        """Gen jets (pT, eta, phi, E) of event ``i`` (empty if the shard has none)."""
        f = self._file()
        if "jets/genjets" not in f:
            return np.zeros((0, 4), np.float32)
        if self._jet_offsets is None:
            self._jet_offsets = f["events/jet_offsets"][:]
        return f["jets/genjets"][int(self._jet_offsets[i]) : int(self._jet_offsets[i + 1])]

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def index_shards(directory, splits=("train", "val")) -> dict:
    """Write ``dataset.json`` for shards written by a converter (real CLIC/CMS/Delphes events).

    Scans ``DIR/<split>/*.h5`` in name order, checks that every shard has the same schema,
    ``x_features`` and element types, computes the per-type feature statistics of the train split
    (after the fixed transform of :mod:`hpoq.mlpf.features`, which assumes CLIC-like columns for
    element types 1 and 2) and writes the manifest atomically. Returns the manifest.
    """

    from hpoq.mlpf.features import finish_stats, type_stats

    directory = Path(directory)
    found, meta, total = {}, None, None
    for split in splits:
        files = sorted((directory / split).glob("*.h5"))
        if not files:
            continue
        found[split] = []
        for path in files:
            with _open_shard(path) as f:
                for key in ("schema", "x_features", "elem_types", "class_labels", "n_events"):
                    if key not in f.attrs:
                        raise ConfigError(f"{path} is not an hpoq MLPF shard (attribute {key!r} missing)")
                this = (
                    str(f.attrs["schema"]),
                    json.loads(f.attrs["x_features"]),
                    [int(t) for t in f.attrs["elem_types"]],
                    [int(c) for c in f.attrs["class_labels"]],
                )
                if meta is None:
                    meta = this
                elif this != meta:
                    raise ConfigError(
                        f"{path}: schema, x_features, elem_types or class_labels differ from the other shards"
                    )
                _check_open_shard(f, path, {"x_features": meta[1]})
                n_ev, n_el = int(f.attrs["n_events"]), int(f["elements/X"].shape[0])
                if split == "train":
                    stats = type_stats(f["elements/X"][:], max(meta[2]) + 1)
                    total = stats if total is None else tuple(a + b for a, b in zip(total, stats))
                source = json.loads(f.attrs["source"]) if "source" in f.attrs else {}
            found[split].append({"path": str(path.relative_to(directory)), "n_events": n_ev, "n_elements": n_el})
    if "train" not in found:
        raise ConfigError(f"{directory}: no train/*.h5 shards to index")
    x_mean, x_std = finish_stats(*total)
    return write_manifest(
        directory,
        found,
        schema=meta[0],
        x_features=meta[1],
        class_labels=meta[3],
        elem_types=meta[2],
        source=source,
        stats={"x_mean": x_mean, "x_std": x_std},
    )
