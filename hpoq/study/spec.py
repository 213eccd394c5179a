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
from dataclasses import asdict, dataclass, field

from hpoq.errors import ConfigError
from hpoq.registry import check_int, check_number

TOP_KEYS = (
    "name",
    "seed",
    "out",
    "ranks_per_trial",
    "algorithm",
    "predictor",
    "trainer",
    "space",
    "warm_fraction",
    "warm_curves",
    "poll_interval",
    "max_retries",
    "dedupe",
    "unit_timeout",
)
DEFAULT_ETA = 3
DEFAULT_POLL_INTERVAL = 0.01
DEFAULT_MAX_RETRIES = 1


@dataclass
class StudySpec:
    """A validated study file (paths already resolved to absolute ones, except ``out``)."""

    name: str
    seed: int = 0
    out: str = ""
    ranks_per_trial: int = 1
    algorithm: dict = field(default_factory=dict)  # {name, R, eta, params}
    predictor: dict | None = None  # {name, params} or None
    trainer: dict = field(default_factory=dict)  # {name, params}
    space: object = "table"  # "table" or {param: definition}
    warm_fraction: float = 0.0
    warm_curves: dict | None = None  # {path, metric, mode} or None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_retries: int = DEFAULT_MAX_RETRIES
    dedupe: bool = False
    unit_timeout: float | None = None  # seconds per work unit, None = no limit
    source: str = ""  # the study file (absolute path)

    def __post_init__(self) -> None:
        from hpoq.logsetup import add_secrets, study_secrets

        # values under secret keys (a trainer's api_key) are masked in every line written from now on
        add_secrets(study_secrets([self.algorithm, self.predictor, self.trainer, self.space, self.warm_curves]))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudySpec":
        return cls(**d)  # journals written before a key existed get its default


