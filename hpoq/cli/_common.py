"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import json
import os
import re
import sys

from hpoq.errors import ConfigError
from hpoq.jsonable import numpy_default


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-4"``, ``"3"`` or ``"0,2,5"`` (ranges inclusive) into a list of seeds."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"--seeds: cannot parse {text!r}; use a range like 0-4 or a list like 0,2,5") from None
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds: seeds must be non-negative, got {text!r}")
    return seeds


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
    json.dump(obj, sys.stdout, indent=None, sort_keys=False, default=numpy_default)
    sys.stdout.write("\n")


# what a dataset directory of ``generate-data`` / ``convert-events`` holds: the manifest, and shards (or their
# temporary and stats-less forms) under train/ and val/
_SHARD = re.compile(r"(?:train|val)/\.?shard-\d{5}-of-\d{5}\.h5(?:\.nostats)?(?:\.tmp\d+)?")


def check_dataset_out(out: str) -> None:
    """Refuse (one line) a dataset ``--out`` that holds anything but an hpoq dataset (finished or not)."""
    from hpoq.writable import refuse_foreign_dir

    def ours(rel: str) -> bool:
        return rel in ("dataset.json", "train/", "val/") or _SHARD.fullmatch(rel) is not None

    refuse_foreign_dir(out, "--out", ours, "an hpoq dataset")


def check_out_file(out: str, inputs, overwrite: bool) -> None:
    """Refuse (one line) an ``--out`` file that is one of the command's ``inputs``, or exists without ``--overwrite``."""
    from hpoq.writable import same_file

    for src in inputs:
        if src and (same_file(out, src) or os.path.abspath(out) == os.path.abspath(src)):
            raise ConfigError(f"--out {out!r} is the input {src!r}; write the output to another file")
    if os.path.isdir(out):
        raise ConfigError(f"--out {out!r} is a directory; give a file name")
    if os.path.lexists(out) and not overwrite:
        raise ConfigError(f"--out {out!r} exists; hpoq will not replace it: choose another name or pass --overwrite")
