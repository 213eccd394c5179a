"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import json
import os
import re
import sys

from hpoq.errors import ConfigError
from hpoq.jsonable import numpy_default

MAX_SEEDS = 1_000_000  # seeds in one call: a day of replays of the largest table; more is a typo
MAX_SEED = 2**32 - 1  # seeds are taken modulo 2**32 (hpoq.seeding): larger ones would repeat smaller ones


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-4"``, ``"3"`` or ``"0,2,5"`` (ranges inclusive) into a list of seeds.

    Seeds lie in [0, 2**32 - 1]; at most :data:`MAX_SEEDS` of them (a longer range is refused
    before any list is built).
    """
    ranges: list[tuple[int, int]] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                ranges.append((lo_i, hi_i))
            else:
                ranges.append((int(part), int(part)))
    except ValueError:
        raise ConfigError(f"--seeds: cannot parse {text!r}; use a range like 0-4 or a list like 0,2,5") from None
    if any(lo < 0 for lo, _ in ranges):
        raise ConfigError(f"--seeds: seeds must be non-negative, got {text!r}")
    if any(hi > MAX_SEED for _, hi in ranges):
        raise ConfigError(f"--seeds: seeds must be at most {MAX_SEED} (2**32 - 1), got {text!r}")
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise ConfigError(f"--seeds {text!r} asks for {count} seeds; at most {MAX_SEEDS:,} per call")
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


def parse_fraction(
    text: str, name: str, *, low_open: bool = True, high_open: bool = True, low: float = 0.0, high: float = 1.0
) -> float:
    """Parse a float that must lie in the interval (low, high) (ends open or closed as given)."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a number") from None
    lo_ok = value > low if low_open else value >= low
    hi_ok = value < high if high_open else value <= high
    if not (lo_ok and hi_ok):
        lb, hb = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"{name} must lie in {lb}{low:g}, {high:g}{hb}, got {value:g}")
    return value


def parse_params(items: list[str] | None) -> dict:
    """Parse repeated ``--param key=value``; values are read as JSON when they parse, else kept as strings."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--param {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def print_json(obj) -> None:
    # one write: the secret mask of sys.stdout sees whole values, not json.dump's fragments
    sys.stdout.write(json.dumps(obj, indent=None, sort_keys=False, default=numpy_default) + "\n")


# what a dataset directory of ``generate-data`` / ``convert-events`` holds: the manifest, and shards (or their
# temporary and stats-less forms) under train/ and val/
_SHARD = re.compile(r"(?:train|val)/\.?shard-\d{5}-of-\d{5}\.h5(?:\.nostats)?(?:\.tmp\d+)?")


def check_time_column(time_column: str | None, src: str, kind: str) -> None:
    """Refuse ``--time-column`` for a source that has no named columns (a shared table, an HDF5 store)."""
    if time_column is not None:
        raise ConfigError(
            f"--time-column {time_column!r}: {src!r} is {kind}, which has no column of that name "
            "(only a CSV table has named columns; give the CSV file, or leave --time-column out)"
        )


def check_dataset_out(out: str) -> None:
    """Refuse (one line) a dataset ``--out`` that holds anything but an hpoq dataset (finished or not)."""
    from hpoq.writable import refuse_foreign_dir

    def ours(rel: str) -> bool:
        return rel in ("dataset.json", "train/", "val/") or _SHARD.fullmatch(rel) is not None

    refuse_foreign_dir(out, "--out", ours, "an hpoq dataset")


def check_out_file(out: str, inputs, overwrite: bool) -> None:
    """Refuse (one line) an ``--out`` file that is an input, or that exists without ``--overwrite``."""
    from hpoq.writable import same_file

    for src in inputs:
        if src and (same_file(out, src) or os.path.abspath(out) == os.path.abspath(src)):
            raise ConfigError(f"--out {out!r} is the input {src!r}; write the output to another file")
    if os.path.isdir(out):
        raise ConfigError(f"--out {out!r} is a directory; give a file name")
    if os.path.lexists(out) and not overwrite:
        raise ConfigError(f"--out {out!r} exists; hpoq will not replace it: choose another name or pass --overwrite")
