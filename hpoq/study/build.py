"""Wire a validated :class:`~hpoq.study.spec.StudySpec` to its parts: :func:`assemble`, the one builder of
``run`` (on the master rank), ``validate --build`` and ``simulate``.

``space: table`` studies build their sampler and warm table with
:func:`hpoq.schedulers.sampling.table_sampler_for` -- the same call the replay simulator makes --
so a table study under ``mpiexec`` with one trial group draws the configurations
``simulate --workers 1`` draws for the same seed. Declared spaces use
:class:`hpoq.study.space.SearchSpace` seeded with ``derive_seed(seed, "space")``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hpoq.errors import ConfigError
from hpoq.seeding import derive_seed
from hpoq.study.spec import StudySpec


def trainer_metric(spec: StudySpec) -> tuple[str, str]:
    """(metric name, mode) the study's trainer reports, as far as it is known before training."""
    from hpoq.trainers import trainer_class
    from hpoq.trainers.table import TableTrainer

    params = spec.trainer.params
    cls = trainer_class(spec.trainer.name)
    if issubclass(cls, TableTrainer):  # the metric is a constructor parameter (default loss, min)
        return str(params.get("metric", "loss")), str(params.get("mode", "min"))
    return str(params.get("metric", cls.metric)), str(params.get("mode", cls.mode))


def load_replay_table(spec: StudySpec):
    """The table trainer's curve table (``space: table`` studies), or None."""
    if spec.space != "table":
        return None
    from hpoq.curves.table import load_table

    metric, mode = trainer_metric(spec)
    table = load_table(spec.trainer.params["table"], metric, mode)
    _check_epochs(spec, table)
    return table


def _check_epochs(spec: StudySpec, table) -> None:
    if spec.algorithm.R > table.n_epochs:
        raise ConfigError(
            f"algorithm.R ({spec.algorithm.R}) exceeds the {table.n_epochs} epochs of the table "
            f"{os.path.basename(table.source or '(in memory)')!r}"
        )


def load_warm_curves(spec: StudySpec):
    """The ``warm_curves`` file as a CurveTable (HDF5 curve store or CSV table), or None."""
    if spec.warm_curves is None:
        return None
    path = spec.warm_curves.path
    if path.endswith((".h5", ".hdf5")):
        from hpoq.curves.store import read_store

        return read_store(path)
    from hpoq.curves.table import load_table

    metric, mode = trainer_metric(spec)
    return load_table(path, spec.warm_curves.metric or metric, spec.warm_curves.mode or mode)


def build_sampler(spec: StudySpec, table=None):
    """(config sampler, warm table or None) for the study."""
    if spec.space == "table":
        from hpoq.schedulers.sampling import table_sampler_for

        return table_sampler_for(
            table if table is not None else load_replay_table(spec), spec.seed, spec.warm_fraction, dedupe=spec.dedupe
        )
    from hpoq.schedulers.sampling import DedupeSampler
    from hpoq.study.space import SearchSpace

    space = SearchSpace.from_spec(spec.space, derive_seed(spec.seed, "space"))
    return (DedupeSampler(space) if spec.dedupe else space), None


def merge_warm(a, b):
    """One warm curve store from two CurveTables (either may be None); curves cut to the shorter length: a
    store with shorter (or partial) curves still feeds the predictors of the early rungs."""
    if a is None or b is None:
        return a if b is None else b
    import numpy as np

    from hpoq.curves.table import CurveTable

    e = min(a.n_epochs, b.n_epochs)
    curves = np.vstack([a.minimized()[:, :e], b.minimized()[:, :e]])
    return CurveTable(
        hp_names=list(a.hp_names),
        configs=list(a.configs) + list(b.configs),
        curves=curves,
        metric=a.metric,
        mode="min",
        source=f"{a.source}+{b.source}",
        provenance={"merged": [a.provenance, b.provenance]},
    )


@dataclass
class Assembly:
    """What a study runs with, built once from its spec by :func:`assemble`."""

    scheduler: object
    sampler: object  # the configuration sampler (hpoq.schedulers.base.ConfigSampler)
    table: object | None  # the curve table a ``space: table`` study replays
    warm: object | None  # the warm curve store the predictor starts from (CurveTable)
    metric: str
    mode: str


def assemble(spec: StudySpec, *, table=None, warm_curves=None, workers: int | None = None) -> Assembly:
    """Build the study's parts, once, for ``run``, ``validate --build`` and ``simulate`` alike.

    ``table``: the replay table when the caller loaded it (else the table trainer's, for ``space: table``);
    ``warm_curves``: a warm store the caller loaded (else ``spec.warm_curves``' file); the rows a
    ``warm_fraction`` sets aside come first, then the file's. ``workers``: apply the algorithm's
    :meth:`~hpoq.schedulers.base.Scheduler.worker_defaults` for that many workers (the simulator; the MPI
    runtime resolves them into the spec once, at the start). A predictor parameter given as a nested
    ``{name, params}`` (qsvr's annealing ``sampler``) is built here and shared by every predictor the
    scheduler makes. Raises ConfigError naming the key path of a bad setting.
    """
    from hpoq.predict import predictor_class
    from hpoq.registry import build_nested
    from hpoq.schedulers import make_scheduler, with_worker_defaults

    metric, mode = trainer_metric(spec)
    if table is None and spec.space == "table":
        table = load_replay_table(spec)
    elif table is not None:
        _check_epochs(spec, table)
    sampler, split = build_sampler(spec, table)
    warm = merge_warm(split, warm_curves if warm_curves is not None else load_warm_curves(spec))
    alg = spec.algorithm
    params = alg.params if workers is None else with_worker_defaults(alg.name, alg.params, workers)
    pred = spec.predictor
    predictor_params = None  # none given: the algorithm's own settings of its predictor (swift: the paper's)
    if pred is not None and pred.params:
        predictor_params = build_nested(predictor_class(pred.name), pred.params, "predictor.params")
    try:
        scheduler = make_scheduler(
            alg.name,
            R=alg.R,
            eta=alg.eta,
            sampler=sampler,
            seed=spec.seed,
            predictor=None if pred is None else pred.name,
            predictor_params=predictor_params,
            warm_curves=warm,
            **params,
        )
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith("algorithm") else f"algorithm: {message}") from None
    return Assembly(scheduler, sampler, table, warm, metric, mode)


def build_scheduler(spec: StudySpec, table=None):
    """The scheduler of :func:`assemble` (freshly built from the study's seed)."""
    return assemble(spec, table=table).scheduler
