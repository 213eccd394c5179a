"""numpy values in JSON: one ``default=`` hook for every JSON writer (CLI output, journal, stores)."""

from __future__ import annotations

import numpy as np


def numpy_default(obj):
    """``json.dumps(..., default=numpy_default)``: numpy scalars and arrays as Python values."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"value of type {type(obj).__name__} is not JSON serialisable")
