"""Study files (YAML): keys, defaults, validation, and building the scheduler a study names.

A study file (every key; ``~`` = null)::

    name: mlpf-table            # study name (default: the file name without .yaml)
    seed: 0                     # master seed; every random component derives its own (default 0)
    out: runs/mlpf-table        # output directory, relative to the current directory
                                #   (default runs/<name>; `run --out DIR` overrides it)
    ranks_per_trial: 1          # MPI ranks per trial group (data-parallel training), >= 1 (default 1)
    algorithm:
      name: default             # scheduler: default | hyperband | swift | asha | random | topk-1epoch
      R: 81                     # maximum epochs per configuration (required)
      eta: 3                    # discard rate, integer >= 2 (default 3)
      params: {}                # the algorithm's own parameters (e.g. known_curve for swift)
    predictor: ~                # or {name: svr | qsvr | qsvr-paper | default, params: {...}}; the annealing
                                #   sampler is a predictor parameter, e.g. params: {sampler: sa}
                                #   (default ~: the algorithm's own default predictor)
    trainer:
      name: table               # table | mlpf | package.module:Class (required)
      params: {}                # the trainer's constructor arguments
    space: table                # "table": draw rows of the table trainer's curve table, or a
                                #   mapping of parameters (see hpoq.study.space)
    warm_fraction: 0.0          # space: table only: share of the table's distinct configurations
                                #   set aside as warm curves for the predictor, in [0, 1) (default 0)
    dedupe: false               # skip a drawn configuration that repeats an earlier draw's hyperparameters
                                #   (every algorithm alike; the draw still counts) (default false)
    warm_curves: ~              # curves of an earlier study for the predictor: a curve store
                                #   (.h5/.hdf5) or a CSV table; a path or {path, metric, mode}
    poll_interval: 0.01         # seconds the master and idle workers sleep between polls (default 0.01)
    max_retries: 1              # a failed work unit is retried (from the same checkpoint) while its
                                #   configuration has failed at most this many times; the next
                                #   failure marks the trial FAILED (default 1: fails twice -> FAILED)
    unit_timeout: ~             # seconds a work unit may run before it counts as a failed attempt
                                #   ("timeout"); ~ = no limit (default). See README "Failures".

Paths *inside* the file (``warm_curves`` and the trainer's path parameters, e.g. the table
trainer's ``table``) are resolved relative to **the study file's directory**; ``out`` and
``--out`` relative to the current directory. Unknown keys and wrong types raise
:class:`~hpoq.errors.ConfigError` naming the key path, e.g. ``algorithm.params.knwon_curve``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, is_dataclass

from hpoq.errors import ConfigError
from hpoq.registry import Boolean, Interval, Mapping, Options, PluginSpec, Text, check_section

DEFAULT_ETA = 3
DEFAULT_POLL_INTERVAL = 0.01
DEFAULT_MAX_RETRIES = 1

#: the study file's keys and what each may hold (the registry's constraint layer, :func:`hpoq.registry.check_section`)
STUDY_KEYS = {
    "name": [Text()],
    "seed": [Interval(int, 0, None)],
    "out": [Text()],
    "ranks_per_trial": [Interval(int, 1, None)],
    "algorithm": [Mapping()],
    "predictor": [Mapping(), None],
    "trainer": [Mapping()],
    "space": [Options("table"), Mapping()],
    "warm_fraction": [Interval(float, 0, 1, closed="left")],
    "warm_curves": [Text(), Mapping(), None],
    "poll_interval": [Interval(float, 0, 10, closed="right")],
    "max_retries": [Interval(int, 0, None)],
    "dedupe": [Boolean()],
    "unit_timeout": [Interval(float, 0, None, closed="neither", text="a positive number of seconds"), None],
}
ALGORITHM_KEYS = {
    "name": [Text()],
    "R": [Interval(int, 1, None)],
    "eta": [Interval(int, 2, None)],
    "params": [Mapping(), None],
}
PLUGIN_KEYS = {"name": [Text()], "params": [Mapping(), None]}
CURVES_FILE_KEYS = {"path": [Text()], "metric": [Text(), None], "mode": [Options("min", "max"), None]}


@dataclass
class AlgorithmSpec(PluginSpec):
    """The algorithm: its registered name and parameters, and ``R`` (maximum epochs per configuration) and
    ``eta`` (discard rate)."""

    R: int = 1
    eta: int = DEFAULT_ETA

    def to_dict(self) -> dict:
        return {"name": self.name, "R": self.R, "eta": self.eta, "params": dict(self.params)}


@dataclass
class CurvesFile:
    """A file of curves (an HDF5 curve store, or a CSV table read with ``metric`` and ``mode``)."""

    path: str
    metric: str | None = None
    mode: str | None = None


@dataclass
class StudySpec:
    """A validated study file (paths already resolved to absolute ones, except ``out``)."""

    name: str
    seed: int = 0
    out: str = ""
    ranks_per_trial: int = 1
    algorithm: AlgorithmSpec = field(default_factory=lambda: AlgorithmSpec("default"))
    predictor: PluginSpec | None = None
    trainer: PluginSpec = field(default_factory=lambda: PluginSpec("table"))
    space: object = "table"  # "table" or {param: definition}
    warm_fraction: float = 0.0
    warm_curves: CurvesFile | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_retries: int = DEFAULT_MAX_RETRIES
    dedupe: bool = False
    unit_timeout: float | None = None  # seconds per work unit, None = no limit
    source: str = ""  # the study file (absolute path)

    def __post_init__(self) -> None:
        from hpoq.logsetup import add_secrets, study_secrets

        # the sections as dataclasses, also when given as the mappings of a journal header (to_dict)
        if isinstance(self.algorithm, dict):
            self.algorithm = AlgorithmSpec(**self.algorithm)
        if isinstance(self.predictor, dict):
            self.predictor = PluginSpec(**self.predictor)
        if isinstance(self.trainer, dict):
            self.trainer = PluginSpec(**self.trainer)
        if isinstance(self.warm_curves, dict):
            self.warm_curves = CurvesFile(**self.warm_curves)
        # values under secret keys (a trainer's api_key) are masked in every line written from now on
        sections = [self.algorithm, self.predictor, self.trainer, self.space, self.warm_curves]
        add_secrets(study_secrets([asdict(s) if is_dataclass(s) else s for s in sections]))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudySpec":
        return cls(**d)  # journals written before a key existed get its default


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _resolve(path: str, base_dir: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


# -- loading --------------------------------------------------------------------------------
class DuplicateKeyError(Exception):
    def __init__(self, key, line: int):
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key, self.line = key, line


def _unique_key_loader():
    """A SafeLoader whose mappings refuse a key given twice (PyYAML silently keeps the last one)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise DuplicateKeyError(key, key_node.start_mark.line + 1)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_yaml(path: str) -> dict:
    """Parse a study file; a missing file, a YAML syntax error or a duplicate key is an ConfigError."""
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"study file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_unique_key_loader())  # noqa: S506 -- a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError(f"study file {path!r}: key {exc.key!r} is given twice (line {exc.line})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"study file {path!r} is not valid YAML ({problem}{where})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"study file {path!r} cannot be read ({exc})") from None
    except RecursionError:
        raise ConfigError(f"study file {path!r} is nested too deeply to be a study") from None
    if not isinstance(data, dict):
        raise ConfigError(f"study file {path!r} must hold a mapping of keys, got {_kind(data)}")
    return data


