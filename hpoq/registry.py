"""Name -> class registries and the one parameter layer of schedulers, predictors, samplers and trainers.

Registries map a name used in study files and on the command line to ``"package.module:Class"``;
the module is imported on first use, so naming one algorithm never imports torch or dwave.

Every registered class declares its parameters once, as a class attribute in the style of
scikit-learn's ``_parameter_constraints``::

    parameter_constraints = {
        "grace": [Interval(int, 1, None)],
        "refit": [Options("never", "on_growth")],
        "top_k": [Interval(int, 1, None), None],    # None: null is allowed
    }

Tables are merged along the class hierarchy (a subclass adds or overrides entries; a subclass
with its own ``__init__`` declares a table, if only ``{}``, to say the merged one is complete).
:func:`build` checks a parameter dict against the table -- unknown keys and bad values raise a
:class:`~hpoq.errors.ConfigError` naming the key path (``algorithm.params.grace``) -- and then
constructs the class. A plugin class without a table is checked against its constructor's
signature instead; this module is the only one that inspects signatures.

A single value checked outside a table (a study file's own keys, R and eta, a bound that depends on
another argument) goes through :func:`check_int` / :func:`check_number`, which hold it to the same
notion of an integer and a number as :class:`Interval`.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
from dataclasses import dataclass, field

from hpoq.errors import ConfigError

#: kind -> "module:function" resolving a registered name to its class (imported lazily: no cycles)
KINDS = {
    "scheduler": "hpoq.schedulers:scheduler_class",
    "predictor": "hpoq.predict:predictor_class",
    "sampler": "hpoq.predict.samplers:sampler_class",
    "trainer": "hpoq.trainers:trainer_class",
}


#: top-level package -> the extra of hpoq that installs it (``pip install 'hpoq[EXTRA]'``)
EXTRAS = {"torch": "mlpf", "fastjet": "mlpf", "dimod": "dwave", "dwave": "dwave", "mpi4py": "mpi"}


def missing_package(what: str, exc: ModuleNotFoundError) -> ConfigError:
    """The one-line error for ``what`` (e.g. ``trainer 'mlpf'``) when package ``exc.name`` is not installed,
    naming the extra of hpoq that installs it."""
    package = (exc.name or "").partition(".")[0]
    extra = EXTRAS.get(package)
    hint = f": pip install 'hpoq[{extra}]'" if extra else ""
    return ConfigError(f"{what} needs the missing package {package or exc.name!r}{hint}")


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (where a SyntaxError is: file and line)."""
    if isinstance(exc, SystemExit):
        return f"it calls sys.exit({exc.code!r})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, SyntaxError) and exc.filename and f"line {exc.lineno}" not in text:
        text += f" ({exc.filename}, line {exc.lineno})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        raise missing_package(f"{kind} {name!r}", exc) from None
    except (Exception, SystemExit) as exc:  # SystemExit: a module that calls sys.exit() as it is imported
        if module_name == "hpoq" or module_name.startswith("hpoq."):
            raise  # a bug of hpoq's own modules keeps its traceback
        # a user's plugin module that does not import (ImportError, SyntaxError, an error at import time)
        raise ConfigError(f"{kind} {name!r}: module {module_name} fails to import: {_first_line(exc)}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"{kind} {name!r}: {module_name} has no class {class_name}")
    return cls


# ------------------------------------------------------------------------------------ constraints


class Interval:
    """A number of ``kind`` (``int``: an integer, ``float``: any finite real) between ``low`` and ``high``
    (None: unbounded); ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``. Booleans are
    never numbers here."""

    def __init__(self, kind: type, low=None, high=None, closed: str = "both", text: str | None = None):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed
        self.text = text  # how the range reads in a message ("a positive number of seconds"), if not as bounds

    def range_text(self) -> str:
        """The range alone: ``>= 0``, ``> 0``, ``in [0, 1)`` (or :attr:`text`)."""
        if self.text:
            return self.text
        low_closed, high_closed = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.high is None and self.low is not None:
            return f"{'>=' if low_closed else '>'} {self.low:g}"
        if self.low is None and self.high is not None:
            return f"{'<=' if high_closed else '<'} {self.high:g}"
        return str(self).split(" ", 2)[-1] if self.low is not None else "any"

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if self.kind is int else numbers.Real):
            return False
        if not math.isfinite(value):
            return False
        low_ok = self.low is None or value > self.low or (value == self.low and self.closed in ("both", "left"))
        high_ok = self.high is None or value < self.high or (value == self.high and self.closed in ("both", "right"))
        return low_ok and high_ok

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.low is None and self.high is None:
            return what
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{what} in {left}{low}, {high}{right}"


