"""Fingerprints of the inputs a study's results depend on, recorded at start and checked on resume.

Inputs: the trainer's path parameters (``Trainer.path_params``: the table trainer's curve table,
the MLPF trainer's dataset directory) and ``warm_curves``. A file is fingerprinted by its SHA-256;
a directory by the SHA-256 of its manifest ``dataset.json`` (which holds the events' content
hash, see :mod:`hpoq.mlpf.writer`), else of the sorted list of its files with their sizes.
Replacing a table between a run and its resume would replay the journal against other data --
trials FAILED for rows that no longer exist and a wrong best -- so ``run --resume`` refuses it
unless ``--allow-changed-inputs``.
"""

from __future__ import annotations

import hashlib
import os

from hpoq.errors import ConfigError

MANIFEST = "dataset.json"
_CHUNK = 1 << 20


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: str) -> dict:
    """``{path, kind, sha256}`` of a file or dataset directory; ``kind: missing`` if it is gone."""
    try:
        if os.path.isfile(path):
            return {"path": path, "kind": "file", "sha256": _sha256_file(path)}
        if os.path.isdir(path):
            manifest = os.path.join(path, MANIFEST)
            if os.path.isfile(manifest):
                return {"path": path, "kind": "manifest", "sha256": _sha256_file(manifest)}
            listing = sorted(
                (os.path.relpath(os.path.join(d, f), path), os.path.getsize(os.path.join(d, f)))
                for d, _, files in os.walk(path)
                for f in files
            )
            return {"path": path, "kind": "listing", "sha256": hashlib.sha256(repr(listing).encode()).hexdigest()}
    except OSError as exc:
        raise ConfigError(f"input {path!r} cannot be read ({exc.strerror})") from None
    return {"path": path, "kind": "missing", "sha256": None}


def study_inputs(spec) -> dict[str, str]:
    """``{key path in the study: absolute path}`` of every input file or directory of a (checked) study."""
    from hpoq.trainers import trainer_class

    paths: dict[str, str] = {}
    for key in getattr(trainer_class(spec.trainer.name), "path_params", ()):
        value = spec.trainer.params.get(key)
        if isinstance(value, str):
            paths[f"trainer.params.{key}"] = value
    if spec.warm_curves is not None:
        paths["warm_curves"] = spec.warm_curves.path
    return paths


def fingerprints(spec) -> dict[str, dict]:
    return {key: fingerprint(path) for key, path in study_inputs(spec).items()}


def changed_inputs(recorded: dict | None) -> list[str]:
    """One phrase per recorded input that is now missing or different (journals without fingerprints: none)."""
    changed = []
    for key, old in (recorded or {}).items():
        now = fingerprint(old["path"])
        if now["sha256"] != old.get("sha256"):
            what = (
                "is gone"
                if now["kind"] == "missing"
                else (f"changed (sha256 {str(old.get('sha256'))[:12]} -> {now['sha256'][:12]})")
            )
            changed.append(f"{key} {old['path']!r} {what}")
    return changed
