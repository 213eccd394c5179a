"""Load-time target transform and padded batches (docs/mlpf.md 1.2 and 5).

:class:`PreparedEvents` turns an in-memory split into per-element training targets once: class,
charge, the regression vector (log pT ratio, eta, sin phi, cos phi, log E ratio; 0 where there is
no target or the value is inf/NaN) and the original target pT (for the sqrt(pT) weight).
:meth:`PreparedEvents.batch` pads a list of events to the batch maximum N (optionally rounded up
to a multiple, e.g. 8 on GPU).
"""
from __future__ import annotations

import numpy as np
import torch

from hpoq.mlpf.events import EventArrays, _ranges
from hpoq.mlpf.schema import Y_CHARGE, Y_CLS, Y_COS, Y_E, Y_ETA, Y_PT, Y_SIN


def regression_targets(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[n, 5] (log(pT_t / pT_elem), eta, sin phi, cos phi, log(E_t / E_elem)), zeroed where undefined."""
    has = y[:, Y_CLS] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lpt = np.log(y[:, Y_PT] / X[:, 1])
        le = np.log(y[:, Y_E] / X[:, 5])
    reg = np.stack([lpt, y[:, Y_ETA], y[:, Y_SIN], y[:, Y_COS], le], axis=1)
    reg = np.where(np.isfinite(reg) & has[:, None], reg, 0.0)
    return reg.astype(np.float32)


class PreparedEvents:
    """An in-memory split with training targets, batched by event index lists."""

    def __init__(self, arrays: EventArrays):
        self.arrays = arrays
        X, y = arrays.X, arrays.ytarget
        self.X = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        self.cls = y[:, Y_CLS].astype(np.int64)
        self.charge = y[:, Y_CHARGE].astype(np.int64)
        self.reg = regression_targets(self.X, y)
        self.pt_true = np.where(self.cls > 0, np.nan_to_num(y[:, Y_PT]), 0.0).astype(np.float32)
        self.offsets = arrays.offsets
        self.n_elements = np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        return int(self.offsets.size - 1)

    def batch(self, events, pad_multiple: int = 1, device=None) -> dict:
        events = np.asarray(events, np.int64)
        counts = self.n_elements[events]
        n_max = int(counts.max()) if events.size else 1
        if pad_multiple > 1:
            n_max = -(-n_max // pad_multiple) * pad_multiple
        B = events.size
        rows = _ranges(self.offsets[events], counts)
        b_idx = np.repeat(np.arange(B), counts)
        pos = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        X = np.zeros((B, n_max, self.X.shape[1]), np.float32)
        X[b_idx, pos] = self.X[rows]
        cls = np.zeros((B, n_max), np.int64)
        cls[b_idx, pos] = self.cls[rows]
        charge = np.zeros((B, n_max), np.int64)
        charge[b_idx, pos] = self.charge[rows]
        reg = np.zeros((B, n_max, 5), np.float32)
        reg[b_idx, pos] = self.reg[rows]
        pt = np.zeros((B, n_max), np.float32)
        pt[b_idx, pos] = self.pt_true[rows]
        mask = np.zeros((B, n_max), bool)
        mask[b_idx, pos] = True
        out = {"X": X, "mask": mask, "cls": cls, "charge": charge, "reg": reg, "pt_true": pt}
        out = {k: torch.from_numpy(v) for k, v in out.items()}
        if device is not None:
            out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
        return out
