"""``qsvr``: QUBO-SVR with top-k combination and the 4 x 20 subset ensemble (docs/predictors.md).

One QSVR (docs/predictors.md#qsvr-dual-and-encoding, docs/predictors.md#qsvr-top-k-and-combination): the
epsilon-SVR dual on N <= 20 scaled points is written as a QUBO (:mod:`hpoq.predict.qubo`, V = 2*K*N <= 120
variables), sampled (:mod:`hpoq.predict.samplers`: ``sa`` default, ``neal`` alias, ``exact``, ``dwave``), the
top-k distinct lowest-energy solutions (energies recomputed on the host) are decoded by label, each gets its
textbook KKT bias, and they are combined by one of the seven schemes (weights on the coefficient vectors,
bias recomputed from the combined vector): ``norm``, ``softmax``, ``lc-norm``, ``lc-softmax``, ``best``, ``mean``,
``r2-softmax``, ``mean7`` (the mean of those seven; the workflow's output) or ``lowest``.

Subset ensemble (docs/predictors.md#qsvr-subset-ensemble, the ACAT 2022 stabilisation): m = max(1, min(chunks,
n // N)) disjoint chunks of N training points; each chunk's QSVR is scored on the training points outside
it; its weight is max(0, best R2 among the seven schemes) and its prediction that scheme's; the
final prediction is the weighted mean (equal weights if all are 0) and ``spread`` the members'
weighted standard deviation in target units.

Two registered settings of the same formulation (every QUBO parameter stays configurable):

- ``qsvr`` (:class:`QSVRPredictor`, hpoq's defaults, chosen on benchmarks/qsvr_quality.py):
  ``stride2`` features with MinMax scaling of X and y (docs/predictors.md#targets-and-scaling, in-loop scaling),
  RBF ``gamma`` 4 (on [0, 1]-scaled features the paper's 0.1 makes the kernel nearly constant),
  chunk QUBOs fitted to targets minus the chunk mean (``center``), and target-stratified chunks
  (``chunk_select="stratified"``: every chunk spans the target range, which halves the
  seed-to-seed spread of R2 at a fixed split);
- ``qsvr-paper`` (:class:`QSVRPaperPredictor`): the study's settings, for reproducing its numbers:
  QuantileTransformer(n_quantiles=min(50, n)) on X and y (fitted leak-free on the training set),
  gamma 0.1, no centring, chunks from a seeded random permutation.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from hpoq.errors import ConfigError, InternalError
from hpoq.predict.base import Prediction, Predictor, check_fitted
from hpoq.predict.features import FEATURE_SETS, USES_HPS, HPEncoder, XYScaler, build_features
from hpoq.predict.qubo import (
    Encoding,
    decode,
    qubo_energies,
    qubo_matrix,
    rbf_kernel,
    samples_in_label_order,
    textbook_bias,
    to_bqm,
)
from hpoq.predict.samplers import ALIASES, check_sampler, make_sampler
from hpoq.registry import Boolean, Interval, Options, Plugin, check_known, check_spec, validate
from hpoq.seeding import derive_rng, derive_seed

_POSITIVE = Interval(float, 0, None, closed="neither")

#: the seven combination schemes of docs/predictors.md#qsvr-top-k-and-combination, in the table's order
SEVEN_SCHEMES = ("norm", "softmax", "lc-norm", "lc-softmax", "best", "mean", "r2-softmax")
COMBINE_SCHEMES = SEVEN_SCHEMES + ("mean7", "lowest")
#: SA defaults for the 4 x 20 ensemble: one fit within ~3 s on one core (benchmarks/qsvr_quality.py)
SA_NUM_READS = 100
SA_NUM_SWEEPS = 500
_TINY = 1e-12
log = logging.getLogger(__name__)


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(scores, dtype=float) / temperature
    z = z - z.max()  # max-subtracted: no overflow (docs/predictors.md#bugs-of-the-original-code-not-repeated, item 15)
    e = np.exp(z)
    return e / e.sum()


def log2cosh_sum(residuals: np.ndarray) -> float:
    """The original's base-2 log-cosh, sum log2((2**r + 2**-r) / 2), computed stably as
    logaddexp2(r, -r) - 1 (docs/predictors.md#qsvr-top-k-and-combination); like log cosh it is ~r^2 near 0
    and ~|r| far out."""
    r = np.asarray(residuals, dtype=float)
    return float((np.logaddexp2(r, -r) - 1.0).sum())


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination in the standard order r2(true, pred).

    The study notebooks swapped the arguments (docs/predictors.md#bugs-of-the-original-code-not-repeated).
    """
    y = np.asarray(y, dtype=float)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    ss_res = float(((y - pred) ** 2).sum())
    if ss_tot <= 0:
        return 0.0 if ss_res <= _TINY else -math.inf
    return 1.0 - ss_res / ss_tot


def scheme_weights(
    scheme: str, mse: np.ndarray, lc: np.ndarray, r2s: np.ndarray, temperature: float = 1.0
) -> np.ndarray:
    """Weights over the k solutions for one of the seven schemes (docs/predictors.md#qsvr-top-k-and-combination)."""
    k = len(mse)
    inv_mse = 1.0 / np.maximum(mse, _TINY)
    inv_lc = 1.0 / np.maximum(lc, _TINY)
    if scheme == "norm":
        return inv_mse / inv_mse.sum()
    if scheme == "softmax":
        return _softmax(inv_mse, temperature)
    if scheme == "lc-norm":
        return inv_lc / inv_lc.sum()
    if scheme == "lc-softmax":
        return _softmax(inv_lc, temperature)
    if scheme == "best":
        w = np.zeros(k)
        w[int(np.argmin(mse))] = 1.0  # first minimum = the lower-energy one (solutions sorted by energy)
        return w
    if scheme == "mean":
        return np.full(k, 1.0 / k)
    if scheme == "r2-softmax":
        return _softmax(np.where(np.isfinite(r2s), r2s, -1e9), temperature)
    raise ConfigError(f"unknown combination scheme {scheme!r}; choose one of {', '.join(COMBINE_SCHEMES)}")


@dataclass
class QSVRModel:
    """One trained QSVR: f(x) = k(x, X) @ beta + bias on scaled features/targets."""

    X: np.ndarray  # [N, d] scaled training points of the chunk
    beta: np.ndarray  # [N]
    bias: float
    scheme: str

    def predict_scaled(self, Xs: np.ndarray, gamma: float) -> np.ndarray:
        return rbf_kernel(Xs, self.X, gamma) @ self.beta + self.bias


@dataclass(frozen=True)
class QSVRSettings:
    """The QUBO-SVR formulation and its ensemble: every field is a ``qsvr`` parameter (see
    :class:`QSVRPredictor`); ``qsvr-paper`` changes four of them."""

    features: str = "stride2"
    scaler: str = "minmax"
    hp_log: bool = True
    n_points: int = 20
    chunks: int = 4
    K: int = 3
    B: float = 0.5
    k0: float = 0.005
    epsilon: float = 0.02
    gamma: float = 4.0
    xi: float = 0.01
    lam: float = 0.0
    top_k: int | None = None
    combine: str = "mean7"
    ensemble_select: str = "best"
    temperature: float = 1.0
    center: bool = True
    chunk_select: str = "stratified"


#: the annealer ``qsvr`` samples with when the study names none (or leaves these parameters out): simulated
#: annealing, 100 reads of 500 sweeps, keeps one 4 x 20 ensemble fit near 1 s on one core
#: (benchmarks/qsvr_quality.py); the D-Wave path falls back to the same annealer
SAMPLER_DEFAULTS = {
    "sa": {"num_reads": SA_NUM_READS, "num_sweeps": SA_NUM_SWEEPS},
    "dwave": {"num_sweeps": SA_NUM_SWEEPS, "sa_num_reads": SA_NUM_READS},
}


def qubo_sampler(sampler=None, path: str = "predictor.params.sampler", build: bool = True):
    """The annealing sampler of a ``qsvr`` predictor, built once: ``sampler`` itself when it is a sampler
    object, else built from ``{name, params}`` (or a name) with :data:`SAMPLER_DEFAULTS` where ``params``
    is silent (:func:`hpoq.predict.samplers.make_sampler`; errors name ``path``). ``build`` False: only
    check the parameters (opens no QPU connection)."""
    if sampler is None:
        sampler = {"name": "sa"}
    if isinstance(sampler, str):
        sampler = {"name": sampler}
    if not isinstance(sampler, dict):
        return sampler  # a sampler built by the caller (a dimod.Sampler)
    check_spec(sampler, path)
    name = ALIASES.get(str(sampler["name"]).lower(), str(sampler["name"]).lower())
    params = {**SAMPLER_DEFAULTS.get(name, {}), **(sampler.get("params") or {})}
    if not build:
        return check_sampler(name, params, path=f"{path}.params")
    return make_sampler(name, path=f"{path}.params", **params)


class QSVRPredictor(Predictor):
    """QUBO-SVR predictor (docs/predictors.md#qsvr-dual-and-encoding) implementing :class:`hpoq.predict.base.Predictor`.

    Parameters (units: scaled targets in [0, 1], scaled features), every one but ``seed`` and ``sampler`` a
    field of :class:`QSVRSettings`:

    - QUBO: ``K`` bits per coefficient (3), base ``B`` (0.5), offset ``k0`` (0.005), ``epsilon``
      (0.02), RBF ``gamma`` (4.0; ``qsvr-paper`` 0.1), equality penalty ``xi`` (0.01), complementarity ``lam`` (0).
    - ``n_points`` N per QUBO (20; V = 2*K*N variables), ``chunks`` of the ensemble (4).
    - ``sampler``: the annealer, a QUBO sampler object built once and passed in, or ``{name, params}``
      (``sa`` | ``neal`` | ``exact`` | ``dwave``, docs/predictors.md#samplers; :func:`qubo_sampler`): ``sa``
      with ``num_reads`` 100 and ``num_sweeps`` 500 by default; ``dwave`` takes its QPU settings
      (``num_reads`` 1000, ``chain_strength``, ``chain_mult``, ``annealing_time``, ``solver``, ``cache_dir``,
      ``fallback``, ``timeout_s``) and falls back to that ``sa``.
    - ``top_k`` (None: max(floor(0.004 * the sampler's num_reads), 2)).
    - ``combine`` (``mean7``; see COMBINE_SCHEMES) for a single QSVR and for every chunk when
      ``ensemble_select="combine"``; with ``ensemble_select="best"`` (default, docs/predictors.md#qsvr-subset-ensemble)
      each chunk uses the best of the seven schemes on its held-out points. ``temperature`` of the
      softmax schemes (1).
    - ``center`` (True; ``qsvr-paper`` False): fit each chunk's QUBO to targets minus the chunk mean
      (added back to the bias); with the weak equality penalty the QUBO solution is close to a
      bias-free SVR, so centring keeps the kernel expansion from having to carry the mean level.
    - ``chunk_select`` (``stratified``; ``qsvr-paper`` ``random``): how the chunks are drawn (:meth:`_chunk_rows`).
    - ``features`` (``stride2``), ``scaler`` (``minmax`` | ``quantile``, the paper's), ``hp_log`` (baker only),
      ``seed`` (master seed; chunk choice and SA seeds derive from it).
    """

    name = "qsvr"
    parameter_constraints = {
        "features": [Options(*sorted(FEATURE_SETS))],
        "scaler": [Options("quantile", "minmax")],
        "hp_log": [Boolean()],
        **{k: [Interval(int, 1, None)] for k in ("n_points", "chunks", "K")},
        "B": [_POSITIVE],
        "k0": [Interval(float)],
        **{k: [Interval(float, 0, None)] for k in ("epsilon", "xi", "lam")},
        **{k: [_POSITIVE] for k in ("gamma", "temperature")},
        "sampler": [Plugin("sampler"), None],
        "top_k": [Interval(int, 1, None), None],
        "combine": [Options(*COMBINE_SCHEMES)],
        "ensemble_select": [Options("best", "combine")],
        "center": [Boolean()],
        "chunk_select": [Options("random", "stratified")],
    }
    #: the defaults of the settings not given
    defaults = QSVRSettings()
    #: parameters given as ``{name, params}`` that are built once (by ``assemble``) and passed in as objects
    nested_plugins = {"sampler": qubo_sampler}

    def __init__(self, seed: int = 0, sampler=None, **settings):
        validate(type(self), {"seed": seed, "sampler": sampler, **settings}, self.name)
        check_known(type(self), settings, self.name, exclude=("seed", "sampler"))
        config = replace(self.defaults, **settings)
        self.settings = config
        self.encoding = Encoding(K=int(config.K), B=float(config.B), k0=float(config.k0))
        self.center = bool(config.center)
        self.chunk_select = config.chunk_select
        self.seed = int(seed)
        self.features, self.scaler_name, self.hp_log = config.features, config.scaler, bool(config.hp_log)
        self.n_points, self.chunks = int(config.n_points), int(config.chunks)
        self.epsilon, self.gamma = float(config.epsilon), float(config.gamma)
        self.xi, self.lam = float(config.xi), float(config.lam)
        self.top_k = None if config.top_k is None else int(config.top_k)
        self.combine, self.ensemble_select = config.combine, config.ensemble_select
        self.temperature = float(config.temperature)
        requested = sampler.get("name") if isinstance(sampler, dict) else sampler
        self.sampler = qubo_sampler(sampler)
        self.sampler_name = (
            ALIASES.get(str(requested), str(requested)) if isinstance(requested, str) else (_sampler_name(self.sampler))
        )
        self.members: list[QSVRModel] = []
        self.member_weights = np.zeros(0)
        self.used_rows_: np.ndarray | None = None  # training rows the QUBOs saw, chunk by chunk
        self.chunk_rows_: list[np.ndarray] = []
        self.encoder: HPEncoder | None = None
        self.scaler: XYScaler | None = None
        self.n_epochs: int | None = None
        self.fit_seconds = 0.0
        self._fit_info: dict = {}

    @property
    def num_reads(self) -> int:
        """Reads per QUBO of the sampler (the D-Wave sampler's requested QPU reads, also after a fallback)."""
        return int(getattr(self.sampler, "num_reads", SA_NUM_READS))

    @property
    def num_sweeps(self) -> int | None:
        return getattr(self.sampler, "num_sweeps", None)

    @property
    def k_solutions(self) -> int:
        if self.top_k is not None:
            return self.top_k
        return max(int(math.floor(0.004 * self.num_reads)), 2)

    # -- one QSVR -----------------------------------------------------------------------------
    def _solve_chunk(self, Xc: np.ndarray, yc: np.ndarray, chunk: int) -> tuple[list[tuple], dict, np.ndarray]:
        """Top-k distinct lowest-energy solutions of one chunk's QUBO: [(alpha, alpha_hat, energy)], info."""
        N = len(yc)
        V = self.encoding.n_variables(N)
        kmat = rbf_kernel(Xc, Xc, self.gamma)
        Q = qubo_matrix(kmat, yc, self.encoding, self.epsilon, self.xi, self.lam)
        bqm = to_bqm(Q)
        sampleset = self.sampler.sample(bqm, seed=derive_seed(self.seed, "qsvr", "sample", chunk))
        # identical logical samples merged (num_occurrences summed) after unembedding (5.6)
        aggregated = sampleset.aggregate()
        bits, _ = samples_in_label_order(aggregated, V)
        energies = qubo_energies(Q, bits)
        order = np.argsort(energies, kind="stable")
        top = order[: self.k_solutions]
        alpha, alpha_hat = decode(bits[top], N, self.encoding)
        sols = [(alpha[j], alpha_hat[j], float(energies[top[j]])) for j in range(len(top))]
        info = dict(sampleset.info["hpoq"])
        info["energies"] = [s[2] for s in sols]
        # the sampler's energies must agree with b^T Q b: a mismatch means a label mix-up (5.6)
        mismatch = float(np.max(np.abs(np.asarray(aggregated.record.energy)[top] - energies[top])))
        info["energy_mismatch"] = mismatch
        if mismatch > 1e-6 * max(1.0, float(np.abs(energies[top]).max())):
            log.warning("qsvr: sampler energies differ from the host QUBO energies by %.3g", mismatch)
        return sols, info, kmat

    def _schemes(self, sols, kmat: np.ndarray, yc: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
        """(beta, bias) for every combination scheme; scheme weights scored in-sample on the chunk (5.7)."""
        c_eff = self.encoding.c_eff
        alphas = np.array([s[0] for s in sols])
        alpha_hats = np.array([s[1] for s in sols])
        betas = alphas - alpha_hats
        biases = np.array([textbook_bias(b, kmat, yc, self.epsilon, c_eff) for b in betas])
        preds = betas @ kmat + biases[:, None]  # kmat symmetric: row j = predictions of solution j
        res = preds - yc[None, :]
        mse = (res**2).mean(1)
        lc = np.array([log2cosh_sum(r) for r in res])
        r2s = np.array([r2(yc, p) for p in preds])
        out: dict[str, tuple[np.ndarray, float]] = {}
        for scheme in SEVEN_SCHEMES:
            w = scheme_weights(scheme, mse, lc, r2s, self.temperature)
            a, ah = w @ alphas, w @ alpha_hats
            beta = a - ah
            out[scheme] = (beta, textbook_bias(beta, kmat, yc, self.epsilon, c_eff))
        out["mean7"] = (
            np.mean([out[s][0] for s in SEVEN_SCHEMES], axis=0),
            float(np.mean([out[s][1] for s in SEVEN_SCHEMES])),
        )
        out["lowest"] = (betas[0], float(biases[0]))
        return out

    # -- Predictor interface ---------------------------------------------------------------
    def _features(self, configs, prefixes) -> np.ndarray:
        return build_features(self.features, configs if self.features in USES_HPS else None, prefixes, self.encoder)

    def fit(self, configs: Sequence[dict] | None, prefixes: np.ndarray, targets: np.ndarray) -> "QSVRPredictor":
        t0 = time.perf_counter()
        prefixes = np.asarray(prefixes, dtype=float)
        if prefixes.ndim == 1:
            prefixes = prefixes[:, None]
        targets = np.asarray(targets, dtype=float).ravel()
        if prefixes.ndim != 2 or len(prefixes) != len(targets) or len(targets) < 2:
            raise ConfigError(
                f"qsvr: need >= 2 prefixes [n, e] matching targets [n], got {prefixes.shape} and {targets.shape}"
            )
        if not (np.isfinite(prefixes).all() and np.isfinite(targets).all()):
            raise ConfigError("qsvr: prefixes and targets must be finite")
        if configs is not None and len(configs) != len(targets):
            raise InternalError(f"qsvr: {len(configs)} configs for {len(targets)} targets")
        n = len(targets)
        self.n_epochs = prefixes.shape[1]
        self.encoder = HPEncoder(log_scale=self.hp_log).fit(configs if self.features in USES_HPS else None)
        X = self._features(configs, prefixes)
        self.scaler = XYScaler(self.scaler_name).fit(X, targets)
        Xs, ys = self.scaler.transform_X(X), self.scaler.transform_y(targets)
        # disjoint seeded chunks of N points (5.8); never more than 2*K*N variables per QUBO
        N = self.n_points
        m = max(1, min(self.chunks, n // N))
        self.chunk_rows_ = self._chunk_rows(ys, m, N)
        self.used_rows_ = np.concatenate(self.chunk_rows_)

        members, weights, chunk_info = [], [], []
        for c, rows in enumerate(self.chunk_rows_):
            Xc, yc = Xs[rows], ys[rows]
            # optional centring: the QUBO then models deviations from the chunk mean
            offset = float(yc.mean()) if self.center else 0.0
            sols, info, kmat = self._solve_chunk(Xc, yc - offset, c)
            schemes = {k: (b, bias + offset) for k, (b, bias) in self._schemes(sols, kmat, yc - offset).items()}
            outside = np.setdiff1d(np.arange(n), rows)
            if m == 1:
                scheme = self.combine
                score = float("nan")
                if len(outside) >= 2:
                    beta, bias = schemes[scheme]
                    score = r2(ys[outside], rbf_kernel(Xs[outside], Xc, self.gamma) @ beta + bias)
                weight = 1.0
            else:
                kout = rbf_kernel(Xs[outside], Xc, self.gamma)
                candidates = SEVEN_SCHEMES if self.ensemble_select == "best" else (self.combine,)
                scores = {s: r2(ys[outside], kout @ schemes[s][0] + schemes[s][1]) for s in candidates}
                scheme = max(candidates, key=lambda s: scores[s])  # first of equal scores, table order
                score = scores[scheme]
                weight = max(0.0, score) if np.isfinite(score) else 0.0
            beta, bias = schemes[scheme]
            members.append(QSVRModel(X=Xc, beta=beta, bias=bias, scheme=scheme))
            weights.append(weight)
            info.update(scheme=scheme, heldout_r2=score, n_points=len(rows))
            chunk_info.append(info)
        w = np.asarray(weights, dtype=float)
        self.member_weights = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
        self.members = members
        self.fit_seconds = time.perf_counter() - t0
        self._fit_info = {"chunks": chunk_info}
        return self

    def _chunk_rows(self, ys: np.ndarray, m: int, N: int) -> list[np.ndarray]:
        """m disjoint chunks of N training rows (docs/predictors.md#qsvr-subset-ensemble).

        ``random``: a seeded permutation.
        ``stratified``: the rows sorted by target are cut into m*N equal-count strata, one seeded
        random row is drawn per stratum, and stratum j goes to chunk j mod m, so that every chunk
        spans the whole target range (fewer chunks without the rare bad runs, less seed-to-seed
        variance). With fewer than N rows (then m = 1) the one chunk is every row, in permuted order."""
        rng = derive_rng(self.seed, "qsvr", "chunks")
        n = len(ys)
        if self.chunk_select == "random" or n < N:  # m <= n // N, so otherwise m * N <= n
            perm = rng.permutation(n)
            return [np.sort(perm[c * N : (c + 1) * N]) for c in range(m)]
        strata = np.array_split(np.argsort(ys, kind="stable"), m * N)
        picks = np.array([s[rng.integers(len(s))] for s in strata])
        return [np.sort(picks[c::m]) for c in range(m)]

    def _member_predictions_scaled(self, configs, prefixes) -> np.ndarray:
        prefixes = np.asarray(prefixes, dtype=float)
        if prefixes.ndim == 1:
            prefixes = prefixes[None, :]
        if prefixes.ndim != 2 or prefixes.shape[1] != self.n_epochs:
            raise InternalError(f"qsvr: prefixes must be [m, {self.n_epochs}] as in fit, got shape {prefixes.shape}")
        Xs = self.scaler.transform_X(self._features(configs, prefixes))
        return np.array([mem.predict_scaled(Xs, self.gamma) for mem in self.members])

    def predict(self, configs: Sequence[dict] | None, prefixes: np.ndarray) -> Prediction:
        check_fitted(bool(self.members), "qsvr")
        member_scaled = self._member_predictions_scaled(configs, prefixes)
        w = self.member_weights
        mean = self.scaler.inverse_y(w @ member_scaled)
        spread = None
        if len(self.members) > 1:
            member = np.array([self.scaler.inverse_y(p) for p in member_scaled])
            centre = w @ member
            spread = np.sqrt(np.maximum(w @ (member - centre[None, :]) ** 2, 0.0))
        return Prediction(mean=mean, spread=spread, info=self._sampler_facts())

    # -- reporting --------------------------------------------------------------------------
    def _sampler_facts(self) -> dict:
        d = dict(self.sampler.describe())
        d["requested_sampler"] = self.sampler_name
        d["chunks"] = len(self.members)
        d["member_weights"] = [float(x) for x in self.member_weights]
        d["schemes"] = [m.scheme for m in self.members]
        cbf = [c["chain_break_fraction"] for c in self._fit_info.get("chunks", []) if "chain_break_fraction" in c]
        if cbf:
            d["chain_break_fraction"] = float(np.mean(cbf))
        return d

    def describe(self) -> dict:
        d = {
            "name": self.name,
            "seed": self.seed,
            "features": self.features,
            "scaler": self.scaler_name,
            "n_points": self.n_points,
            "chunks_max": self.chunks,
            "K": self.encoding.K,
            "B": self.encoding.B,
            "k0": self.encoding.k0,
            "C_eff": self.encoding.c_eff,
            "epsilon": self.epsilon,
            "gamma": self.gamma,
            "xi": self.xi,
            "lam": self.lam,
            "num_reads": self.num_reads,
            "num_sweeps": self.num_sweeps,
            "top_k": self.k_solutions,
            "combine": self.combine,
            "ensemble_select": self.ensemble_select,
            "center": self.center,
            "chunk_select": self.chunk_select,
            "fit_seconds": self.fit_seconds,
        }
        d.update(self._sampler_facts())
        if self._fit_info:
            d["chunk_info"] = [
                {k: v for k, v in c.items() if k != "energies"} | {"lowest_energy": c["energies"][0]}
                for c in self._fit_info["chunks"]
            ]
        return d


class QSVRPaperPredictor(QSVRPredictor):
    """``qsvr-paper``: the same QSVR with the settings of the QSVR study.

    docs/predictors.md#targets-and-scaling, docs/predictors.md#qsvr-subset-ensemble, README.md#benchmarks:
    ``stride2`` features, QuantileTransformer on X and y, gamma 0.1, no centring, chunks from a
    seeded random permutation. Every other default is shared with ``qsvr``."""

    name = "qsvr-paper"
    parameter_constraints = {}  # the same parameters as qsvr (other defaults)
    defaults = replace(QSVRSettings(), scaler="quantile", gamma=0.1, center=False, chunk_select="random")


def _sampler_name(sampler) -> str:
    return str(getattr(sampler, "name", None) or getattr(sampler, "primary_name", None) or type(sampler).__name__)


__all__ = [
    "QSVRPredictor",
    "QSVRPaperPredictor",
    "QSVRSettings",
    "qubo_sampler",
    "COMBINE_SCHEMES",
    "SEVEN_SCHEMES",
    "scheme_weights",
    "log2cosh_sum",
    "r2",
]
