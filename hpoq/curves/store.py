"""The HDF5 learning-curve store (h5py): configs, curves, metric, mode and provenance.

Layout of a store file (format ``hpoq-curve-store``, version 1):

- root attributes: ``format``, ``version``, ``metric``, ``mode`` (``min``/``max``),
  ``hp_names`` (JSON list), ``provenance`` (JSON object), ``source``, ``dropped``;
- ``curves``: float64 [n, max_epochs], NaN after each row's recorded epochs, resizable in both
  dimensions (chunked) so that a running study can grow it;
- ``lengths``: int64 [n], recorded epochs per row;
- ``configs``: UTF-8 strings [n], one JSON object per row (categorical values survive as strings);
- ``trial_ids``: UTF-8 strings [n], the JSON of each row's trial id (``null`` for tables);
- ``time`` (optional): float64 [n], seconds per epoch.

:func:`write_store` writes a whole :class:`CurveTable` atomically (temp file, then rename);
:class:`CurveStore` appends and updates rows one at a time and flushes after each change
(only one process, e.g. MPI rank 0, may write a store; h5py from PyPI is serial).
"""

from __future__ import annotations

import json
import os

import numpy as np

from hpoq.atomic import atomic_h5
from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.jsonable import numpy_default

FORMAT = "hpoq-curve-store"
VERSION = 1


def _h5py():
    import h5py

    return h5py


def _dumps(obj) -> str:
    try:
        return json.dumps(obj, default=numpy_default, sort_keys=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"curve store: cannot serialise {obj!r} as JSON ({exc})") from None


def _check_mode(mode: str) -> None:
    if mode not in ("min", "max"):
        raise ConfigError(f"curve store: mode must be 'min' or 'max', got {mode!r}")


def _create_layout(
    f,
    metric: str,
    mode: str,
    hp_names,
    provenance,
    source: str = "",
    dropped: int = 0,
    n: int = 0,
    epochs: int = 0,
    with_time: bool = False,
) -> None:
    h5py = _h5py()
    f.attrs["format"] = FORMAT
    f.attrs["version"] = VERSION
    f.attrs["metric"] = str(metric)
    f.attrs["mode"] = mode
    f.attrs["hp_names"] = _dumps(list(hp_names))
    f.attrs["provenance"] = _dumps(dict(provenance or {}))
    f.attrs["source"] = str(source or "")
    f.attrs["dropped"] = int(dropped)
    text = h5py.string_dtype("utf-8")
    chunk_rows = 64
    f.create_dataset(
        "curves",
        shape=(n, epochs),
        maxshape=(None, None),
        dtype="f8",
        chunks=(chunk_rows, max(epochs, 16)),
        fillvalue=np.nan,
    )
    f.create_dataset("lengths", shape=(n,), maxshape=(None,), dtype="i8", chunks=(256,))
    f.create_dataset("configs", shape=(n,), maxshape=(None,), dtype=text, chunks=(256,))
    f.create_dataset("trial_ids", shape=(n,), maxshape=(None,), dtype=text, chunks=(256,))
    if with_time:
        f.create_dataset("time", shape=(n,), maxshape=(None,), dtype="f8", chunks=(256,), fillvalue=np.nan)


def write_store(
    path: str, table: CurveTable, provenance: dict | None = None, trial_ids: list | None = None, with_time: bool = False
) -> None:
    """Write ``table`` to the HDF5 store ``path`` atomically (temp file in the same folder, then rename).

    ``provenance`` is merged over ``table.provenance``; ``trial_ids`` (one per row, JSON values) are the rows'
    trial ids (default ``null``: rows of a table); ``with_time``: a ``time`` dataset even when the table has no
    times (NaN), as a :class:`CurveStore` keeps one. Everything is validated before the temp file is created, so
    bad input leaves nothing behind. One write per dataset: a study's 10^5 curves take a second, where
    :meth:`CurveStore.append` flushes every row.
    """
    _check_mode(table.mode)
    curves = np.asarray(table.curves, dtype=np.float64)
    if curves.ndim != 2:
        raise ConfigError(f"curve store: curves must be 2-d [n, epochs], got shape {curves.shape}")
    n, epochs = curves.shape
    if len(table.configs) != n:
        raise ConfigError(f"curve store: {len(table.configs)} configs for {n} curves")
    lengths = table.row_lengths()
    if lengths.shape != (n,) or (lengths < 0).any() or (lengths > epochs).any():
        raise ConfigError("curve store: lengths must be one value in [0, epochs] per row")
    configs = [_dumps(c if c is not None else {}) for c in table.configs]
    prov = dict(table.provenance)
    prov.update(provenance or {})
    _dumps(prov)
    time = None if table.time is None else np.asarray(table.time, dtype=np.float64)
    if time is not None and time.shape != (n,):
        raise ConfigError(f"curve store: time must have one value per row, got shape {time.shape}")
    ids = ["null"] * n if trial_ids is None else [_dumps(t) for t in trial_ids]
    if len(ids) != n:
        raise ConfigError(f"curve store: {len(ids)} trial ids for {n} curves")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(f"curve store: output directory {directory!r} does not exist")
    _h5py()  # a clear error when h5py is missing
    with atomic_h5(path) as f:  # in memory first: a full disk is one OSError, not an HDF5 crash
        _create_layout(
            f,
            table.metric,
            table.mode,
            table.hp_names,
            prov,
            table.source,
            table.dropped,
            n=n,
            epochs=epochs,
            with_time=with_time or time is not None,
        )
        if n:
            f["curves"][...] = curves
            f["lengths"][...] = lengths
            f["configs"][...] = np.asarray(configs, dtype=object)
            f["trial_ids"][...] = np.asarray(ids, dtype=object)
            if time is not None:
                f["time"][...] = time


