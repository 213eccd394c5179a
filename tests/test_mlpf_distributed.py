"""2-rank data-parallel MLPF training with real mpiexec ranks: Horovod and torch.distributed.

Each run must leave identical parameters on both ranks, report the same curve on both ranks,
resume from its checkpoint exactly as training straight through, and match single-rank training
with the same global batch (1 rank x 2 micro-batches per step).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch", reason="the MLPF tests need torch (pip install 'hpoq[mlpf]')")
from conftest import mpi_env, mpiexec  # noqa: E402

pytestmark = pytest.mark.mpi

SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from mpi4py import MPI
    from hpoq.mlpf.training import TrainSettings, train_unit

    data, backend, ckpt, out = sys.argv[1:5]
    extra = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    comm = MPI.COMM_WORLD.Dup()
    settings = TrainSettings(**{**dict(data=data, R=2, backend=backend, seed=3, device="cpu", num_threads=1,
                                       secondary_metrics=True), **extra})
    config = json.loads(sys.argv[5])
    curve, state = train_unit(settings, config, 0, 1, ckpt, comm, return_state=True)
    curve2, state2 = train_unit(settings, config, 1, 2, ckpt, comm, return_state=True)  # a second unit: re-init works
    flat = torch.cat([v.reshape(-1).double() for k, v in sorted(state2.items())])
    straight, state_s = train_unit(settings, config, 0, 2, ckpt + "-straight", comm, return_state=True)
    resume_equal = straight == curve + curve2 and all(torch.equal(state2[k], state_s[k]) for k in state2)
    flats = comm.gather(flat, root=0)
    curves = comm.gather(curve + curve2, root=0)
    resume_ok = comm.gather(resume_equal, root=0)
    if comm.Get_rank() == 0:
        torch.save({"flat": flats[0]}, out + ".pt")
        json.dump({"max_rank_diff": float((flats[0] - flats[1]).abs().max()), "curves": curves,
                   "world": comm.Get_size(), "resume_equals_straight": resume_ok}, open(out, "w"))
""")

CONFIG = {"lr": 2e-3, "token_budget": 1024, "weight_decay": 0.01}


def _single_rank_reference(data, tmp_path):
    from hpoq.mlpf.training import TrainSettings, train_unit

    torch.set_num_threads(1)
    settings = TrainSettings(data=str(data), R=2, backend="none", seed=3, device="cpu", micro_batches=2)
    curve, _ = train_unit(settings, CONFIG, 0, 1, tmp_path / "ref", None, return_state=True)
    curve2, state = train_unit(settings, CONFIG, 1, 2, tmp_path / "ref", None, return_state=True)
    return curve + curve2, torch.cat([v.reshape(-1).double() for k, v in sorted(state.items())])


@pytest.fixture(scope="module")
def mlpf_small_data(tmp_path_factory):
    from hpoq.mlpf.writer import generate_dataset

    out = tmp_path_factory.mktemp("mlpf-dp-data")
    generate_dataset(out, 240, seed=11, preset="clic", shards=2, val_fraction=0.25)
    return out


@pytest.fixture(scope="module")
def reference(mlpf_small_data, tmp_path_factory):
    return _single_rank_reference(mlpf_small_data, tmp_path_factory.mktemp("ref"))


def _run_two_ranks(backend, data, tmp_path, config=CONFIG, settings=None):
    """Run SCRIPT on 2 ranks; ``settings``: extra TrainSettings fields (e.g. the model)."""
    script = tmp_path / "dp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "result.json"
    cmd = [
        mpiexec(),
        "-n",
        "2",
        sys.executable,
        "-m",
        "mpi4py",
        str(script),
        str(data),
        backend,
        str(tmp_path / "ckpt"),
        str(out),
        json.dumps(config),
        json.dumps(settings or {}),
    ]
    proc = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(out.read_text()), torch.load(str(out) + ".pt")["flat"]


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_two_rank_training_matches_single_rank(backend, mlpf_small_data, reference, tmp_path):
    if backend == "horovod":
        pytest.importorskip("horovod.torch")
    result, flat = _run_two_ranks(backend, mlpf_small_data, tmp_path)
    assert result["world"] == 2
    assert result["max_rank_diff"] == 0.0, "ranks diverged: parameters differ"
    assert result["curves"][0] == result["curves"][1], "ranks report different curves"
    assert result["resume_equals_straight"] == [True, True], "resuming from epoch 1 differs from 0 -> 2 straight"
    ref_curve, ref_flat = reference
    assert len(result["curves"][0]) == 2
    # same global batch -> same training up to float summation order
    assert torch.allclose(flat, ref_flat, rtol=1e-4, atol=1e-5), float((flat - ref_flat).abs().max())
    for a, b in zip(result["curves"][0], ref_curve):
        assert abs(a - b) < 1e-4 * abs(b)
