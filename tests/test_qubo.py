"""QUBO-SVR assembly (method.md 5.1-5.4): energies, penalty, decoding by label, textbook bias, SA vs exact."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest

from hpoq.errors import ConfigError, InternalError
from hpoq.predict.qubo import (
    Encoding,
    decode,
    dual_objective,
    qubo_energies,
    qubo_matrix,
    rbf_kernel,
    samples_in_label_order,
    textbook_bias,
    to_bqm,
)
from hpoq.predict.samplers import make_sampler


def _problem(N: int, seed: int, d: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.random((N, d))
    y = rng.random(N)
    return X, y, rbf_kernel(X, X, 0.1)


def test_default_encoding_matches_method():
    enc = Encoding()
    assert np.allclose(enc.weights, [1.00347, 0.50174, 0.25087], atol=1e-5)
    assert enc.c_eff == pytest.approx(1.75608, abs=1e-5)
    assert enc.n_variables(20) == 120


@pytest.mark.parametrize("N,lam", [(1, 0.0), (2, 0.0), (3, 0.0), (2, 0.7), (3, 0.3)])
def test_energy_equals_dual_objective_exhaustive(N, lam):
    """Every bit vector for N <= 3 (<= 18 bits): b^T Q b == dual + penalty computed directly (< 1e-9)."""
    enc = Encoding()
    X, y, kmat = _problem(N, seed=N)
    Q = qubo_matrix(kmat, y, enc, epsilon=0.02, xi=0.01, lam=lam)
    assert np.all(np.tril(Q, -1) == 0)
    V = enc.n_variables(N)
    bits = np.array(list(itertools.product((0, 1), repeat=V)), dtype=np.int8)
    alpha, alpha_hat = decode(bits, N, enc)
    direct = dual_objective(alpha, alpha_hat, kmat, y, epsilon=0.02, xi=0.01, lam=lam)
    assert np.max(np.abs(qubo_energies(Q, bits) - direct)) < 1e-9
    # dimod's BQM built from the upper triangle gives the same energies (labels 0..V-1)
    bqm = to_bqm(Q)
    assert sorted(bqm.variables) == list(range(V))
    idx = np.random.default_rng(0).choice(len(bits), size=min(len(bits), 500), replace=False)
    e_bqm = bqm.energies((bits[idx], list(range(V))))
    assert np.max(np.abs(e_bqm - direct[idx])) < 1e-9


def test_energy_random_vectors_full_size():
    """N = 20, K = 3: 120 variables, 7140 couplers; random bit vectors agree with the direct energy."""
    enc = Encoding()
    X, y, kmat = _problem(20, seed=7, d=13)
    Q = qubo_matrix(kmat, y, enc)
    bqm = to_bqm(Q)
    assert bqm.num_variables == 120 and bqm.num_interactions == 120 * 119 // 2
    bits = np.random.default_rng(3).integers(0, 2, size=(400, 120), dtype=np.int8)
    alpha, alpha_hat = decode(bits, 20, enc)
    direct = dual_objective(alpha, alpha_hat, kmat, y)
    assert np.max(np.abs(bqm.energies((bits, list(range(120)))) - direct)) < 1e-9
    assert np.max(np.abs(qubo_energies(Q, bits) - direct)) < 1e-9


def test_large_xi_forces_zero_sum_beta():
    enc = Encoding(K=2)
    X, y, kmat = _problem(3, seed=11)
    for xi, expect_zero in ((1e4, True), (0.0, False)):
        Q = qubo_matrix(kmat, y + 0.5, enc, epsilon=0.02, xi=xi)
        ss = dimod.ExactSolver().sample(to_bqm(Q))
        bits, _ = samples_in_label_order(ss.lowest(), enc.n_variables(3))
        alpha, alpha_hat = decode(bits[:1], 3, enc)
        s = float((alpha - alpha_hat).sum())
        if expect_zero:
            assert abs(s) < 1e-9
        else:  # without the penalty, targets ~1 pull every beta up: the constraint is then violated
            assert abs(s) > 0.1


def test_decoding_is_by_label_not_position():
    enc = Encoding()
    N, V = 2, 12
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, size=(6, V), dtype=np.int8)
    labels = list(range(V))[::-1]  # the sampleset stores the variables in reverse order
    ss = dimod.SampleSet.from_samples((bits[:, ::-1], labels), vartype="BINARY", energy=np.zeros(6))
    got, _ = samples_in_label_order(ss, V)
    assert np.array_equal(got, bits)
    a, ah = decode(got, N, enc)
    w = enc.weights
    assert np.allclose(a[:, 1], bits[:, 3:6] @ w) and np.allclose(ah[:, 0], bits[:, 6:9] @ w)
    with pytest.raises(InternalError, match="lacks"):
        samples_in_label_order(dimod.SampleSet.from_samples((bits[:, :5], range(5)), "BINARY", np.zeros(6)), V)


def test_sa_reaches_exact_optimum_on_tiny_problem():
    enc = Encoding()
    X, y, kmat = _problem(3, seed=2)
    Q = qubo_matrix(kmat, y, enc)
    bqm = to_bqm(Q)
    exact = make_sampler("exact").sample(bqm)
    sa = make_sampler("sa", num_reads=50, num_sweeps=500).sample(bqm, seed=1)
    assert sa.first.energy == pytest.approx(exact.first.energy, abs=1e-9)
    bits, _ = samples_in_label_order(sa.lowest(), 18)
    assert qubo_energies(Q, bits[:1])[0] == pytest.approx(exact.first.energy, abs=1e-9)


def test_exact_sampler_refuses_large_problems():
    with pytest.raises(ConfigError, match="exact"):
        make_sampler("exact").sample(to_bqm(np.triu(np.ones((24, 24)))))


def test_textbook_bias_matches_libsvm_intercept():
    """Given libsvm's dual coefficients (C = C_eff), the KKT rule recovers libsvm's intercept."""
    from sklearn.svm import SVR

    enc = Encoding()
    rng = np.random.default_rng(0)
    X = rng.random((20, 5))
    y = X @ rng.random(5) / 3 + 0.05 * rng.normal(size=20)
    svr = SVR(C=enc.c_eff, epsilon=0.02, gamma=0.1, tol=1e-8).fit(X, y)
    beta = np.zeros(20)
    beta[svr.support_] = svr.dual_coef_.ravel()
    assert np.any((np.abs(beta) > 1e-6) & (np.abs(beta) < enc.c_eff - 1e-6))  # free points exist
    b = textbook_bias(beta, rbf_kernel(X, X, 0.1), y, 0.02, enc.c_eff)
    assert b == pytest.approx(float(svr.intercept_[0]), abs=2e-3)


def test_bias_midpoint_rule_without_free_points():
    kmat = np.eye(3)
    y = np.array([0.5, 1.0, 0.0])
    c_eff, eps = 1.5, 0.1
    beta = np.array([0.0, c_eff, -c_eff])
    r = y - kmat @ beta  # [0.5, -0.5, 1.5]
    L = [r[0] - eps, r[2] + eps]
    U = [r[0] + eps, r[1] - eps]
    assert textbook_bias(beta, kmat, y, eps, c_eff) == pytest.approx(0.5 * (max(L) + min(U)))
    # a free point with beta < 0 gives r + eps (the textbook sign, not the original's - eps)
    beta2 = np.array([0.0, 0.0, -0.5])
    assert textbook_bias(beta2, kmat, y, eps, c_eff) == pytest.approx((y[2] + 0.5) + eps)


def test_energy_identity_over_random_settings():
    """b^T Q b == direct energy for random K, B, k0, epsilon, xi, lambda, N (hypothesis)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(
        K=st.integers(1, 4),
        N=st.integers(1, 6),
        B=st.floats(0.1, 3.0),
        k0=st.floats(-2, 2),
        eps=st.floats(0, 1),
        xi=st.floats(0, 10),
        lam=st.floats(0, 5),
        seed=st.integers(0, 2**16),
    )
    def check(K, N, B, k0, eps, xi, lam, seed):
        enc = Encoding(K=K, B=B, k0=k0)
        X, y, kmat = _problem(N, seed)
        Q = qubo_matrix(kmat, y, enc, epsilon=eps, xi=xi, lam=lam)
        bits = np.random.default_rng(seed).integers(0, 2, size=(64, enc.n_variables(N)), dtype=np.int8)
        alpha, alpha_hat = decode(bits, N, enc)
        direct = dual_objective(alpha, alpha_hat, kmat, y, epsilon=eps, xi=xi, lam=lam)
        assert np.max(np.abs(qubo_energies(Q, bits) - direct)) < 1e-9 * max(1.0, np.abs(direct).max())

    check()
