"""A user-style trainer plugin that takes a credential (``api_key``), as one for a remote service would.

It replays a curve table like the ``table`` trainer, except that configurations with
``config["dropout"] > refuse_above`` are refused by "the service": the plugin logs a warning and
raises an error that echoes its key and the environment's ``HPOQ_TEST_API_KEY`` -- as careless
client code does. hpoq must mask both wherever it writes them (journal records, trials.csv, the
report, stderr), the journal header excepted.
"""

from __future__ import annotations

import logging
import os

from hpoq.trainers.table import TableTrainer

log = logging.getLogger("keyed_service")


class KeyedTableTrainer(TableTrainer):
    name = "keyed-table"

    def __init__(
        self,
        table: str,
        api_key: str,
        metric: str = "loss",
        mode: str = "min",
        sleep: float = 0.0,
        refuse_above: float = 1e300,
    ):
        super().__init__(table=table, metric=metric, mode=mode, sleep=sleep)
        self.api_key, self.refuse_above = api_key, float(refuse_above)

    def train(self, config, start_epoch, end_epoch, checkpoint_dir, comm=None):
        if float(config.get("dropout", 0.0)) > self.refuse_above:
            env_key = os.environ.get("HPOQ_TEST_API_KEY", "")
            log.warning("service refused api_key %s (env %s)", self.api_key, env_key)
            print(f"client: 401 for {self.api_key} / {env_key}", flush=True)
            raise PermissionError(f"401 Unauthorized: key {self.api_key} ({env_key}) is not valid")
        return super().train(config, start_epoch, end_epoch, checkpoint_dir, comm)
