"""QUBO formulation of epsilon-SVR (QSVR) as a dimod BQM, decoding and the textbook bias.

Method: docs/predictors.md#qsvr-dual-and-encoding (after Pasetto et al. 2022 and Willsch et al. 2020). Each dual
coefficient alpha_n, alpha_hat_n of the epsilon-SVR dual is encoded in K bits with weights
w_i = B**(i - k0); the equality constraint sum(beta) = 0 becomes the penalty xi * (sum beta)^2.

Variable order (fixed; caches and tests depend on it, docs/predictors.md#qsvr-dual-and-encoding): the alpha
bits of point n are labels ``K*n + i``, the alpha_hat bits are ``K*(N + n) + i``, i = 0..K-1, so V = 2*K*N.

Units: the QUBO works on scaled targets (order 1, typically in [0, 1]); ``epsilon`` is in
those units, ``gamma`` in 1/(feature unit)^2. Energies are dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoq.errors import ConfigError, InternalError

#: tolerance for "free" support vectors (0 < |beta| < C_eff), docs/predictors.md#qsvr-decoding-and-bias
FREE_TOL = 1e-9


@dataclass(frozen=True)
class Encoding:
    """Bit encoding of one dual coefficient: K bits with weights B**(i - k0), i = 0..K-1.

    Defaults (docs/predictors.md#qsvr-dual-and-encoding): K = 3, B = 0.5, k0 = 0.005, so w ~ (1.00347, 0.50174, 0.25087)
    and the implicit box is [0, C_eff] with C_eff = sum(w) ~ 1.75608.
    """

    K: int = 3
    B: float = 0.5
    k0: float = 0.005

    def __post_init__(self):
        if int(self.K) != self.K or self.K < 1:
            raise ConfigError(f"QSVR bits per coefficient K must be a positive integer, got {self.K!r}")
        if not (np.isfinite(self.B) and self.B > 0):
            raise ConfigError(f"QSVR encoding base B must be a positive number, got {self.B!r}")
        if not np.isfinite(self.k0):
            raise ConfigError(f"QSVR encoding offset k0 must be finite, got {self.k0!r}")

    @property
    def weights(self) -> np.ndarray:
        return float(self.B) ** (np.arange(int(self.K), dtype=float) - float(self.k0))

    @property
    def c_eff(self) -> float:
        """The real upper bound of every coefficient (the nominal SVR C does not enter)."""
        return float(self.weights.sum())

    def n_variables(self, n_points: int) -> int:
        return 2 * int(self.K) * int(n_points)


def rbf_kernel(xa: np.ndarray, xb: np.ndarray, gamma: float) -> np.ndarray:
    """k(x, x') = exp(-gamma * ||x - x'||^2) for all pairs of rows of ``xa`` [n, d] and ``xb`` [m, d]."""
    xa = np.asarray(xa, dtype=float)
    xb = np.asarray(xb, dtype=float)
    sq = (xa * xa).sum(1)[:, None] + (xb * xb).sum(1)[None, :] - 2.0 * xa @ xb.T
    return np.exp(-float(gamma) * np.maximum(sq, 0.0))


def variable_layout(n_points: int, enc: Encoding) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-variable arrays in label order: point index p(v), signed weight c(v), is-alpha flag."""
    K, N = int(enc.K), int(n_points)
    w = enc.weights
    point = np.concatenate([np.repeat(np.arange(N), K), np.repeat(np.arange(N), K)])
    sign = np.concatenate([np.ones(K * N), -np.ones(K * N)])
    c = sign * np.tile(w, 2 * N)
    return point, c, sign > 0


def qubo_matrix(
    kmat: np.ndarray, y: np.ndarray, enc: Encoding, epsilon: float = 0.02, xi: float = 0.01, lam: float = 0.0
) -> np.ndarray:
    """Upper-triangular Q [V, V] with E(b) = b^T Q b (docs/predictors.md#qsvr-energy-and-q).

    E = 1/2 sum beta_n beta_m k_nm + eps sum(alpha + alpha_hat) - sum y_n beta_n + xi (sum beta)^2
        + lam sum alpha_n alpha_hat_n.
    """
    kmat = np.asarray(kmat, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    N = y.shape[0]
    if kmat.shape != (N, N):
        raise InternalError(f"kernel matrix shape {kmat.shape} does not match {N} targets")
    point, c, is_alpha = variable_layout(N, enc)
    M = np.outer(c, c) * (0.5 * kmat[np.ix_(point, point)] + float(xi))
    Q = 2.0 * np.triu(M, 1)
    Q[np.diag_indices_from(Q)] = np.diag(M) + float(epsilon) * np.abs(c) - y[point] * c
    if lam:
        # complementarity penalty: alpha bit u (label < K*N) with alpha_hat bit v of the same point
        pair = is_alpha[:, None] & ~is_alpha[None, :] & (point[:, None] == point[None, :])
        Q += float(lam) * np.outer(np.abs(c), np.abs(c)) * pair
    return Q


def to_bqm(Q: np.ndarray):
    """The BQM of an upper-triangular Q, variables labelled 0..V-1 (dimod sums (u,v) and (v,u))."""
    import dimod

    return dimod.BinaryQuadraticModel.from_qubo(np.triu(np.asarray(Q, dtype=float)))


def qubo_energies(Q: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """b^T Q b for each row of ``bits`` [s, V] (on the host, docs/predictors.md#qsvr-top-k-and-combination)."""
    b = np.atleast_2d(np.asarray(bits, dtype=float))
    return np.einsum("sv,vw,sw->s", b, Q, b)


def decode(bits: np.ndarray, n_points: int, enc: Encoding) -> tuple[np.ndarray, np.ndarray]:
    """alpha, alpha_hat [s, N] from bits [s, V] in label order 0..V-1 (docs/predictors.md#qsvr-decoding-and-bias)."""
    K, N = int(enc.K), int(n_points)
    b = np.atleast_2d(np.asarray(bits, dtype=float))
    if b.shape[1] != 2 * K * N:
        raise InternalError(f"bit vectors have {b.shape[1]} variables, expected {2 * K * N}")
    w = enc.weights
    alpha = b[:, : K * N].reshape(-1, N, K) @ w
    alpha_hat = b[:, K * N :].reshape(-1, N, K) @ w
    return alpha, alpha_hat


def samples_in_label_order(sampleset, n_variables: int) -> tuple[np.ndarray, np.ndarray]:
    """(bits [s, V] ordered by variable label 0..V-1, num_occurrences [s]) of a logical sampleset.

    Columns are looked up by label, never by position in the record
    (docs/predictors.md#bugs-of-the-original-code-not-repeated).
    """
    variables = sampleset.variables
    missing = [v for v in range(n_variables) if v not in variables]
    if missing:
        raise InternalError(f"sampleset lacks {len(missing)} of the {n_variables} QUBO variables (e.g. {missing[0]})")
    cols = np.array([variables.index(v) for v in range(n_variables)], dtype=int)
    record = sampleset.record
    return np.asarray(record.sample[:, cols], dtype=np.int8), np.asarray(record.num_occurrences, dtype=int)


def dual_objective(
    alpha: np.ndarray,
    alpha_hat: np.ndarray,
    kmat: np.ndarray,
    y: np.ndarray,
    epsilon: float = 0.02,
    xi: float = 0.01,
    lam: float = 0.0,
) -> np.ndarray:
    """The energy of docs/predictors.md#qsvr-energy-and-q computed directly from decoded coefficients [s, N].

    The reference for tests of the assembled Q.
    """
    alpha = np.atleast_2d(alpha)
    alpha_hat = np.atleast_2d(alpha_hat)
    beta = alpha - alpha_hat
    quad = 0.5 * np.einsum("sn,nm,sm->s", beta, np.asarray(kmat, float), beta)
    return (
        quad
        + float(epsilon) * (alpha + alpha_hat).sum(1)
        - beta @ np.asarray(y, float)
        + float(xi) * beta.sum(1) ** 2
        + float(lam) * (alpha * alpha_hat).sum(1)
    )


def textbook_bias(beta: np.ndarray, kmat: np.ndarray, y: np.ndarray, epsilon: float, c_eff: float) -> float:
    """Bias b of f(x) = sum beta_n k(x, x_n) + b by the KKT rule with the real box C_eff.

    docs/predictors.md#qsvr-decoding-and-bias.

    Free points (0 < |beta_n| < C_eff) give r_n - eps (beta > 0) or r_n + eps (beta < 0), r = y - K beta;
    b is their mean. Without free points, b = (max L + min U) / 2 as LIBSVM does.
    """
    beta = np.asarray(beta, dtype=float)
    y = np.asarray(y, dtype=float)
    r = y - np.asarray(kmat, float) @ beta
    mag = np.abs(beta)
    free = (mag > FREE_TOL) & (mag < c_eff - FREE_TOL)
    if free.any():
        est = np.where(beta[free] > 0, r[free] - epsilon, r[free] + epsilon)
        return float(est.mean())
    zero = mag <= FREE_TOL
    upper = (~zero) & (beta > 0)  # at +C_eff
    lower = (~zero) & (beta < 0)  # at -C_eff
    L = np.concatenate([r[zero] - epsilon, r[lower] + epsilon])
    U = np.concatenate([r[zero] + epsilon, r[upper] - epsilon])
    if L.size and U.size:
        return float(0.5 * (L.max() + U.min()))
    # every point at one bound (L or U empty): the one-sided bound's extreme is the best KKT guess
    return float(L.max() if L.size else U.min())