class Options:
    """One of the given values (compared with ==, booleans never equal to numbers)."""

    def __init__(self, *values):
        self.values = values

    def accepts(self, value) -> bool:
        return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values)

    def __str__(self) -> str:
        if len(self.values) == 2:
            return f"{self.values[0]!r} or {self.values[1]!r}"
        return "one of " + ", ".join(repr(v) for v in self.values)


class Boolean:
    """true or false."""

    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "true or false"


class Text:
    """A non-empty string."""

    def accepts(self, value) -> bool:
        return isinstance(value, str) and bool(value)

    def __str__(self) -> str:
        return "a non-empty string"


class Mapping:
    """A mapping (a dict in the study file)."""

    def accepts(self, value) -> bool:
        return isinstance(value, dict)

    def __str__(self) -> str:
        return "a mapping"


class Plugin:
    """A plugin of ``kind`` (a QUBO sampler, ...): ``{name, params}``, a registered name, or the object itself,
    built once by the caller and passed in (dwave-system's samplers and composites)."""

    def __init__(self, kind: str):
        self.kind = kind

    def accepts(self, value) -> bool:
        if isinstance(value, str):
            return bool(value)
        if isinstance(value, dict):
            return PluginSpec.problem(value) is None
        return not isinstance(value, (bool, numbers.Number, list, tuple))

    def __str__(self) -> str:
        return f"a {self.kind}: {{name, params}}, a name, or a {self.kind} object"


class Anything:
    """Any value (objects handed over by code, such as a sampler or a curve table)."""

    def accepts(self, value) -> bool:
        return True

    def __str__(self) -> str:
        return "anything"


