"""One master seed -> independent, stable seeds per component (cf. Syne Tune's random_seeds).

Never derive seeds from Python's ``hash()`` of a string: it is randomised per process.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(seed: int, *names: str | int) -> int:
    """Return a 32-bit seed for the component ``names`` under master ``seed`` (stable across runs)."""
    keys = [int(seed) & 0xFFFFFFFF]
    keys += [n if isinstance(n, int) else zlib.crc32(str(n).encode()) for n in names]
    return int(np.random.SeedSequence(keys).generate_state(1)[0])


def derive_rng(seed: int, *names: str | int) -> np.random.Generator:
    """A numpy Generator for the component ``names`` under master ``seed``."""
    return np.random.default_rng(derive_seed(seed, *names))
