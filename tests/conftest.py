"""Shared test fixtures: paths to ../shared/data and the environment for spawned MPI ranks."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MLPF_TABLE = SHARED_DATA / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz"

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mlpf_table() -> Path:
    return MLPF_TABLE


def mpi_env() -> dict:
    """Environment for ``mpiexec`` children: the venv's bin first, one thread, heavy yield."""
    return mpi_child_env()


def mpiexec() -> str:
    return mpiexec_path()
