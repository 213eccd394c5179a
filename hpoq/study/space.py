"""Search spaces from a study file's ``space:`` section, as a seeded ``ConfigSampler``.

Each entry names one hyperparameter::

    space:
      lr:        {type: loguniform, low: 1.0e-5, high: 1.0e-1}   # log-uniform float in [low, high]
      dropout:   {type: uniform, low: 0.0, high: 0.5}             # uniform float in [low, high]
      layers:    {type: int, low: 1, high: 4}                     # uniform integer in [low, high] (inclusive)
      width:     {type: int, low: 8, high: 256, log: true}        # log-uniform integer
      optimizer: {type: choice, values: [adam, sgd]}              # one of the values, uniformly
      momentum:  {type: uniform, low: 0.5, high: 0.99, when: {optimizer: sgd}}

``when`` makes a parameter *conditional*: it is drawn (and present in the configuration) only if
every named parent parameter is present and equals the given value (or one of a given list of
values). A parent may itself be conditional (no cycles); parents are drawn before their
children whatever the order in the file. Sampling is deterministic: draw ``k`` uses
``derive_rng(seed, "space", k)``, so the sampler's state is just the number of draws (the contract of
:class:`hpoq.schedulers.base.ConfigSampler`), and a resumed study continues the same sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hpoq.errors import ConfigError
from hpoq.registry import check_int, check_number
from hpoq.seeding import derive_rng

PARAM_TYPES = ("uniform", "loguniform", "int", "choice")
_KEYS = {
    "uniform": {"type", "low", "high", "when"},
    "loguniform": {"type", "low", "high", "when"},
    "int": {"type", "low", "high", "log", "when"},
    "choice": {"type", "values", "when"},
}


@dataclass(frozen=True)
class Param:
    """One hyperparameter: ``kind`` in PARAM_TYPES, bounds or values, and its ``when`` clause."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    values: tuple = ()
    when: dict = field(default_factory=dict)  # parent name -> tuple of allowed values

    def active(self, config: dict) -> bool:
        return all(parent in config and config[parent] in allowed for parent, allowed in self.when.items())

    def draw(self, rng):
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        # int: uniform over [low, high], or log-uniform with rounding (each integer reachable)
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))  # low >= 1 here
            return int(min(self.high, max(self.low, round(value))))
        return int(rng.integers(self.low, self.high + 1))

    def to_dict(self) -> dict:
        out: dict = {"type": self.kind}
        if self.kind == "choice":
            out["values"] = list(self.values)
        else:
            out["low"], out["high"] = self.low, self.high
            if self.log:
                out["log"] = True
        if self.when:
            out["when"] = {k: (list(v) if len(v) != 1 else v[0]) for k, v in self.when.items()}
        return out


def _number(value, path: str, integer: bool = False):
    return check_int(path, value, whole_floats=True) if integer else check_number(path, value)


def _parents_first(params: dict[str, Param], path: str) -> list[Param]:
    """Declaration order, except that a parent comes before the parameters conditional on it."""
    ordered: list[Param] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in placed:
            return
        if name in visiting:
            raise ConfigError(f"{path}.{name}.when: the conditions form a cycle")
        visiting.add(name)
        for parent in params[name].when:
            visit(parent)
        visiting.discard(name)
        placed.add(name)
        ordered.append(params[name])

    for name in params:
        visit(name)
    return ordered


