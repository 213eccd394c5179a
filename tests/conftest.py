"""Shared test fixtures: paths to ../shared/data and the environment for spawned MPI ranks."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MLPF_TABLE = SHARED_DATA / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz"

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")


class _WithoutTorch:
    """``HPOQ_WITHOUT_TORCH=1``: importing torch or fastjet fails, as on an install without ``hpoq[mlpf]``
    (the MLPF tests skip; every other test must pass, tests/test_packaging.py)."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "fastjet"):
            raise ModuleNotFoundError(f"No module named {name!r} (HPOQ_WITHOUT_TORCH=1)", name=name)


if os.environ.get("HPOQ_WITHOUT_TORCH") == "1":
    sys.meta_path.insert(0, _WithoutTorch())


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


def mpi_cmd(n: int, *args) -> list[str]:
    """``mpiexec -n N python -m mpi4py -m hpoq.main ARGS``."""
    return [mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", "-m", "hpoq.main", *args]


def run_mpi(n: int, *args, timeout: float) -> subprocess.CompletedProcess:
    """One invocation; the timeout only guards the test run (hitting it fails the test: no outside kill)."""
    return subprocess.run(mpi_cmd(n, *args), capture_output=True, text=True, env=mpi_env(), cwd=REPO, timeout=timeout)


def start_mpi(n: int, *args) -> subprocess.Popen:
    """The same invocation started in the background (text pipes for stdout and stderr), for tests that signal,
    kill or watch it while it runs."""
    return subprocess.Popen(
        mpi_cmd(n, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mpi_env(), cwd=REPO
    )


# -- Slurm (tests/test_slurm.py) --------------------------------------------------------------------------------
def _local_slurm_conf() -> str | None:
    """The slurm.conf written by jobs/local_slurm.sh, when clients would not find it by themselves."""
    if os.environ.get("SLURM_CONF") or os.path.exists("/etc/slurm/slurm.conf"):
        return None
    conf = Path(os.environ.get("HPOQ_SLURM_DIR", "/tmp/hpoq-slurm")) / "slurm.conf"
    return str(conf) if conf.exists() else None


def slurm_env() -> dict:
    """Environment for Slurm clients and the jobs they submit (sbatch/srun export it to the tasks)."""
    env = mpi_child_env()
    conf = _local_slurm_conf()
    if conf:
        env["SLURM_CONF"] = conf
    return env


@functools.lru_cache(maxsize=1)
def slurm_skip_reason() -> str | None:
    """None when a Slurm answers with a usable node, else why the Slurm tests skip (they fail where
    HPOQ_REQUIRE_SLURM=1, as on CI once its Slurm is up)."""
    return find_slurm_problem(slurm_env())


def find_slurm_problem(env: dict) -> str | None:
    """Why no Slurm can run the tests with ``env`` (client commands missing, no controller answering, no
    usable node), or None. Never raises: a Slurm that is not there is a skip, not an error."""
    import shutil
    import subprocess

    start = "start one with: bash jobs/local_slurm.sh up (root; installs Debian's slurm-wlm and munge)"
    missing = [
        c for c in ("sinfo", "sbatch", "srun", "scontrol", "scancel") if not shutil.which(c, path=env.get("PATH"))
    ]
    if missing:
        return f"no Slurm client commands ({', '.join(missing)}); {start}"

    def ask(*cmd) -> tuple[int | None, str]:
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=15)
        except (subprocess.TimeoutExpired, OSError) as exc:
            return None, type(exc).__name__
        return proc.returncode, proc.stdout.strip() or proc.stderr.strip()

    code, text = ask("scontrol", "ping")
    if code != 0 or " is UP" not in text:
        first = text.splitlines()[0][:120] if text else "no answer"
        return f"no Slurm controller answers (scontrol ping: {first}); {start}"
    code, text = ask("sinfo", "-h", "-o", "%T")
    usable = {"idle", "mixed", "allocated", "completing"}  # '*' / '~' suffixes: not responding / powered off
    if code != 0 or not usable & set(text.split()):
        return f"no usable Slurm node (sinfo: {' '.join(text.split())[:120] or 'no answer'}); {start}"
    return None