def _open_existing(path: str, mode: str = "r"):
    if not os.path.exists(path):
        raise ConfigError(f"curve store {path!r} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"curve store {path!r} is a directory, not an HDF5 file")
    h5py = _h5py()
    try:
        f = h5py.File(path, mode)
    except OSError as exc:
        raise ConfigError(f"curve store {path!r} is not a readable HDF5 file (truncated or foreign?): {exc}") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise ConfigError(f"curve store {path!r} is an HDF5 file but not an hpoq curve store (no format={FORMAT!r})")
    version = int(f.attrs.get("version", -1))
    if version > VERSION:
        f.close()
        raise ConfigError(f"curve store {path!r} has format version {version}; this hpoq reads up to {VERSION}")
    missing = [k for k in ("curves", "lengths", "configs", "trial_ids") if k not in f]
    if missing:
        f.close()
        raise ConfigError(f"curve store {path!r} lacks dataset(s) {', '.join(missing)}")
    return f


def _as_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_open(f, path: str) -> tuple[CurveTable, list]:
    try:
        curves = np.asarray(f["curves"][...], dtype=np.float64)
        lengths = np.asarray(f["lengths"][...], dtype=np.int64)
        configs = [json.loads(_as_str(c)) for c in f["configs"][...]]
        trial_ids = [json.loads(_as_str(t)) for t in f["trial_ids"][...]]
        time = np.asarray(f["time"][...], dtype=np.float64) if "time" in f else None
        if time is not None and len(time) and np.isnan(time).all():
            time = None  # an appendable store whose rows never got a time
        hp_names = json.loads(_as_str(f.attrs["hp_names"]))
        provenance = json.loads(_as_str(f.attrs["provenance"]))
        metric, mode = _as_str(f.attrs["metric"]), _as_str(f.attrs["mode"])
        source, dropped = _as_str(f.attrs.get("source", "")), int(f.attrs.get("dropped", 0))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"curve store {path!r} is damaged ({exc})") from None
    n = len(curves)
    if not (len(lengths) == len(configs) == len(trial_ids) == n) or (time is not None and len(time) != n):
        raise ConfigError(f"curve store {path!r} is damaged (datasets of different lengths)")
    table = CurveTable(
        hp_names=hp_names,
        configs=configs,
        curves=curves,
        metric=metric,
        mode=mode,
        time=time,
        source=source or os.path.abspath(path),
        dropped=dropped,
        provenance=provenance,
        lengths=lengths,
    )
    return table, trial_ids


def read_store(path: str) -> CurveTable:
    """Read a store into a :class:`CurveTable` (curves NaN-padded, ``lengths`` set).

    A missing, truncated or foreign file raises :class:`ConfigError`.
    """
    f = _open_existing(path, "r")
    try:
        return _read_open(f, path)[0]
    finally:
        f.close()


def read_store_trial_ids(path: str) -> list:
    """The trial id of each row of a store (``None`` for rows written from a table)."""
    f = _open_existing(path, "r")
    try:
        return _read_open(f, path)[1]
    finally:
        f.close()