@dataclass
class PluginSpec:
    """A plugin named in a study file -- the algorithm, the predictor, the trainer, a predictor's QUBO sampler:
    its registered name (or ``package.module:Class``) and its parameters."""

    name: str
    params: dict = field(default_factory=dict)

    @staticmethod
    def problem(value: dict) -> str | None:
        """Why the mapping ``value`` is not ``{name, params}`` (None if it is)."""
        unknown = [k for k in value if k not in ("name", "params")]
        if unknown:
            return f"unknown key {unknown[0]!r} (allowed: name, params)"
        if not isinstance(value.get("name"), str) or not value.get("name"):
            return f"name must be a non-empty string, got {value.get('name')!r}"
        params = value.get("params")
        if params is not None and not (isinstance(params, dict) and all(isinstance(k, str) for k in params)):
            return f"params must be a mapping with string keys, got {params!r}"
        return None

    @classmethod
    def parse(cls, value, path: str) -> "PluginSpec":
        """From a study file's ``{name, params}`` (or a bare name); ConfigError naming ``path`` otherwise."""
        if isinstance(value, str) and value:
            return cls(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping {{name, params}}, got {value!r}")
        problem = cls.problem(value)
        if problem:
            raise ConfigError(f"{path}: {problem}")
        return cls(value["name"], dict(value.get("params") or {}))

    def to_dict(self) -> dict:
        return {"name": self.name, "params": dict(self.params)}


def check_spec(value: dict, path: str) -> None:
    """ConfigError naming ``path`` unless ``value`` is a plugin's ``{name, params}``."""
    PluginSpec.parse(value, path)


def check_nested(cls, params: dict, path: str) -> None:
    """Check (without building anything) the parameters ``cls`` builds from a nested ``{name, params}`` (its
    ``nested_plugins``); errors name ``path.key.params.name``."""
    for key, builder in getattr(cls, "nested_plugins", {}).items():
        if isinstance(params.get(key), (dict, str)):
            builder(params[key], path=f"{path}.{key}", build=False)


def build_nested(cls, params: dict, path: str) -> dict:
    """``params`` with every parameter ``cls`` builds from a nested ``{name, params}`` (its ``nested_plugins``,
    e.g. qsvr's ``sampler``) built now, once: the object is then shared by every instance the caller makes
    (a scheduler builds a predictor per model). Errors name ``path.key``."""
    out = dict(params)
    for key, builder in getattr(cls, "nested_plugins", {}).items():
        if isinstance(out.get(key), (dict, str)):
            out[key] = builder(out[key], path=f"{path}.{key}")
    return out


def check_section(values, table: dict, path: str, *, whole_floats: bool = False) -> dict:
    """A study file's section ``values`` checked against ``table`` (key -> constraints, as a class's
    ``parameter_constraints``): an unknown key or a bad value is a ConfigError naming ``path.key``. With
    ``whole_floats`` a float with an integer value is taken as that integer where an integer is expected
    (``R: 9.0``). Returns the checked values."""
    if not isinstance(values, dict):
        kind = "null" if values is None else type(values).__name__
        raise ConfigError(f"{path or 'a study file'} must be a mapping, got {kind}")
    out = {}
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in table:
            raise ConfigError(f"{where}: unknown key (allowed: {', '.join(table)})")
        wants_int = any(isinstance(c, Interval) and c.kind is int for c in table[key])
        if whole_floats and wants_int and isinstance(value, float) and value.is_integer():
            value = int(value)
        _check_setting(where, value, table[key])
        out[key] = value
    return out


def _check_setting(where: str, value, constraints: list) -> None:
    """:func:`check_value` for a study file's own key; a number says what is wrong with it as
    :func:`check_int` / :func:`check_number` do: its kind (``seed must be an integer``), else its range
    (``max_retries must be >= 0``)."""
    numbers_ = [c for c in constraints if isinstance(c, Interval)]
    if len(numbers_) != 1 or any(c is not None and c is not numbers_[0] for c in constraints):
        check_value(where, value, constraints)
        return
    if value is None and None in constraints:
        return
    interval = numbers_[0]
    (check_int if interval.kind is int else check_number)(where, value)  # the kind
    if not interval.accepts(value):
        null = " or null" if None in constraints else ""
        raise ConfigError(f"{where} must be {interval.range_text()}{null}, got {value!r}")


def _accepts(constraint, value) -> bool:
    return value is None if constraint is None else constraint.accepts(value)


def check_value(path: str, value, constraints: list) -> None:
    """Raise a ConfigError naming ``path`` unless ``value`` satisfies one of ``constraints``."""
    if not any(_accepts(c, value) for c in constraints):
        described = " or ".join("null" if c is None else str(c) for c in constraints)
        raise ConfigError(f"{path} must be {described}, got {value!r}")


def _bounds(low, high) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f">= {low}"
    return f"<= {high}" if high is not None else ""


def check_int(label: str, value, low: int | None = None, high: int | None = None, *, whole_floats: bool = False) -> int:
    """``value`` as an int if it is an integer (:class:`Interval` ``int``: never a bool) in ``[low, high]``
    (None: unbounded), else a ConfigError naming ``label`` (a key path, or ``"asha: grace"``).

    ``whole_floats``: a float with an integer value (``100.0``, as YAML or a command line may give it)
    is taken as that integer. Messages: ``seed must be an integer >= 0, got 'one'``, ``max_retries
    must be >= 0, got -1``.
    """
    if whole_floats and isinstance(value, float) and value.is_integer():
        value = int(value)
    return int(_check_kind(label, value, int, "an integer", low, high))


def check_number(label: str, value, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a float if it is a finite number (:class:`Interval` ``float``: never a bool) in
    ``[low, high]`` (None: unbounded), else a ConfigError naming ``label``, as :func:`check_int`."""
    return float(_check_kind(label, value, float, "a finite number", low, high))


def _check_kind(label: str, value, kind: type, noun: str, low, high):
    bounds = _bounds(low, high)
    if not Interval(kind).accepts(value):
        raise ConfigError(f"{label} must be {' '.join(filter(None, (noun, bounds)))}, got {value!r}")
    if not Interval(kind, low, high).accepts(value):
        raise ConfigError(f"{label} must be {bounds}, got {value!r}")
    return value


# ------------------------------------------------------------------------------------ tables


def constraints_of(cls) -> dict | None:
    """The merged ``parameter_constraints`` of ``cls`` and its bases, or None if the class whose
    ``__init__`` builds ``cls`` (or a subclass of it) declares no table -- a plugin that only inherits
    its base's table may take other parameters, so its signature is used instead."""
    mro = cls.__mro__
    init_owner = next(i for i, c in enumerate(mro) if "__init__" in vars(c))
    if not any("parameter_constraints" in vars(c) for c in mro[: init_owner + 1]):
        return None
    tables = [vars(c)["parameter_constraints"] for c in reversed(mro) if "parameter_constraints" in vars(c)]
    merged: dict = {}
    for table in tables:
        merged.update(table)
    return merged


def _signature_names(cls) -> list[str] | None:
    """Constructor parameter names of a class without a table; None when it takes ``**kwargs``."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def parameter_names(cls) -> list[str] | None:
    """Every parameter ``cls`` takes (its table's keys, else its signature's); None: it takes any."""
    table = constraints_of(cls)
    return list(table) if table is not None else _signature_names(cls)


def takes(cls, key: str) -> bool:
    """Does ``cls`` take parameter ``key``?"""
    names = parameter_names(cls)
    return names is None or key in names


def check(cls, params: dict, path: str, what: str, exclude: tuple = ()) -> None:
    """Check ``params`` (study-file values) against ``cls``'s table; errors name ``path.key``.

    ``exclude``: keys the caller supplies itself (they are not the user's to set under ``path``).
    """
    names = parameter_names(cls)
    if names is None:
        return
    allowed = [n for n in names if n not in exclude]
    table = constraints_of(cls) or {}
    for key, value in params.items():
        if key not in allowed:
            raise ConfigError(
                f"{path}.{key}: no such parameter ({what} has no parameter {key!r}; "
                f"parameters: {', '.join(allowed) or 'none'})"
            )
        if key in table:
            check_value(f"{path}.{key}", value, table[key])


def check_known(cls, params: dict, what: str, exclude: tuple = ()) -> None:
    """ConfigError for a key of ``params`` that ``cls``'s table does not name (a class built directly, whose
    constructor takes ``**settings``)."""
    allowed = [n for n in constraints_of(cls) or {} if n not in exclude]
    for key in params:
        if key not in allowed:
            raise ConfigError(f"{what}: no such parameter {key!r} (parameters: {', '.join(allowed)})")


def validate(cls, arguments: dict, path: str) -> None:
    """Check a constructor's ``arguments`` (``locals()`` on entry) against ``cls``'s table, so that a
    class built directly, not through :func:`build`, is held to the same constraints; errors name
    ``path.key``."""
    table = constraints_of(cls) or {}
    for key, value in arguments.items():
        if key in table:
            check_value(f"{path}.{key}", value, table[key])


def resolve(kind: str, name: str):
    """The class registered as ``kind`` ``name`` (``kind`` one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}")
    module_name, _, function = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module_name), function)(name)


