"""Configuration samplers for table replay (rows of a curve table, uniformly without replacement)
and the one dedupe mechanism every algorithm shares.

The replay simulator (:mod:`hpoq.simulate`) and the MPI runtime's table-replay studies build
their sampler with :func:`table_sampler_for`, so that a study under ``mpiexec`` with one trial
group draws exactly the configurations ``simulate --workers 1`` draws for the same seed.

Dedupe (``simulate --dedupe``, study key ``dedupe:``, off by default): :class:`DedupeSampler`
wraps any sampler and schedulers draw through :func:`draw_config`, which returns None for a draw
whose hyperparameters repeat an earlier draw of the study. The draw still counts (a bracket of n
draws keeps fewer members; ``n`` draws of asha/default/random include the skipped ones), so with
the same seed every algorithm sees the same draws and skips the same ones.
"""

from __future__ import annotations

import numpy as np

from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.seeding import derive_rng, derive_seed


def config_key(config: dict) -> str:
    """Identity of a configuration: its hyperparameters, without bookkeeping keys (``_row``)."""
    return repr(sorted((k, repr(v)) for k, v in config.items() if not str(k).startswith("_")))


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
            raise ConfigError("the configuration sampler has no table rows to draw from")
        if self.rows.min() < 0 or self.rows.max() >= table.n_rows:
            raise ConfigError(f"sampler rows must lie in 0..{table.n_rows - 1}")
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


class DedupeSampler:
    """Wrap a :class:`~hpoq.schedulers.base.ConfigSampler` so that repeated configurations are skipped.

    :meth:`draw` returns the next configuration, or None when its :func:`config_key` was drawn
    before in this study (counted in :attr:`skipped`). :meth:`sample` is the inner sampler's draw
    (no skipping), for callers that must have a configuration. The state holds the inner
    sampler's state, the keys seen and the skip count, so a restored scheduler skips the same draws.
    """

    dedupe = True

    def __init__(self, inner):
        self.inner = inner
        self.keys: set[str] = set()
        self.skipped = 0

    @property
    def drawn(self) -> int:
        """Draws from the inner sampler, skipped ones included."""
        return int(getattr(self.inner, "drawn", 0))

    def sample(self) -> dict:
        config = self.inner.sample()
        self.keys.add(config_key(config))
        return config

    def draw(self) -> dict | None:
        config = self.inner.sample()
        key = config_key(config)
        if key in self.keys:
            self.skipped += 1
            return None
        self.keys.add(key)
        return config

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "keys": sorted(self.keys), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        if "inner" not in state:
            raise ConfigError("dedupe: the saved sampler state was made without dedupe")
        self.inner.load_state_dict(state["inner"])
        self.keys = set(state["keys"])
        self.skipped = int(state["skipped"])


def draw_config(sampler) -> dict | None:
    """One draw of a study: the configuration, or None when ``sampler`` dedupes (a
    :class:`DedupeSampler`) and this draw repeats an earlier configuration. Every scheduler draws
    through this, so dedupe applies to every algorithm alike; the caller counts the draw either way."""
    draw = getattr(sampler, "draw", None)
    return sampler.sample() if draw is None else draw()


def skipped_draws(sampler) -> int:
    """Draws ``sampler`` skipped as repeats so far (0 without dedupe)."""
    return int(getattr(sampler, "skipped", 0))


def dedupes(sampler) -> bool:
    """True when ``sampler`` skips repeated configurations."""
    return bool(getattr(sampler, "dedupe", False))


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
        raise ConfigError(f"--warm-fraction must lie in [0, 1), got {warm_fraction:g}")
    if warm_fraction == 0.0:
        return np.arange(table.n_rows), np.zeros(0, dtype=int)
    groups = distinct_config_groups(table)
    n_warm = int(round(warm_fraction * len(groups)))
    n_warm = min(n_warm, len(groups) - 1)  # always leave something to sample
    order = derive_rng(seed, "warm-split").permutation(len(groups))
    warm = sorted(i for g in order[:n_warm] for i in groups[g])
    rest = sorted(i for g in order[n_warm:] for i in groups[g])
    return np.asarray(rest, dtype=int), np.asarray(warm, dtype=int)


def table_sampler_for(table: CurveTable, seed: int, warm_fraction: float = 0.0, dedupe: bool = False):
    """(sampler, warm_table or None) for a table-replay run with master ``seed``.

    The sampler is ``TableRowSampler(table, derive_seed(seed, "rows"), sample_rows)`` (wrapped in
    :class:`DedupeSampler` with ``dedupe``); with ``warm_fraction > 0`` the set-aside rows form
    ``warm_table`` (the curve store of an "earlier study", passed to the scheduler as ``warm_curves``).
    """
    rows, warm_rows = split_warm_rows(table, seed, warm_fraction)
    sampler = TableRowSampler(table, derive_seed(seed, "rows"), rows)
    if dedupe:
        sampler = DedupeSampler(sampler)
    warm_table = table.subset(warm_rows) if warm_rows.size else None
    if warm_table is not None:
        warm_table.provenance = dict(warm_table.provenance, warm_fraction=warm_fraction, warm_seed=int(seed))
    return sampler, warm_table
