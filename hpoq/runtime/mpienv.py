"""How to spawn ``mpiexec`` children from Python (tests, benchmarks, scripts).

The venv's ``bin/`` goes first on PATH so the ``mpiexec`` of the mpich wheel that mpi4py was
built against is found; one OpenMP thread and MPICH's heavy yield keep oversubscribed ranks from
spinning (docs/runtime.md#testing-mpi-on-a-laptop); the repository goes on PYTHONPATH so children import this checkout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def mpi_child_env(base: dict | None = None) -> dict:
    """A copy of ``base`` (default: this process's environment) set up for ``mpiexec`` children."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["MPIR_CVAR_ENABLE_HEAVY_YIELD"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def mpiexec_path() -> str:
    """The venv's ``mpiexec`` when there is one, else whatever ``mpiexec`` is on PATH."""
    exe = Path(sys.executable).parent / "mpiexec"
    return str(exe) if exe.exists() else "mpiexec"
