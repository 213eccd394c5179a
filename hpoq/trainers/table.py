"""The ``table`` trainer: replays the learning curves of a curve table (tests, demos, benchmarks).

A configuration drawn from the table (``space: table`` in the study file) carries ``"_row"``, the
table row whose recorded curve is "trained". Like a real trainer it writes a checkpoint (a small
JSON file with the row and the epoch reached) and a promotion must resume from it: a unit that
starts at epoch ``e > 0`` without a checkpoint at ``e`` fails, which is how the tests check that
the runtime keeps and deletes checkpoints correctly.

Parameters (``trainer.params``):

* ``table`` -- path of the CSV/CSV.gz curve table (required; relative paths are resolved by the
  study loader against the study file's directory);
* ``metric`` -- metric column prefix (default ``loss``: columns ``loss_0 .. loss_99``);
* ``mode`` -- ``min`` or ``max``: direction of the metric (default ``min``);
* ``sleep`` -- seconds to sleep per epoch trained, to emulate training time (default 0).
"""

from __future__ import annotations

import json
import os
import time

from hpoq.atomic import write_atomic
from hpoq.curves.table import CurveTable, load_table
from hpoq.errors import ConfigError
from hpoq.registry import Interval, Options, Text, validate
from hpoq.trainers.base import Trainer, TrainerError

CHECKPOINT_FILE = "table-checkpoint.json"


class TableTrainer(Trainer):
    """Replays ``table`` row ``config["_row"]`` for epochs ``start_epoch + 1 .. end_epoch``."""

    name = "table"
    parameter_constraints = {
        "table": [Text()],
        "metric": [Text()],
        "mode": [Options("min", "max")],
        "sleep": [Interval(float, 0, None)],
    }
    path_params = ("table",)

    def __init__(self, table: str, metric: str = "loss", mode: str = "min", sleep: float = 0.0):
        super().__init__(table=table, metric=metric, mode=mode, sleep=sleep)
        validate(TableTrainer, {"sleep": sleep}, "trainer.params")  # built directly, or by a plugin subclass
        if not isinstance(table, str):
            raise ConfigError(f"trainer.params.table must be a path, got {table!r}")
        self.table: CurveTable = load_table(table, metric, mode)
        self.metric = metric
        self.mode = mode
        self.sleep = float(sleep)

    @staticmethod
    def _check_checkpoint(path: str, row: int, start_epoch: int) -> str | None:
        try:
            with open(path) as fh:
                ckpt = json.load(fh)
        except (OSError, ValueError):
            return f"table trainer: no checkpoint to resume epoch {start_epoch} from in {os.path.dirname(path)}"
        if ckpt.get("row") != row or ckpt.get("epoch") != start_epoch:
            return (
                f"table trainer: checkpoint holds row {ckpt.get('row')} epoch {ckpt.get('epoch')}, "
                f"expected row {row} epoch {start_epoch}"
            )
        return None

    @property
    def n_epochs(self) -> int:
        return self.table.n_epochs

    def train(self, config: dict, start_epoch: int, end_epoch: int, checkpoint_dir: str, comm=None) -> list[float]:
        row = config.get("_row")
        if not isinstance(row, int) or not 0 <= row < self.table.n_rows:
            raise TrainerError(
                f"table trainer: config has no valid '_row' (0..{self.table.n_rows - 1}); use 'space: table'"
            )
        if not 0 <= start_epoch < end_epoch <= self.table.n_epochs:
            raise TrainerError(f"table trainer: epochs {start_epoch}..{end_epoch} outside 0..{self.table.n_epochs}")
        path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
        problem = self._check_checkpoint(path, row, start_epoch) if start_epoch > 0 else None
        if comm is not None and comm.Get_size() > 1:
            # every rank must train the same configuration (checks the group wiring), and every rank
            # has read the checkpoint before rank 0 overwrites it; all ranks fail together
            views = comm.allgather((row, problem))
            if len({r for r, _ in views}) != 1:
                raise TrainerError(
                    f"table trainer: ranks of one trial group got different rows {[r for r, _ in views]}"
                )
            problem = next((p for _, p in views if p), None)
        if problem:
            raise TrainerError(problem)
        if self.sleep:
            time.sleep(self.sleep * (end_epoch - start_epoch))
        if comm is None or comm.Get_rank() == 0:
            os.makedirs(checkpoint_dir, exist_ok=True)
            write_atomic(path, json.dumps({"row": row, "epoch": end_epoch}))
        return [float(v) for v in self.table.curves[row, start_epoch:end_epoch]]
