"""A user-style trainer plugin for a declared search space: a synthetic learning curve.

``loss(epoch) = floor + scale / epoch`` where ``floor = (log10(lr) + 2)**2 + (0.1 if opt == "sgd"
and momentum < 0.9 else 0)`` and ``scale = 1 + layers``: the best configurations have lr near
1e-2. State lives in a JSON checkpoint, as a real trainer's would.
"""

from __future__ import annotations

import json
import math
import os

from hpoq.trainers.base import Trainer, TrainerError


class SyntheticTrainer(Trainer):
    name = "synthetic"
    metric = "loss"
    mode = "min"

    def __init__(self, noise: float = 0.0):
        super().__init__(noise=noise)

    @staticmethod
    def value(config: dict, epoch: int) -> float:
        floor = (math.log10(config["lr"]) + 2.0) ** 2
        if config["opt"] == "sgd" and config["momentum"] < 0.9:
            floor += 0.1
        return floor + (1.0 + config["layers"]) / epoch

    def train(self, config, start_epoch, end_epoch, checkpoint_dir, comm=None):
        path = os.path.join(checkpoint_dir, "state.json")
        if start_epoch > 0:
            try:
                with open(path) as fh:
                    if json.load(fh)["epoch"] != start_epoch:
                        raise TrainerError("checkpoint at the wrong epoch")
            except OSError:
                raise TrainerError(f"no checkpoint at epoch {start_epoch}") from None
        os.makedirs(checkpoint_dir, exist_ok=True)
        with open(path, "w") as fh:
            json.dump({"epoch": end_epoch}, fh)
        return [self.value(config, e) for e in range(start_epoch + 1, end_epoch + 1)]
