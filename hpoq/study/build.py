"""Wire a validated :class:`~hpoq.study.spec.StudySpec` to its scheduler (on the master rank only).

``space: table`` studies build their sampler and warm table with
:func:`hpoq.schedulers.sampling.table_sampler_for` -- the same call the replay simulator makes --
so a table study under ``mpiexec`` with one trial group draws the configurations
``simulate --workers 1`` draws for the same seed. Declared spaces use
:class:`hpoq.study.space.SearchSpace` seeded with ``derive_seed(seed, "space")``.
"""

from __future__ import annotations

import os

from hpoq.errors import ConfigError
from hpoq.seeding import derive_seed
from hpoq.study.spec import StudySpec


def trainer_metric(spec: StudySpec) -> tuple[str, str]:
    """(metric name, mode) the study's trainer reports, as far as it is known before training."""
    from hpoq.trainers import trainer_class
    from hpoq.trainers.table import TableTrainer

    params = spec.trainer["params"]
    cls = trainer_class(spec.trainer["name"])
    if issubclass(cls, TableTrainer):  # the metric is a constructor parameter (default loss, min)
        return str(params.get("metric", "loss")), str(params.get("mode", "min"))
    return str(params.get("metric", cls.metric)), str(params.get("mode", cls.mode))


def load_replay_table(spec: StudySpec):
    """The table trainer's curve table (``space: table`` studies), or None."""
    if spec.space != "table":
        return None
    from hpoq.curves.table import load_table

    metric, mode = trainer_metric(spec)
    table = load_table(spec.trainer["params"]["table"], metric, mode)
    if spec.algorithm["R"] > table.n_epochs:
        raise ConfigError(
            f"algorithm.R ({spec.algorithm['R']}) exceeds the {table.n_epochs} epochs of the table "
            f"{os.path.basename(table.source)!r}"
        )
    return table


def load_warm_curves(spec: StudySpec):
    """The ``warm_curves`` file as a CurveTable (HDF5 curve store or CSV table), or None."""
    if spec.warm_curves is None:
        return None
    path = spec.warm_curves["path"]
    if path.endswith((".h5", ".hdf5")):
        from hpoq.curves.store import read_store

        return read_store(path)
    from hpoq.curves.table import load_table

    metric, mode = trainer_metric(spec)
    return load_table(path, spec.warm_curves["metric"] or metric, spec.warm_curves["mode"] or mode)


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


def build_scheduler(spec: StudySpec, table=None):
    """The study's scheduler, freshly built from its seed (raises ConfigError for bad settings)."""
    from hpoq.schedulers import make_scheduler

    sampler, warm = build_sampler(spec, table)
    extra = load_warm_curves(spec)
    if extra is not None:
        if warm is not None:
            raise ConfigError("warm_curves and warm_fraction cannot be combined; choose one source of warm curves")
        warm = extra
    pred = spec.predictor or {}
    alg = spec.algorithm
    try:
        return make_scheduler(
            alg["name"],
            R=alg["R"],
            eta=alg["eta"],
            sampler=sampler,
            seed=spec.seed,
            predictor=pred.get("name"),
            predictor_params=pred.get("params") if pred else None,
            warm_curves=warm,
            **alg["params"],
        )
    except ConfigError as exc:
        raise ConfigError(f"algorithm: {exc}") from None
