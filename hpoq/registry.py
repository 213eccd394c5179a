"""Name -> class registries: the lazy import shared by predictors, schedulers and trainers.

Registries map a name used in study files and on the command line to ``"package.module:Class"``;
the module is imported on first use, so naming one algorithm never imports torch or dwave.
"""
from __future__ import annotations

import importlib

from hpoq.errors import ConfigError


def import_class(kind: str, name: str, target: str):
    """Import ``target`` (``"package.module:Class"``) registered as ``kind`` ``name``.

    Raises :class:`ConfigError` naming what is missing: the module, a package it needs, or the class.
    """
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"{kind} {name!r}: expected package.module:Class, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise ConfigError(f"{kind} {name!r}: module {module_name} cannot be imported (not found)") from None
        raise ConfigError(f"{kind} {name!r} needs the missing package {exc.name!r}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"{kind} {name!r}: {module_name} has no class {class_name}")
    return cls
