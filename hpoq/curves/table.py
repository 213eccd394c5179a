"""Curve tables: one row per trained configuration, hyperparameter columns and ``<metric>_<epoch>``.

A table is CSV or CSV.gz. Metric columns ``<metric>_<k>`` must be consecutive in ``k`` (the
first may be 0 or 1); ``curves[:, j]`` is the value after epoch ``j + 1`` (docs/algorithms.md#conventions).
Every other column is a hyperparameter (numeric, or a categorical string), except an optional
per-row time column (seconds per epoch) and columns of other metrics, which are ignored.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from hpoq.atomic import write_atomic
from hpoq.errors import ConfigError

log = logging.getLogger(__name__)

_METRIC_COL = re.compile(r"^(?P<metric>.+)_(?P<epoch>\d+)$")


@dataclass
class CurveTable:
    """Learning curves of ``n`` configurations over ``n_epochs`` epochs.

    ``curves`` keeps the metric's own direction; ``minimized()`` gives the values with the
    sign flipped for ``mode == "max"``, which is what schedulers and predictors work on.
    """

    hp_names: list[str]
    configs: list[dict]
    curves: np.ndarray
    metric: str
    mode: str = "min"
    time: np.ndarray | None = None
    source: str = ""
    dropped: int = 0
    provenance: dict = field(default_factory=dict)
    #: per-row number of recorded epochs (curves NaN-padded after it); None = every row complete
    lengths: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.curves.shape[0])

    @property
    def n_epochs(self) -> int:
        return int(self.curves.shape[1])

    def minimized(self) -> np.ndarray:
        """Curves with lower = better (accuracy-type metrics negated, docs/algorithms.md#conventions)."""
        return -self.curves if self.mode == "max" else self.curves

    def subset(self, rows) -> "CurveTable":
        rows = np.asarray(rows, dtype=int)
        return CurveTable(
            hp_names=list(self.hp_names),
            configs=[self.configs[i] for i in rows],
            curves=self.curves[rows],
            metric=self.metric,
            mode=self.mode,
            time=None if self.time is None else self.time[rows],
            source=self.source,
            dropped=0,
            provenance=dict(self.provenance),
            lengths=None if self.lengths is None else np.asarray(self.lengths)[rows],
        )

    def row_lengths(self) -> np.ndarray:
        """Recorded epochs per row (``n_epochs`` for every row of a complete table)."""
        if self.lengths is None:
            return np.full(self.n_rows, self.n_epochs, dtype=np.int64)
        return np.asarray(self.lengths, dtype=np.int64)


def _open_text(path: str):
    if not os.path.exists(path):
        raise ConfigError(f"curve table {path!r} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"curve table {path!r} is a directory, not a CSV file")
    raw = open(path, "rb").read()
    if path.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ConfigError(f"curve table {path!r} is not a readable gzip file ({exc})") from None
    try:
        return io.StringIO(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"curve table {path!r} is not UTF-8 text (CSV expected)") from None


def _parse_value(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    if value.is_integer() and not any(c in text for c in ".eE") and "nan" not in text.lower():
        return int(value)
    return value


def metric_names(header: list[str]) -> list[str]:
    """Metric names that have ``<metric>_<epoch>`` columns in ``header``."""
    names = []
    for col in header:
        m = _METRIC_COL.match(col)
        if m and m.group("metric") not in names:
            names.append(m.group("metric"))
    return names


def load_table(path: str, metric: str, mode: str = "min", time_column: str | None = None) -> CurveTable:
    """Load a curve table; rows with non-finite values in the used columns are dropped and counted.

    Raises :class:`ConfigError` for a missing or unreadable file, a metric without columns,
    non-consecutive epochs, a bad ``mode`` or a table with no usable rows.
    """
    if mode not in ("min", "max"):
        raise ConfigError(f"curve table {path!r}: mode must be 'min' or 'max', got {mode!r}")
    reader = csv.reader(_open_text(path))
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError(f"curve table {path!r} is empty") from None
    except csv.Error as exc:
        raise ConfigError(f"curve table {path!r} is not valid CSV ({exc})") from None
    twice = sorted({c for c in header if c and header.count(c) > 1})
    if twice:  # one would silently replace the other in every row
        raise ConfigError(f"curve table {path!r}: column {twice[0]!r} appears more than once in the header")
    columns = _Columns.of(path, header, metric, time_column)
    configs, rows, times, dropped = columns.read(path, reader)
    if not rows:
        raise ConfigError(f"curve table {path!r} has no rows with finite {metric!r} values")
    if dropped:
        log.warning(
            "curve table %s: %d of %d rows dropped (NaN/inf or non-numeric %s values, or a non-finite hyperparameter)",
            path,
            dropped,
            dropped + len(rows),
            metric,
        )
    return CurveTable(
        hp_names=[header[i] for i in columns.hps],
        configs=configs,
        curves=np.asarray(rows, dtype=np.float64),
        metric=metric,
        mode=mode,
        time=np.asarray(times, dtype=np.float64) if columns.time is not None else None,
        source=os.path.abspath(path),
        dropped=dropped,
        provenance={"first_epoch": columns.first_epoch},
    )


@dataclass
class _Columns:
    """Where a table's values are: the metric's columns in epoch order, the hyperparameters, the time column."""

    header: list
    metric: list  # column of epoch first_epoch, first_epoch + 1, ...
    hps: list
    time: int | None
    first_epoch: int

    @classmethod
    def of(cls, path: str, header: list, metric: str, time_column: str | None) -> "_Columns":
        metric_cols: dict[int, int] = {}
        other_metrics = set(metric_names(header)) - {metric}
        hp_idx: list[int] = []
        time_idx = None
        for i, col in enumerate(header):
            m = _METRIC_COL.match(col)
            if m and m.group("metric") == metric:
                metric_cols[int(m.group("epoch"))] = i
            elif m and m.group("metric") in other_metrics:
                continue
            elif time_column is not None and col == time_column:
                time_idx = i
            elif col and not col.startswith("Unnamed"):
                hp_idx.append(i)
        if not metric_cols:
            found = ", ".join(metric_names(header)) or "none"
            raise ConfigError(f"curve table {path!r} has no columns {metric}_<epoch> (metrics found: {found})")
        if time_column is not None and time_idx is None:
            raise ConfigError(f"curve table {path!r} has no time column {time_column!r}")
        epochs = sorted(metric_cols)
        if epochs != list(range(epochs[0], epochs[0] + len(epochs))) or epochs[0] not in (0, 1):
            raise ConfigError(f"curve table {path!r}: epochs of {metric!r} are not consecutive from 0 or 1")
        return cls(header, [metric_cols[e] for e in epochs], hp_idx, time_idx, epochs[0])

    def read(self, path: str, reader) -> tuple[list, list, list, int]:
        """(configs, curves, seconds per epoch, rows dropped) of the rows after the header."""
        header, configs, rows, times, dropped = self.header, [], [], [], 0
        try:
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise ConfigError(
                        f"curve table {path!r}: line {line_no} has {len(row)} fields, expected {len(header)} "
                        "(truncated file?)"
                    )
                try:
                    values = [float(row[i]) for i in self.metric]
                    t = float(row[self.time]) if self.time is not None else 1.0
                except ValueError:
                    dropped += 1
                    continue
                config = {header[i]: _parse_value(row[i]) for i in self.hps}
                numeric_ok = all(not isinstance(v, float) or math.isfinite(v) for v in config.values())
                if not (numeric_ok and all(math.isfinite(v) for v in values) and math.isfinite(t)):
                    dropped += 1
                    continue
                configs.append(config)
                rows.append(values)
                times.append(t)
        except csv.Error as exc:
            raise ConfigError(f"curve table {path!r} is not valid CSV ({exc})") from None
        return configs, rows, times, dropped


def _format_cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if math.isfinite(value) else "nan"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return "" if value is None else str(value)


def write_table(path: str, table: CurveTable, time_column: str = "seconds_per_epoch") -> None:
    """Write ``table`` as CSV (gzip-compressed when ``path`` ends in ``.gz``), atomically.

    Columns: the hyperparameters, then ``time_column`` if the table has per-row times, then
    ``<metric>_<k>`` numbered from ``provenance["first_epoch"]`` (default 1). Floats are written
    with ``repr`` so that :func:`load_table` reads back identical values; NaN padding of
    incomplete rows is written as ``nan`` (such rows are dropped by :func:`load_table`).
    """
    first = int(table.provenance.get("first_epoch", 1))
    header = list(table.hp_names)
    if table.time is not None:
        header.append(time_column)
    header += [f"{table.metric}_{first + j}" for j in range(table.n_epochs)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, cfg in enumerate(table.configs):
        row = [_format_cell(cfg.get(name)) for name in table.hp_names]
        if table.time is not None:
            row.append(_format_cell(table.time[i]))
        row += [_format_cell(v) for v in table.curves[i]]
        writer.writerow(row)
    data = buf.getvalue().encode("utf-8")
    if path.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(f"output directory {directory!r} does not exist")
    write_atomic(path, data)