def build(
    kind: str,
    name: str,
    params: dict | None = None,
    *,
    path: str | None = None,
    context: dict | None = None,
    what: str | None = None,
):
    """Construct the ``kind`` registered as ``name`` from user ``params`` after checking them.

    ``path`` is where ``params`` sit in the study file (default ``<kind>.params``); ``context`` holds
    arguments the caller supplies (R, eta, seed, a sampler object, ...): those the class takes are
    checked against the same table, named one level up (``algorithm.R``), and passed on; the others
    are dropped. A constructor's own ValueError / TypeError becomes a ConfigError naming ``what``.
    """
    params = dict(params or {})
    path = path or f"{kind}.params"
    what = what or f"{kind} {name!r}"
    cls = resolve(kind, name)
    context = {k: v for k, v in (context or {}).items() if takes(cls, k)}
    check(cls, params, path, what, exclude=tuple(context))
    table = constraints_of(cls) or {}
    parent = path.rpartition(".")[0] or path
    for key, value in context.items():
        if key in table:
            check_value(f"{parent}.{key}", value, table[key])
    try:
        return cls(**params, **context)
    except ModuleNotFoundError as exc:  # a package of an extra that is not installed (torch for mlpf)
        raise missing_package(what, exc) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: bad parameters ({exc})") from None


__all__ = [
    "Anything",
    "Boolean",
    "Interval",
    "KINDS",
    "Mapping",
    "Options",
    "Plugin",
    "PluginSpec",
    "Text",
    "build",
    "build_nested",
    "check",
    "check_known",
    "check_nested",
    "check_section",
    "check_spec",
    "check_int",
    "check_number",
    "check_value",
    "constraints_of",
    "import_class",
    "missing_package",
    "parameter_names",
    "resolve",
    "takes",
    "validate",
]
