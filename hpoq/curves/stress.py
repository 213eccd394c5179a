"""A stress family of generated curve tables with one knob: how misleading the early epochs are.

``stress_table(crossing)`` draws ``n_rows`` configurations of four hyperparameters and a learning
curve (a loss, minimised) for each. ``crossing = 0``: every curve has the same shape, so curves
never cross and the value at epoch 1 already ranks the configurations as the final value does (up
to noise). ``crossing = 1``: the good configurations are slow starters whose early values rank
*below* the poor ones (Spearman between an early epoch and the final value about -0.4 until a
sixth to a third of training), the late bloomers that real image and language models show.

The model, per configuration i with hyperparameters x_i:

* final value ``q_i = f(x_i) + e_i``: a smooth function of the hyperparameters (lower learning
  rates, wider layers and moderate dropout and weight decay are better) plus an unexplained part
  ``e_i`` (a third of the variance), so that hyperparameters say something, not everything;
* speed: ``v_i(t) = q_i + (v_0 - q_i) / (1 + t / tau_i)`` (a power-law-like approach to the
  asymptote; Domhan et al., IJCAI 2015), with ``log tau_i = log tau_0 + crossing * K * z_i``,
  ``z_i`` the standardised *goodness* of i (``-q_i``) blended with its learning rate; so the
  better a configuration, the slower it starts, as strongly as the knob says, and the learning
  rate (a hyperparameter a predictor sees) marks the slow starters;
* noise: per-epoch observation noise with an AR(1) component; a few runs (``diverge``, mostly high
  learning rates) blow up at a random epoch and stay at the ceiling ``v_0 + 0.5`` (clipped, as
  hpoq's TaskSet conversion clips diverged losses).

Everything derives from ``seed`` (:func:`hpoq.seeding.derive_rng`), so a table is a pure function of
its arguments. ``crossing_profile`` measures what the knob does (Spearman between the value at an
epoch and the final value).
"""

from __future__ import annotations

import numpy as np

from hpoq.curves.table import CurveTable
from hpoq.errors import ConfigError
from hpoq.seeding import derive_rng

#: the levels of the stress family the benchmark and the tests use (the knob's values)
STRESS_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: initial loss every curve starts from, and the ceiling diverged runs are clipped at
START, CEILING = 2.5, 3.0
#: log-timescale spread at crossing = 1 (sets how late the curves cross)
SPREAD = 0.6


def _hyperparameters(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "learning_rate": 10 ** rng.uniform(-4.0, -1.0, n),
        "width": np.round(2 ** rng.uniform(4.0, 9.0, n)).astype(int),
        "dropout": rng.uniform(0.0, 0.5, n),
        "weight_decay": 10 ** rng.uniform(-6.0, -2.0, n),
    }


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def _final_values(hp: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """q_i: the final loss, a smooth function of the hyperparameters plus an unexplained third."""
    lr = (np.log10(hp["learning_rate"]) + 2.5) / 1.5  # -1 .. 1, low rates better
    width = (np.log2(hp["width"]) - 6.5) / 2.5  # -1 .. 1, wider better
    dropout = (hp["dropout"] - 0.2) / 0.3
    wd = (np.log10(hp["weight_decay"]) + 4.0) / 2.0
    smooth = 0.9 * lr - 0.45 * width + 0.35 * dropout**2 + 0.25 * wd**2
    smooth = _standardise(smooth)
    return 0.6 + 0.12 * (np.sqrt(2 / 3) * smooth + np.sqrt(1 / 3) * rng.standard_normal(smooth.size))


def stress_table(
    crossing: float,
    *,
    n_rows: int = 1000,
    R: int = 50,
    seed: int = 0,
    noise: float = 0.01,
    diverge: float = 0.03,
) -> CurveTable:
    """A generated table (``n_rows`` configurations, ``R`` epochs, metric ``loss``, min).

    ``crossing`` in [0, 1]: 0 = curves never cross, 1 = late bloomers with inverted early ranks;
    ``noise``: per-epoch noise (loss units; the final values have a std of about 0.12);
    ``diverge``: share of runs that blow up."""
    crossing = float(crossing)
    if not 0.0 <= crossing <= 1.0:
        raise ConfigError(f"stress table: crossing must lie in [0, 1], got {crossing:g}")
    if n_rows < 2 or R < 2:
        raise ConfigError(f"stress table: needs at least 2 rows and 2 epochs, got {n_rows} rows, R = {R}")
    rng = derive_rng(seed, "stress", n_rows, R)
    hp = _hyperparameters(rng, n_rows)
    q = _final_values(hp, rng)
    # slow starters: the good ones, and the low learning rates (what a predictor can see)
    z = _standardise(0.7 * _standardise(-q) + 0.3 * _standardise(-np.log10(hp["learning_rate"])))
    tau = R / 12.0 * np.exp(crossing * (SPREAD * z + 0.2 * rng.standard_normal(n_rows)))
    t = np.arange(1, R + 1, dtype=float)
    curves = q[:, None] + (START - 0.6) * np.exp(-t[None, :] / tau[:, None])
    eps = rng.standard_normal((n_rows, R))
    ar = np.zeros_like(eps)
    for j in range(R):  # AR(1) noise: a bad stretch lasts a few epochs, as minibatch noise does
        ar[:, j] = (0.7 * ar[:, j - 1] if j else 0.0) + eps[:, j]
    curves = curves + noise * (0.6 * ar / np.sqrt(1 / (1 - 0.49)) + 0.8 * rng.standard_normal((n_rows, R)))
    lr_rank = np.argsort(np.argsort(-hp["learning_rate"])) / n_rows  # 0 = highest rate
    p_div = diverge * 3.0 * np.clip(1.0 - lr_rank * 1.5, 0.05, 1.0) / np.mean(np.clip(1.0 - lr_rank * 1.5, 0.05, 1.0))
    p_div = np.clip(p_div / 3.0, 0.0, 1.0)
    blown = rng.random(n_rows) < p_div
    at = rng.integers(1, R, n_rows)
    for i in np.flatnonzero(blown):
        curves[i, at[i] :] = CEILING
    curves = np.minimum(curves, CEILING)
    configs = [{k: (int(v[i]) if k == "width" else float(v[i])) for k, v in hp.items()} for i in range(n_rows)]
    return CurveTable(
        hp_names=list(hp),
        configs=configs,
        curves=curves,
        metric="loss",
        mode="min",
        source=f"stress(crossing={crossing:g})",
        provenance={"stress": {"crossing": crossing, "n_rows": n_rows, "R": R, "seed": int(seed)}},
    )


def crossing_profile(table: CurveTable, epochs) -> dict[int, float]:
    """Spearman rank correlation between the value at each of ``epochs`` and the final value."""
    from scipy.stats import spearmanr

    curves = table.minimized()
    final = curves[:, -1]
    return {int(e): float(spearmanr(curves[:, e - 1], final).correlation) for e in epochs}


def stress_name(crossing: float) -> str:
    """The benchmark's name of a stress level (``stress0.5``)."""
    return f"stress{float(crossing):g}"


def load_stress(name: str, **options) -> CurveTable:
    """The table of a benchmark name ``stress<crossing>`` (:func:`stress_name`)."""
    if not name.startswith("stress"):
        raise ConfigError(f"not a stress table name: {name!r} (expected stress<crossing>, e.g. stress0.5)")
    try:
        crossing = float(name[len("stress") :])
    except ValueError:
        raise ConfigError(f"not a stress table name: {name!r} (expected stress<crossing>, e.g. stress0.5)") from None
    table = stress_table(crossing, **options)
    table.provenance["shared_table"] = name
    return table
