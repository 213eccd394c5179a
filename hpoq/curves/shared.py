"""Registry of the shared benchmark curve tables in ``../shared/data`` (name -> loader, metric, mode).

``load_shared(name)`` returns a :class:`CurveTable` (converted in memory from npz/JSON where
needed). The data folder is ``$HPOQ_SHARED_DATA`` if set, else ``<repo>/../shared/data``.

| name | file | metric | mode | epochs |
|---|---|---|---|---|
| mlpf | mlpf_delphes_trainings_processed.csv.gz (outlier row dropped) | loss | min | 100 |
| mnist6 / mnist4 / mnist4rs42 | mnist_cnn_*.csv.gz | acc | max | 12 |
| cifar10 | cifar10_cnn_curves.json.gz | acc | max | 200 |
| lcbench | blood-transfusion-service-center_curves.npz | val_balanced_accuracy | max | 50 |
| taskset | taskset_rnn_text_classification.npz, task GRU128 | valid_loss | min | 51 |

MLPF: the single outlier (final loss 597.3 > 590) is dropped as in docs/predictors.md#learning-curve-data (295 rows);
``load_shared("mlpf", drop_outliers=False)`` keeps all 296.
TaskSet: one task (``FixedTextRNNClassification_imdb_patch32_GRU128_bs128``, 999 finite
curves) by default; ``load_shared("taskset", task="all")`` pools the 12 tasks with ``task`` as
a categorical hyperparameter. See :mod:`hpoq.curves.convert` for clipping of diverged values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hpoq.curves import convert
from hpoq.curves.table import CurveTable, load_table
from hpoq.errors import ConfigError


def shared_data_dir() -> Path:
    """The shared data folder (``$HPOQ_SHARED_DATA`` or ``<repo>/../shared/data``)."""
    env = os.environ.get("HPOQ_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class SharedTable:
    name: str
    relpath: str
    metric: str
    mode: str
    epochs: int
    loader: Callable[..., CurveTable]
    description: str = ""

    @property
    def path(self) -> Path:
        return shared_data_dir() / self.relpath


def _csv(spec: "SharedTable", **kw) -> CurveTable:
    return load_table(str(spec.path), spec.metric, spec.mode)


def _mlpf(spec: "SharedTable", drop_outliers: bool = True, **kw) -> CurveTable:
    """MLPF; by default without the single outlier row (final loss 597.3 > 590,
    docs/predictors.md#learning-curve-data)."""
    table = load_table(str(spec.path), spec.metric, spec.mode)
    if not drop_outliers:
        return table
    keep = (table.curves[:, -1] <= MLPF_OUTLIER_LOSS).nonzero()[0]
    out = table.subset(keep)
    out.dropped = table.dropped + table.n_rows - len(keep)
    out.provenance["outliers_dropped"] = f"final loss > {MLPF_OUTLIER_LOSS:g}: {table.n_rows - len(keep)} row(s)"
    return out


MLPF_OUTLIER_LOSS = 590.0


def _cifar(spec: "SharedTable", **kw) -> CurveTable:
    return convert.cifar_json_to_table(str(spec.path), spec.metric)


def _lcbench(spec: "SharedTable", **kw) -> CurveTable:
    return convert.lcbench_npz_to_table(str(spec.path), None, spec.metric, spec.mode)


def _taskset(
    spec: "SharedTable",
    task: str | None = convert.TASKSET_DEFAULT_TASK,
    clip: float | None = convert.TASKSET_CLIP,
    **kw,
) -> CurveTable:
    return convert.taskset_npz_to_table(str(spec.path), spec.metric, task, clip)


_MP = "mlpf_perfpred/"
SHARED_TABLES: dict[str, SharedTable] = {
    t.name: t
    for t in [
        SharedTable(
            "mlpf",
            _MP + "mlpf_delphes_trainings_processed.csv.gz",
            "loss",
            "min",
            100,
            _mlpf,
            "MLPF GNN on Delphes, 295 rows (the 597.3 outlier dropped), 183 distinct configs, 7 HPs",
        ),
        SharedTable("mnist6", _MP + "mnist_cnn_6hp.csv.gz", "acc", "max", 12, _csv, "MNIST CNN, 800 rows, 6 HPs"),
        SharedTable("mnist4", _MP + "mnist_cnn_4hp.csv.gz", "acc", "max", 12, _csv, "MNIST CNN, 800 rows, 4 HPs"),
        SharedTable(
            "mnist4rs42", _MP + "mnist_cnn_4hp_rs42.csv.gz", "acc", "max", 12, _csv, "MNIST CNN, 500 rows, 4 HPs"
        ),
        SharedTable(
            "cifar10", _MP + "cifar10_cnn_curves.json.gz", "acc", "max", 200, _cifar, "CIFAR-10 CNN, 167 rows, 5 HPs"
        ),
        SharedTable(
            "lcbench",
            "lcbench_lite/blood-transfusion-service-center_curves.npz",
            "val_balanced_accuracy",
            "max",
            50,
            _lcbench,
            "LCBench blood-transfusion, 2000 MLP configs, 7 HPs, seconds/epoch",
        ),
        SharedTable(
            "taskset",
            "taskset_dyhpo/taskset_rnn_text_classification.npz",
            "valid_loss",
            "min",
            51,
            _taskset,
            "TaskSet IMDB GRU128 task, 1000 Adam configs, 8 HPs, diverged runs dropped, clipped at 2.0",
        ),
    ]
}


def load_shared(name: str, **options) -> CurveTable:
    """Load shared table ``name`` (see the module table); ``options`` go to its loader (e.g. ``task``)."""
    try:
        spec = SHARED_TABLES[name]
    except KeyError:
        raise ConfigError(f"unknown shared table {name!r}; available: {', '.join(SHARED_TABLES)}") from None
    if not spec.path.exists():
        raise ConfigError(f"shared table {name!r}: file {spec.path} is missing")
    table = spec.loader(spec, **options)
    table.provenance.setdefault("shared_table", name)
    return table


__all__ = ["SHARED_TABLES", "SharedTable", "load_shared", "shared_data_dir"]