# -- small type checkers (each names the key path) ------------------------------------------
def _mapping(value, path: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must be a mapping, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{_join(path, key)}: unknown key (allowed: {', '.join(allowed)})")
    return value


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _str(value, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path} must be a non-empty string, got {value!r}")
    return value


def _params(value, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must be a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: keys must be strings, got {key!r}")
    return dict(value)


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


def parse_study(data: dict, source: str = "", out: str | None = None) -> StudySpec:
    """Validate the structure and types of a parsed study file (no imports of plugins yet)."""
    _mapping(data, "", TOP_KEYS)
    base_dir = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    stem = os.path.splitext(os.path.basename(source))[0] if source else "study"
    name = _check_name(_str(data.get("name", stem), "name"))
    seed = check_int("seed", data.get("seed", 0), 0, whole_floats=True)
    out_dir = out if out is not None else data.get("out", os.path.join("runs", name))
    out_dir = _str(out_dir, "out" if out is None else "--out")
    rpt = check_int("ranks_per_trial", data.get("ranks_per_trial", 1), 1, whole_floats=True)

    if "algorithm" not in data:
        raise ConfigError("algorithm: required (at least {name, R})")
    alg = _mapping(data["algorithm"], "algorithm", ("name", "R", "eta", "params"))
    if "R" not in alg:
        raise ConfigError("algorithm.R: required (maximum epochs per configuration)")
    algorithm = {
        "name": _str(alg.get("name", "default"), "algorithm.name"),
        "R": check_int("algorithm.R", alg["R"], 1, whole_floats=True),
        "eta": check_int("algorithm.eta", alg.get("eta", DEFAULT_ETA), 2, whole_floats=True),
        "params": _params(alg.get("params"), "algorithm.params"),
    }

    predictor = None
    if data.get("predictor") is not None:
        pred = _mapping(data["predictor"], "predictor", ("name", "params"))
        predictor = {
            "name": _str(pred.get("name"), "predictor.name"),
            "params": _params(pred.get("params"), "predictor.params"),
        }

    if "trainer" not in data:
        raise ConfigError("trainer: required (at least {name})")
    tr = _mapping(data["trainer"], "trainer", ("name", "params"))
    trainer = {"name": _str(tr.get("name"), "trainer.name"), "params": _params(tr.get("params"), "trainer.params")}

    space = data.get("space", "table" if trainer["name"] == "table" else None)  # table trainer: rows by default
    if space is None:
        raise ConfigError("space: required (a mapping of parameters, or 'table' for the table trainer)")
    if isinstance(space, str):
        if space != "table":
            raise ConfigError(f"space must be a mapping of parameters or the word 'table', got {space!r}")
    elif not isinstance(space, dict):
        raise ConfigError(f"space must be a mapping of parameters or the word 'table', got {_kind(space)}")

    warm_fraction = check_number("warm_fraction", data.get("warm_fraction", 0.0))
    if not 0.0 <= warm_fraction < 1.0:
        raise ConfigError(f"warm_fraction must lie in [0, 1), got {warm_fraction:g}")
    if warm_fraction and space != "table":
        raise ConfigError("warm_fraction: only meaningful with 'space: table'")

    warm_curves = None
    wc = data.get("warm_curves")
    if wc is not None:
        if isinstance(wc, str):
            wc = {"path": wc}
        wc = _mapping(wc, "warm_curves", ("path", "metric", "mode"))
        warm_curves = {
            "path": _resolve(_str(wc.get("path"), "warm_curves.path"), base_dir),
            "metric": None if wc.get("metric") is None else _str(wc["metric"], "warm_curves.metric"),
            "mode": None if wc.get("mode") is None else _str(wc["mode"], "warm_curves.mode"),
        }
        if warm_curves["mode"] not in (None, "min", "max"):
            raise ConfigError(f"warm_curves.mode must be 'min' or 'max', got {warm_curves['mode']!r}")

    poll = check_number("poll_interval", data.get("poll_interval", DEFAULT_POLL_INTERVAL))
    if not 0.0 < poll <= 10.0:
        raise ConfigError(f"poll_interval must lie in (0, 10] seconds, got {poll:g}")
    retries = check_int("max_retries", data.get("max_retries", DEFAULT_MAX_RETRIES), 0, whole_floats=True)
    dedupe = data.get("dedupe", False)
    if not isinstance(dedupe, bool):
        raise ConfigError(f"dedupe must be true or false, got {_kind(dedupe)}")
    timeout = None
    if data.get("unit_timeout") is not None:
        timeout = check_number("unit_timeout", data["unit_timeout"])
        if timeout <= 0:
            raise ConfigError(f"unit_timeout must be a positive number of seconds or null, got {timeout:g}")
    return StudySpec(
        name=name,
        seed=seed,
        out=out_dir,
        ranks_per_trial=rpt,
        algorithm=algorithm,
        predictor=predictor,
        trainer=trainer,
        space=space,
        warm_fraction=warm_fraction,
        warm_curves=warm_curves,
        poll_interval=poll,
        max_retries=retries,
        dedupe=dedupe,
        unit_timeout=timeout,
        source=os.path.abspath(source) if source else "",
    )


def _check_signature(cls, params: dict, path: str, what: str, exclude: tuple = ()) -> None:
    from hpoq.registry import check

    check(cls, params, path, what, exclude)


def check_study(spec: StudySpec) -> None:
    """Check the names and parameters against the registries and the files on disk.

    Resolves the trainer's path parameters (``Trainer.path_params``) against the study file's
    directory in place. Imports the scheduler, predictor and trainer classes (not torch itself,
    unless a trainer module imports it at module level).
    """
    from hpoq.predict import predictor_class
    from hpoq.schedulers import COMMON_ARGS, PREDICTOR_ARGS, scheduler_class
    from hpoq.study.space import SearchSpace
    from hpoq.trainers import trainer_class

    try:
        sched_cls = scheduler_class(spec.algorithm["name"])
    except ConfigError as exc:
        raise ConfigError(f"algorithm.name: {exc}") from None
    _check_signature(
        sched_cls,
        spec.algorithm["params"],
        "algorithm.params",
        f"algorithm {spec.algorithm['name']!r}",
        exclude=COMMON_ARGS + PREDICTOR_ARGS,
    )
    if spec.predictor is not None:
        from hpoq.registry import takes

        if not takes(sched_cls, "predictor"):
            raise ConfigError(f"predictor: algorithm {spec.algorithm['name']!r} uses no predictor; remove this section")
        try:
            pred_cls = predictor_class(spec.predictor["name"])
        except ConfigError as exc:
            raise ConfigError(f"predictor.name: {exc}") from None
        _check_signature(
            pred_cls, spec.predictor["params"], "predictor.params", f"predictor {spec.predictor['name']!r}"
        )

    try:
        tcls = trainer_class(spec.trainer["name"])
    except ConfigError as exc:
        raise ConfigError(f"trainer.name: {exc}") from None
    _check_signature(tcls, spec.trainer["params"], "trainer.params", f"trainer {spec.trainer['name']!r}")
    base_dir = os.path.dirname(spec.source) if spec.source else os.getcwd()
    for key in getattr(tcls, "path_params", ()):
        value = spec.trainer["params"].get(key)
        if isinstance(value, str):
            spec.trainer["params"][key] = _resolve(value, base_dir)
    if spec.space == "table":
        from hpoq.trainers.table import TableTrainer

        if not issubclass(tcls, TableTrainer):
            raise ConfigError("space: 'table' needs the table trainer (trainer.name: table) or a subclass of it")
        table_path = spec.trainer["params"].get("table")
        if not isinstance(table_path, str):
            raise ConfigError("trainer.params.table: required (path of the curve table to replay)")
        if not os.path.isfile(table_path):
            raise ConfigError(f"trainer.params.table: file {table_path!r} does not exist")
    else:
        SearchSpace.from_spec(spec.space, seed=0)  # validates every parameter entry
    if spec.warm_curves is not None and not os.path.isfile(spec.warm_curves["path"]):
        raise ConfigError(f"warm_curves.path: file {spec.warm_curves['path']!r} does not exist")


def load_study(path: str, out: str | None = None, check: bool = True) -> StudySpec:
    """Read, parse and (with ``check``) fully validate a study file."""
    spec = parse_study(read_yaml(path), source=path, out=out)
    if check:
        check_study(spec)
    return spec