class CurveStore:
    """An appendable curve store for a running study; every change is flushed to disk.

    ``CurveStore(path, metric=..., mode=..., hp_names=..., provenance=...)`` creates the file
    if it does not exist; an existing store is opened for appending (its metric and mode must
    match those given, if given). Curves may have different lengths and may grow:
    :meth:`update` replaces a trial's curve (e.g. with more epochs), :meth:`extend` appends
    epochs to it. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        path: str,
        metric: str | None = None,
        mode: str | None = None,
        hp_names: list[str] | None = None,
        provenance: dict | None = None,
    ):
        self.path = str(path)
        if os.path.exists(self.path):
            self._f = _open_existing(self.path, "r+")
            stored_metric, stored_mode = _as_str(self._f.attrs["metric"]), _as_str(self._f.attrs["mode"])
            if (metric is not None and metric != stored_metric) or (mode is not None and mode != stored_mode):
                self._f.close()
                raise ConfigError(
                    f"curve store {self.path!r} holds {stored_metric!r} ({stored_mode}), not {metric!r} ({mode})"
                )
            self._index = {json.dumps(json.loads(_as_str(t))): i for i, t in enumerate(self._f["trial_ids"][...])}
        else:
            if metric is None:
                raise ConfigError(f"curve store {self.path!r} does not exist; a metric name is needed to create it")
            mode = mode or "min"
            _check_mode(mode)
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                raise ConfigError(f"curve store: output directory {directory!r} does not exist")
            self._f = _h5py().File(self.path, "w")
            _create_layout(self._f, metric, mode, hp_names or [], provenance or {}, with_time=True)
            self._f.flush()
            self._index = {}

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "CurveStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_f", None) is not None:
            self._f.flush()
            self._f.close()
            self._f = None

    # -- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._f["lengths"].shape[0])

    def __contains__(self, trial_id) -> bool:
        return self._key(trial_id) in self._index

    @property
    def metric(self) -> str:
        return _as_str(self._f.attrs["metric"])

    @property
    def mode(self) -> str:
        return _as_str(self._f.attrs["mode"])

    def curve(self, trial_id) -> np.ndarray:
        """The recorded curve of ``trial_id`` (its length = epochs recorded so far)."""
        row = self._row(trial_id)
        return np.asarray(self._f["curves"][row, : int(self._f["lengths"][row])], dtype=np.float64)

    def read(self) -> CurveTable:
        """The whole store as a :class:`CurveTable`."""
        self._f.flush()
        return _read_open(self._f, self.path)[0]

    def trial_ids(self) -> list:
        return _read_open(self._f, self.path)[1]

    # -- changes -----------------------------------------------------------------------------
    @staticmethod
    def _key(trial_id) -> str:
        return _dumps(trial_id)

    def _row(self, trial_id) -> int:
        try:
            return self._index[self._key(trial_id)]
        except KeyError:
            raise ConfigError(f"curve store {self.path!r} has no trial {trial_id!r}") from None

    @staticmethod
    def _as_curve(curve) -> np.ndarray:
        arr = np.asarray(curve, dtype=np.float64).ravel()
        return arr

    def _write_curve(self, row: int, arr: np.ndarray) -> None:
        curves = self._f["curves"]
        if arr.size > curves.shape[1]:
            curves.resize((curves.shape[0], arr.size))
        line = np.full(curves.shape[1], np.nan)
        line[: arr.size] = arr
        curves[row, :] = line
        self._f["lengths"][row] = arr.size

    def append(self, trial_id, config: dict | None, curve, time: float | None = None) -> int:
        """Add a new row for ``trial_id``; returns its row index. Flushed before returning."""
        key = self._key(trial_id)
        if key in self._index:
            raise ConfigError(f"curve store {self.path!r} already has trial {trial_id!r}; use update()")
        config_json = _dumps(config if config is not None else {})
        arr = self._as_curve(curve)
        row = len(self)
        for name in ("lengths", "configs", "trial_ids") + (("time",) if "time" in self._f else ()):
            self._f[name].resize((row + 1,))
        self._f["curves"].resize((row + 1, max(self._f["curves"].shape[1], arr.size)))
        self._f["configs"][row] = config_json
        self._f["trial_ids"][row] = key
        if "time" in self._f:
            self._f["time"][row] = np.nan if time is None else float(time)
        self._write_curve(row, arr)
        self._index[key] = row
        self._f.flush()
        return row

    def update(self, trial_id, curve=None, config: dict | None = None, time: float | None = None) -> int:
        """Replace the curve (and optionally config / time) of an existing trial; flushed."""
        row = self._row(trial_id)
        if config is not None:
            self._f["configs"][row] = _dumps(config)
        if time is not None and "time" in self._f:
            self._f["time"][row] = float(time)
        if curve is not None:
            self._write_curve(row, self._as_curve(curve))
        self._f.flush()
        return row

    def extend(self, trial_id, values) -> int:
        """Append epochs ``values`` to the curve of ``trial_id``; flushed."""
        row = self._row(trial_id)
        current = self.curve(trial_id)
        self._write_curve(row, np.concatenate([current, self._as_curve(values)]))
        self._f.flush()
        return row

    def upsert(self, trial_id, config: dict | None, curve, time: float | None = None) -> int:
        """:meth:`update` if ``trial_id`` is stored, else :meth:`append`."""
        if trial_id in self:
            return self.update(trial_id, curve, config=config, time=time)
        return self.append(trial_id, config, curve, time=time)


__all__ = ["CurveStore", "read_store", "read_store_trial_ids", "write_store", "FORMAT", "VERSION"]
