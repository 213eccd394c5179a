"""Configuration samplers for table replay: rows of a curve table, uniformly without replacement.

The replay simulator (:mod:`hpoq.simulate`) and the MPI runtime's table-replay studies build
their sampler with :func:`table_sampler_for`, so that a study under ``mpiexec`` with one trial
group draws exactly the configurations ``simulate --workers 1`` draws for the same seed.
"""
from __future__ import annotations

import numpy as np

from hpoq.curves.table import CurveTable
from hpoq.errors import HpoqError
from hpoq.seeding import derive_rng, derive_seed


class TableRowSampler:
    """A :class:`~hpoq.schedulers.base.ConfigSampler` over the rows of a :class:`CurveTable`.

    Draws ``rows`` (default: all rows) in a seeded random permutation; when every row has been
    drawn it starts a new permutation (pass ``k`` uses seed ``derive_seed(seed, "pass", k)``).
    A drawn config is the row's hyperparameters plus ``"_row": row_index`` (index into ``table``;
    predictors ignore keys starting with ``_``). The state is the number of rows drawn.
    """

    def __init__(self, table: CurveTable, seed: int, rows=None):
        self.table = table
        self.seed = int(seed)
        self.rows = np.arange(table.n_rows) if rows is None else np.asarray(rows, dtype=int)
        if self.rows.size == 0:
            raise HpoqError("the configuration sampler has no table rows to draw from")
        if self.rows.min() < 0 or self.rows.max() >= table.n_rows:
            raise HpoqError(f"sampler rows must lie in 0..{table.n_rows - 1}")
        self.drawn = 0
        self._pass = -1
        self._perm: np.ndarray | None = None

    def _permutation(self, k: int) -> np.ndarray:
        if k != self._pass:
            rng = np.random.default_rng(derive_seed(self.seed, "pass", k))
            self._perm = self.rows[rng.permutation(self.rows.size)]
            self._pass = k
        return self._perm

    def peek_row(self) -> int:
        """The table row the next :meth:`sample` returns."""
        k, pos = divmod(self.drawn, self.rows.size)
        return int(self._permutation(k)[pos])

    def sample(self) -> dict:
        row = self.peek_row()
        self.drawn += 1
        config = dict(self.table.configs[row])
        config["_row"] = row
        return config

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])


def distinct_config_groups(table: CurveTable) -> list[list[int]]:
    """Rows grouped by identical hyperparameters, groups in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(table.configs):
        key = tuple(repr(config.get(name)) for name in table.hp_names)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def split_warm_rows(table: CurveTable, seed: int, warm_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(sample_rows, warm_rows): a seeded random ``warm_fraction`` of the *distinct
    configurations* (rows with identical hyperparameters stay together) goes to the warm store.

    The number of warm configurations is ``round(warm_fraction * n_distinct)``; the split uses
    ``derive_rng(seed, "warm-split")``. ``warm_fraction`` must lie in [0, 1).
    """
    warm_fraction = float(warm_fraction)
    if not 0.0 <= warm_fraction < 1.0:
        raise HpoqError(f"--warm-fraction must lie in [0, 1), got {warm_fraction:g}")
    if warm_fraction == 0.0:
        return np.arange(table.n_rows), np.zeros(0, dtype=int)
    groups = distinct_config_groups(table)
    n_warm = int(round(warm_fraction * len(groups)))
    n_warm = min(n_warm, len(groups) - 1)  # always leave something to sample
    order = derive_rng(seed, "warm-split").permutation(len(groups))
    warm = sorted(i for g in order[:n_warm] for i in groups[g])
    rest = sorted(i for g in order[n_warm:] for i in groups[g])
    return np.asarray(rest, dtype=int), np.asarray(warm, dtype=int)


def table_sampler_for(table: CurveTable, seed: int, warm_fraction: float = 0.0):
    """(sampler, warm_table or None) for a table-replay run with master ``seed``.

    The sampler is ``TableRowSampler(table, derive_seed(seed, "rows"), sample_rows)``; with
    ``warm_fraction > 0`` the set-aside rows form ``warm_table`` (the curve store of an
    "earlier study", passed to the scheduler as ``warm_curves``).
    """
    rows, warm_rows = split_warm_rows(table, seed, warm_fraction)
    sampler = TableRowSampler(table, derive_seed(seed, "rows"), rows)
    warm_table = table.subset(warm_rows) if warm_rows.size else None
    if warm_table is not None:
        warm_table.provenance = dict(warm_table.provenance, warm_fraction=warm_fraction, warm_seed=int(seed))
    return sampler, warm_table