def _check_name(name: str) -> str:
    """A study's name names it (and its default folder ``runs/<name>``): it must not be a path."""
    bad = [c for c in name if c in "/\\\0" or not c.isprintable()]
    if not name.strip() or name in (".", "..") or bad:
        raise ConfigError(
            f"name {name!r} must be a plain name, not a path (no '/', '\\', '.' or '..', no control characters); "
            "put the output directory in 'out' or pass --out"
        )
    return name


def _section(data: dict, key: str, why: str) -> dict:
    if data.get(key) is None:
        raise ConfigError(f"{key}: required ({why})")
    return data[key]


def _plugin(value: dict, path: str) -> PluginSpec:
    """A ``{name, params}`` section checked by the constraint layer (params: a mapping with string keys)."""
    section = check_section(value, PLUGIN_KEYS, path)
    if "name" not in section:
        raise ConfigError(f"{path}.name: required")
    return PluginSpec.parse(section, path)


def _algorithm(value: dict) -> AlgorithmSpec:
    section = check_section(value, ALGORITHM_KEYS, "algorithm", whole_floats=True)
    if "R" not in section:
        raise ConfigError("algorithm.R: required (maximum epochs per configuration)")
    plugin = PluginSpec.parse({"name": section.get("name", "default"), "params": section.get("params")}, "algorithm")
    return AlgorithmSpec(plugin.name, plugin.params, R=section["R"], eta=section.get("eta", DEFAULT_ETA))


def _curves_file(value, base_dir: str) -> CurvesFile | None:
    if value is None:
        return None
    section = check_section({"path": value} if isinstance(value, str) else value, CURVES_FILE_KEYS, "warm_curves")
    if "path" not in section:
        raise ConfigError("warm_curves.path: required")
    return CurvesFile(_resolve(section["path"], base_dir), section.get("metric"), section.get("mode"))


def _space(values: dict, trainer: PluginSpec):
    space = values.get("space", "table" if trainer.name == "table" else None)  # table trainer: rows by default
    if space is None:
        raise ConfigError("space: required (a mapping of parameters, or 'table' for the table trainer)")
    if values.get("warm_fraction") and space != "table":
        raise ConfigError("warm_fraction: only meaningful with 'space: table'")
    return space


