"""Load-time target transform and padded batches (docs/mlpf-data.md#targets, docs/mlpf-data.md#sampler).

Per element the training targets are: class, charge, the regression vector (log pT ratio, eta,
sin phi, cos phi, log E ratio; 0 where there is no target or the value is inf/NaN) and the
original target pT (for the sqrt(pT) weight). Two sources with one interface
(``n_events``, ``n_elements``, ``batch(events)``, ``event_genjets(i)``, ``event_genmet(i)``):

- :class:`PreparedEvents`: a split held in memory, targets prepared once (the default for
  shards under about 1 GB, and always for HPO on synthetic data);
- :class:`LazyEvents`: events read from the shards on demand through :class:`ShardReader`
  (files opened read-only on first use), for splits that do not fit in memory.

Both give bit-identical batches. ``batch`` pads to the batch maximum N (optionally rounded up
to a multiple, e.g. 8 on GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hpoq.mlpf.events import EventArrays, ShardReader, _ranges, check_shard
from hpoq.mlpf.schema import Y_CHARGE, Y_CLS, Y_COS, Y_E, Y_ETA, Y_PT, Y_SIN


def regression_targets(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[n, 5] (log(pT_t / pT_elem), eta, sin phi, cos phi, log(E_t / E_elem)), zeroed where undefined."""
    has = y[:, Y_CLS] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lpt = np.log(y[:, Y_PT] / X[:, 1])
        le = np.log(y[:, Y_E] / X[:, 5])
    reg = np.stack([lpt, y[:, Y_ETA], y[:, Y_SIN], y[:, Y_COS], le], axis=1)
    reg = np.where(np.isfinite(reg) & has[:, None], reg, 0.0)
    return reg.astype(np.float32)


def prepare_rows(X: np.ndarray, y: np.ndarray) -> dict:
    """Training inputs and targets of element rows (the load-time transform)."""
    X = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    cls = y[:, Y_CLS].astype(np.int64)
    return {
        "X": X,
        "cls": cls,
        "charge": y[:, Y_CHARGE].astype(np.int64),
        "reg": regression_targets(X, y),
        "pt_true": np.where(cls > 0, np.nan_to_num(y[:, Y_PT]), 0.0).astype(np.float32),
    }


def pad_batch(rows: dict, counts: np.ndarray, pad_multiple: int = 1, device=None) -> dict:
    """Padded tensors [B, N, ...] from the concatenated prepared rows of B events."""
    n_max = int(counts.max()) if counts.size else 1
    if pad_multiple > 1:
        n_max = -(-n_max // pad_multiple) * pad_multiple
    B = counts.size
    b_idx = np.repeat(np.arange(B), counts)
    pos = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    out = {}
    for key, fill_shape in (("X", (rows["X"].shape[1],)), ("cls", ()), ("charge", ()), ("reg", (5,)), ("pt_true", ())):
        arr = np.zeros((B, n_max) + fill_shape, rows[key].dtype)
        arr[b_idx, pos] = rows[key]
        out[key] = arr
    mask = np.zeros((B, n_max), bool)
    mask[b_idx, pos] = True
    out["mask"] = mask
    out = {k: torch.from_numpy(v) for k, v in out.items()}
    if device is not None:
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    return out


class PreparedEvents:
    """An in-memory split with training targets, batched by event index lists."""

    def __init__(self, arrays: EventArrays):
        self.arrays = arrays
        self.rows = prepare_rows(arrays.X, arrays.ytarget)
        self.offsets = arrays.offsets
        self.n_elements = np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        return int(self.offsets.size - 1)

    def event_genjets(self, i: int) -> np.ndarray:
        return self.arrays.event_genjets(i)

    def event_genmet(self, i: int) -> float:
        return float(self.arrays.genmet[i])

    def batch(self, events, pad_multiple: int = 1, device=None) -> dict:
        events = np.asarray(events, np.int64)
        counts = self.n_elements[events]
        idx = _ranges(self.offsets[events], counts)
        return pad_batch({k: v[idx] for k, v in self.rows.items()}, counts, pad_multiple, device)


class LazyEvents:
    """A split read from its shards on demand (random access through the HDF5 chunk cache)."""

    def __init__(
        self,
        directory,
        split: str,
        manifest: dict,
        max_events: int | None = None,
        verify_checksum: bool = False,
        cache_bytes: int = 64 << 20,
    ):
        directory = Path(directory)
        self.readers, counts, self._genmet = [], [], []
        have = 0
        for entry in manifest["splits"][split]["shards"]:
            if max_events is not None and have >= max_events:
                break
            path = directory / entry["path"]
            check_shard(path, manifest, entry, verify_checksum=verify_checksum)
            reader = ShardReader(path, cache_bytes=cache_bytes)
            n = len(reader)
            take = n if max_events is None else min(n, max_events - have)
            self.readers.append(reader)
            counts.append(reader.n_elements()[:take])
            self._genmet.append(reader.genmet()[:take])
            have += take
        self.n_elements = np.concatenate(counts).astype(np.int64)
        self.genmet = np.concatenate(self._genmet)
        sizes = np.array([c.size for c in counts])
        self._shard_of = np.repeat(np.arange(sizes.size), sizes)
        self._local = np.arange(self.n_elements.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)

    @property
    def n_events(self) -> int:
        return int(self.n_elements.size)

    def _event(self, i: int):
        return self.readers[self._shard_of[i]].event(int(self._local[i]))

    def event_genjets(self, i: int) -> np.ndarray:
        return self.readers[self._shard_of[i]].genjets(int(self._local[i]))

    def event_genmet(self, i: int) -> float:
        return float(self.genmet[i])

    def batch(self, events, pad_multiple: int = 1, device=None) -> dict:
        events = np.asarray(events, np.int64)
        parts = [self._event(int(i)) for i in events]
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        return pad_batch(prepare_rows(X, y), self.n_elements[events], pad_multiple, device)

    def close(self) -> None:
        for r in self.readers:
            r.close()
