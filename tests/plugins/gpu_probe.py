"""A trainer plugin for the GPU tests (CUDA mocked by tests/fake_cuda.py): the table trainer, and on
every unit one JSON line with the decisions the MLPF trainer makes on this rank -- its device, the
data-parallel backend, torch.distributed's backend, bf16 autocast, the padding multiple."""

from __future__ import annotations

import json
import os

from hpoq.trainers.table import TableTrainer


class GpuProbe(TableTrainer):
    def __init__(self, table: str, record: str, device: str = "auto", backend: str = "auto", **kw):
        super().__init__(table=table, **kw)
        self.record, self.device, self.backend = record, device, backend

    def wants_gpu(self) -> bool:
        import torch

        return self.device != "cpu" and torch.cuda.is_available()

    def train(self, config, start_epoch, end_epoch, checkpoint_dir, comm=None):
        from mpi4py import MPI

        from hpoq.mlpf.distributed import TorchBackend, pick_device, resolve_backend
        from hpoq.mlpf.training import ModelSpec, TrainSettings, pad_multiple, uses_bf16

        device = pick_device(self.device, comm)
        backend = resolve_backend(self.backend, comm, device)
        settings = TrainSettings(data="-", device=self.device, backend=self.backend)
        line = {
            "rank": MPI.COMM_WORLD.Get_rank(),
            "node": os.environ.get("PMI_HOSTNAME") or MPI.Get_processor_name(),  # hydra's (fake) host name
            "group_size": 1 if comm is None else comm.Get_size(),
            "device": str(device),
            "backend": backend,
            "dist_backend": TorchBackend.dist_backend(device),
            "bf16": uses_bf16(settings.precision, device),
            "pad": pad_multiple(settings, ModelSpec({}, 1, None), device),
            "pid": os.getpid(),
        }
        with open(self.record, "a") as fh:
            fh.write(json.dumps(line) + "\n")
        return super().train(config, start_epoch, end_epoch, checkpoint_dir, comm)