def parse_study(data: dict, source: str = "", out: str | None = None) -> StudySpec:
    """Check a parsed study file against the constraint tables (keys, types, ranges; no plugin imported yet)
    and return its spec with defaults filled in and the file's own paths resolved against its directory."""
    values = check_section(data, STUDY_KEYS, "", whole_floats=True)
    base_dir = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    stem = os.path.splitext(os.path.basename(source))[0] if source else "study"
    name = _check_name(values.get("name", stem))
    if out is not None and (not isinstance(out, str) or not out):
        raise ConfigError(f"--out must be a non-empty string, got {out!r}")
    out_dir = out if out is not None else values.get("out", os.path.join("runs", name))
    algorithm = _algorithm(_section(values, "algorithm", "at least {name, R}"))
    predictor = None if values.get("predictor") is None else _plugin(values["predictor"], "predictor")
    trainer = _plugin(_section(values, "trainer", "at least {name}"), "trainer")
    return StudySpec(
        name=name,
        seed=values.get("seed", 0),
        out=out_dir,
        ranks_per_trial=values.get("ranks_per_trial", 1),
        algorithm=algorithm,
        predictor=predictor,
        trainer=trainer,
        space=_space(values, trainer),
        warm_fraction=float(values.get("warm_fraction", 0.0)),
        warm_curves=_curves_file(values.get("warm_curves"), base_dir),
        poll_interval=float(values.get("poll_interval", DEFAULT_POLL_INTERVAL)),
        max_retries=values.get("max_retries", DEFAULT_MAX_RETRIES),
        dedupe=values.get("dedupe", False),
        unit_timeout=None if values.get("unit_timeout") is None else float(values["unit_timeout"]),
        source=os.path.abspath(source) if source else "",
    )


def _check_plugin(kind: str, plugin: PluginSpec, path: str, exclude: tuple = ()):
    """The class ``plugin`` names, its parameters checked against the class's constraint table (and a nested
    ``{name, params}``, such as qsvr's ``sampler``, against its own); errors name ``path.name`` or
    ``path.params.key``."""
    from hpoq.registry import check, check_nested, resolve

    try:
        cls = resolve(kind, plugin.name)
    except ConfigError as exc:
        raise ConfigError(f"{path}.name: {exc}") from None
    check(cls, plugin.params, f"{path}.params", f"{path} {plugin.name!r}", exclude)
    check_nested(cls, plugin.params, f"{path}.params")
    return cls


def check_study(spec: StudySpec) -> None:
    """Check the names and parameters against the registries and the files on disk.

    Resolves the trainer's path parameters (``Trainer.path_params``) against the study file's
    directory in place. Imports the scheduler, predictor and trainer classes (not torch itself,
    unless a trainer module imports it at module level).
    """
    from hpoq.registry import takes
    from hpoq.schedulers import COMMON_ARGS, PREDICTOR_ARGS

    sched_cls = _check_plugin("scheduler", spec.algorithm, "algorithm", exclude=COMMON_ARGS + PREDICTOR_ARGS)
    if spec.predictor is not None:
        if not takes(sched_cls, "predictor"):
            raise ConfigError(f"predictor: algorithm {spec.algorithm.name!r} uses no predictor; remove this section")
        _check_plugin("predictor", spec.predictor, "predictor")
    tcls = _check_plugin("trainer", spec.trainer, "trainer")
    base_dir = os.path.dirname(spec.source) if spec.source else os.getcwd()
    for key in getattr(tcls, "path_params", ()):
        value = spec.trainer.params.get(key)
        if isinstance(value, str):
            spec.trainer.params[key] = _resolve(value, base_dir)
    if spec.space == "table":
        _check_table_space(tcls, spec.trainer.params.get("table"))
    else:
        from hpoq.study.space import SearchSpace

        SearchSpace.from_spec(spec.space, seed=0)  # validates every parameter entry
    if spec.warm_curves is not None and not os.path.isfile(spec.warm_curves.path):
        raise ConfigError(f"warm_curves.path: file {spec.warm_curves.path!r} does not exist")


def _check_table_space(trainer_cls, table_path) -> None:
    from hpoq.trainers.table import TableTrainer

    if not issubclass(trainer_cls, TableTrainer):
        raise ConfigError("space: 'table' needs the table trainer (trainer.name: table) or a subclass of it")
    if not isinstance(table_path, str):
        raise ConfigError("trainer.params.table: required (path of the curve table to replay)")
    if not os.path.isfile(table_path):
        raise ConfigError(f"trainer.params.table: file {table_path!r} does not exist")


def load_study(path: str, out: str | None = None, check: bool = True) -> StudySpec:
    """Read, parse and (with ``check``) fully validate a study file."""
    spec = parse_study(read_yaml(path), source=path, out=out)
    if check:
        check_study(spec)
    return spec