def parse_param(name: str, spec, path: str, declared) -> Param:
    """Validate one ``space`` entry (``path`` is its key path for error messages)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{path} must be a mapping with a 'type' ({', '.join(PARAM_TYPES)}), got {spec!r}")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{path}.type must be one of {', '.join(PARAM_TYPES)}, got {kind!r}")
    unknown = sorted(set(spec) - _KEYS[kind])
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}: unknown key for a {kind} parameter (allowed: {', '.join(sorted(_KEYS[kind]))})"
        )
    when = {}
    raw_when = spec.get("when") or {}
    if not isinstance(raw_when, dict):
        raise ConfigError(f"{path}.when must be a mapping parent -> value(s), got {raw_when!r}")
    for parent, allowed in raw_when.items():
        if parent not in declared or parent == name:
            raise ConfigError(f"{path}.when.{parent}: no other parameter {parent!r} is declared in the space")
        allowed = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        if not allowed:
            raise ConfigError(f"{path}.when.{parent}: needs at least one value")
        when[str(parent)] = allowed
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}.values must be a non-empty list, got {values!r}")
        for i, v in enumerate(values):
            if not isinstance(v, (str, int, float, bool)) and v is not None:
                raise ConfigError(f"{path}.values[{i}] must be a string, number, boolean or null, got {v!r}")
        return Param(name=name, kind=kind, values=tuple(values), when=when)
    for key in ("low", "high"):
        if key not in spec:
            raise ConfigError(f"{path}.{key} is required for a {kind} parameter")
    integer = kind == "int"
    low = _number(spec["low"], f"{path}.low", integer)
    high = _number(spec["high"], f"{path}.high", integer)
    if high < low or (high == low and not integer):
        raise ConfigError(f"{path}: high ({high}) must be greater than low ({low})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{path}.log must be true or false, got {log!r}")
    if (kind == "loguniform" or log) and low <= 0:
        raise ConfigError(f"{path}.low must be > 0 on a log scale, got {low}")
    return Param(name=name, kind=kind, low=low, high=high, log=log or kind == "loguniform", when=when)


def _check_reachable(parent: Param, allowed: tuple, path: str) -> None:
    """Each value of a ``when`` clause must be one the parent can take, else the parameter is never drawn."""
    if parent.kind in ("uniform", "loguniform"):
        raise ConfigError(
            f"{path}: {parent.name!r} is a continuous ({parent.kind}) parameter, which never takes one given "
            "value; condition on a choice or int parameter"
        )
    for value in allowed:
        if parent.kind == "choice":
            ok = value in parent.values  # the test Param.active makes
            among = f"among the values of {parent.name!r}, {list(parent.values)}"
        else:
            ok = (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and float(value).is_integer()
                and parent.low <= value <= parent.high
            )
            among = f"an integer {parent.name!r} can take, in [{parent.low}, {parent.high}]"
        if not ok:
            raise ConfigError(f"{path}: {value!r} is not {among}, so this parameter would never be drawn")


class SearchSpace:
    """Seeded sampler over declared hyperparameters (a :class:`ConfigSampler`)."""

    def __init__(self, params: list[Param], seed: int):
        if not params:
            raise ConfigError("space: declare at least one parameter")
        self.params = list(params)
        self.seed = int(seed)
        self.drawn = 0

    @classmethod
    def from_spec(cls, spec: dict, seed: int, path: str = "space") -> "SearchSpace":
        if not isinstance(spec, dict):
            raise ConfigError(f"{path} must be a mapping of parameter name -> definition, got {type(spec).__name__}")
        for name in spec:
            if not isinstance(name, str) or not name or name.startswith("_"):
                raise ConfigError(
                    f"{path}: parameter names must be non-empty strings not starting with '_', got {name!r}"
                )
        params = {name: parse_param(name, entry, f"{path}.{name}", spec) for name, entry in spec.items()}
        for p in params.values():
            for parent, allowed in p.when.items():
                _check_reachable(params[parent], allowed, f"{path}.{p.name}.when.{parent}")
        return cls(_parents_first(params, path), seed)

    def sample(self) -> dict:
        rng = derive_rng(self.seed, "space", self.drawn)
        self.drawn += 1
        config: dict = {}
        for p in self.params:
            value = p.draw(rng)  # drawn even when inactive, so one parameter's condition never shifts the others' draws
            if p.active(config):
                config[p.name] = value
        return config

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])

    def to_dict(self) -> dict:
        return {p.name: p.to_dict() for p in self.params}
