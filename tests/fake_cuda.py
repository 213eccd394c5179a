"""Run a command line of hpoq (or a script) with CUDA mocked: this machine has no GPU.

    python -m mpi4py tests/fake_cuda.py run STUDY.yaml ...       # hpoq.main with a fake CUDA
    python -m mpi4py tests/fake_cuda.py --script FILE ARGS ...   # a script with a fake CUDA

Only what the machine lacks is faked: ``torch.cuda.is_available``, ``device_count`` (the
``HPOQ_FAKE_GPUS`` GPUs of this "node", or as many as ``CUDA_VISIBLE_DEVICES`` lists, as the CUDA
runtime counts), ``set_device`` / ``current_device`` (remembered per process) and
``is_bf16_supported``. Nothing places tensors on a GPU: code under test that would is not run
through here. Every ``set_device`` call is appended to ``HPOQ_FAKE_CUDA_LOG`` (JSON lines) when set.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

import torch

_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
N_GPUS = (
    len([e for e in _visible.split(",") if e.strip()])
    if _visible is not None
    else int(os.environ.get("HPOQ_FAKE_GPUS", "4"))
)
_current = [0]


def _set_device(device) -> None:
    index = device if isinstance(device, int) else torch.device(device).index
    if not 0 <= index < N_GPUS:
        raise RuntimeError(f"CUDA error: invalid device ordinal {index} (fake CUDA with {N_GPUS} GPUs)")
    _current[0] = index
    log = os.environ.get("HPOQ_FAKE_CUDA_LOG")
    if log:
        from mpi4py import MPI

        record = {"rank": MPI.COMM_WORLD.Get_rank(), "node": MPI.Get_processor_name(), "index": index}
        record["visible"] = _visible
        with open(log, "a") as fh:
            fh.write(json.dumps(record) + "\n")


torch.cuda.is_available = lambda: N_GPUS > 0
torch.cuda.device_count = lambda: N_GPUS
torch.cuda.set_device = _set_device
torch.cuda.current_device = lambda: _current[0]
torch.cuda.is_bf16_supported = lambda *args, **kwargs: True

if __name__ == "__main__":
    if sys.argv[1:2] == ["--script"]:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        sys.argv = ["hpoq", *sys.argv[1:]]
        runpy.run_module("hpoq.main", run_name="__main__")
