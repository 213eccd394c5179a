"""The fixed feature transform of MiniMLPF (docs/mlpf-data.md#model-and-training), in numpy (for dataset stats) and
torch.

log1p on pT/ET, p/E, chi2, energy_ecal, energy_hcal and num_hits; mm -> m; then (in the model)
standardisation per (element type, column) with the train split's mean and std. Both versions
must agree: the stats written by ``generate-data`` are computed with :func:`transform_numpy` and
the model applies :func:`transform_torch`.
"""

from __future__ import annotations

import numpy as np

from hpoq.mlpf.schema import LOG1P_COLUMNS, MM_COLUMNS


def _column_plan(n_types: int, n_features: int):
    """Per element type: boolean masks of columns that get log1p and mm -> m."""
    log_mask = np.zeros((n_types, n_features), bool)
    mm_mask = np.zeros((n_types, n_features), bool)
    for t, cols in LOG1P_COLUMNS.items():
        if t < n_types:
            log_mask[t, [c for c in cols if c < n_features]] = True
    for t, cols in MM_COLUMNS.items():
        if t < n_types:
            mm_mask[t, [c for c in cols if c < n_features]] = True
    return log_mask, mm_mask


def transform_numpy(X: np.ndarray, n_types: int) -> np.ndarray:
    """Fixed transform of raw element features X [n, F] (float64 out)."""
    X = np.asarray(X, np.float64)
    types = np.clip(X[:, 0].astype(np.int64), 0, n_types - 1)
    log_mask, mm_mask = _column_plan(n_types, X.shape[1])
    lm, mm = log_mask[types], mm_mask[types]
    out = np.where(lm, np.sign(X) * np.log1p(np.abs(X)), X)
    return np.where(mm, out / 1000.0, out)


def type_stats(X: np.ndarray, n_types: int):
    """Sums, sums of squares and counts per (element type, column) of transformed features."""
    Xt = transform_numpy(X, n_types)
    types = np.clip(X[:, 0].astype(np.int64), 0, n_types - 1)
    s = np.zeros((n_types, X.shape[1]))
    ss = np.zeros_like(s)
    for t in range(n_types):
        rows = Xt[types == t]
        s[t], ss[t] = rows.sum(axis=0), (rows * rows).sum(axis=0)
    return s, ss, np.bincount(types, minlength=n_types).astype(np.float64)


def finish_stats(s, ss, count):
    """Mean and std (std floored at 1e-6, padding row mean 0 / std 1) from :func:`type_stats` sums."""
    c = np.maximum(count, 1.0)[:, None]
    mean = s / c
    std = np.sqrt(np.maximum(ss / c - mean**2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    mean[0], std[0] = 0.0, 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def transform_torch(X, log_mask, mm_mask):
    """Torch version of :func:`transform_numpy`; ``log_mask``/``mm_mask`` are bool [T, F] tensors."""
    import torch

    types = X[..., 0].long().clamp(0, log_mask.shape[0] - 1)
    lm, mm = log_mask[types], mm_mask[types]
    out = torch.where(lm, torch.sign(X) * torch.log1p(X.abs()), X)
    return torch.where(mm, out / 1000.0, out)


def column_plan_tensors(n_types: int, n_features: int):
    import torch

    log_mask, mm_mask = _column_plan(n_types, n_features)
    return torch.from_numpy(log_mask), torch.from_numpy(mm_mask)
