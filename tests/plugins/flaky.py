"""A user-style trainer plugin that misbehaves on purpose, for the runtime's failure tests.

It replays a curve table like the ``table`` trainer, except for the rows selected by the modulus
parameters: rows with ``row % raise_mod == 0`` raise ``RuntimeError``; ``row % nan_mod == 0``
return NaN for the last epoch; ``row % oom_mod == 0`` raise ``MemoryError``; ``row % flaky_mod
== 0`` fail the first attempt of their first unit only (a marker file next to the checkpoint
directory remembers it),
so the retry succeeds. A modulus of 0 disables that failure.
"""

from __future__ import annotations

import os

from hpoq.trainers.table import TableTrainer


class FlakyTableTrainer(TableTrainer):
    name = "flaky-table"

    def __init__(
        self,
        table: str,
        metric: str = "loss",
        mode: str = "min",
        sleep: float = 0.0,
        raise_mod: int = 0,
        nan_mod: int = 0,
        oom_mod: int = 0,
        flaky_mod: int = 0,
    ):
        super().__init__(table=table, metric=metric, mode=mode, sleep=sleep)
        self.raise_mod, self.nan_mod, self.oom_mod, self.flaky_mod = raise_mod, nan_mod, oom_mod, flaky_mod

    @staticmethod
    def _hit(row: int, mod: int) -> bool:
        return mod > 0 and row % mod == 0

    def train(self, config, start_epoch, end_epoch, checkpoint_dir, comm=None):
        row = int(config["_row"])
        if self._hit(row, self.raise_mod):
            raise RuntimeError(f"boom on row {row}")
        if self._hit(row, self.oom_mod):
            raise MemoryError(f"cannot allocate for row {row}")
        if self._hit(row, self.flaky_mod) and start_epoch == 0:
            marker = (
                f"{checkpoint_dir}.failed-once-{start_epoch}"  # outside: the runtime resets the directory for a retry
            )
            if not os.path.exists(marker):
                os.makedirs(os.path.dirname(marker), exist_ok=True)
                open(marker, "w").close()
                raise RuntimeError(f"transient failure on row {row}")
        values = super().train(config, start_epoch, end_epoch, checkpoint_dir, comm)
        if self._hit(row, self.nan_mod):
            values[-1] = float("nan")
        return values
