"""Data-parallel backends for one trial group (docs/runtime.md#data-parallelism-inside-a-trial): ``none``,
``torch``, ``horovod``.

All three offer the same small interface to the training loop:

- ``rank``, ``size``, ``device``;
- ``wrap(model, optimizer, micro_batches) -> optimizer``: wrap the optimizer where the backend
  needs it (Horovod's DistributedOptimizer starts with empty state, so load a checkpoint's
  optimizer state *after* wrapping);
- ``broadcast(model, optimizer)``: parameters, buffers (and torch: optimizer state) from group
  rank 0; every rank also loads the same checkpoint file, so resumed state agrees anyway;
- ``allreduce_sum(tensor)``: sum over the group (losses, element and particle counts);
- ``reduce_gradients(model)``: sum gradients over the group before ``optimizer.step()``;
- ``close()``: end of the work unit (destroy the process group / ``hvd.shutdown()``).

Gradients are **summed**, not averaged: each rank normalises its loss by the *global* element and
particle counts, so the summed gradient is the gradient of the global-batch loss.

``torch``: a process group per trial group, bootstrapped from the group's mpi4py communicator:
the group leader creates a ``TCPStore`` on a free port and broadcasts (host, port); gloo on CPU,
nccl on GPU. ``horovod``: ``hvd.init(comm=group)``, ``DistributedOptimizer(op=Sum)``,
``broadcast_parameters``, ``hvd.shutdown()`` at the end of every unit so idle ranks do not spin.
"""

from __future__ import annotations

import datetime
import os
import socket

import torch

from hpoq.errors import ConfigError

BACKENDS = ("auto", "horovod", "torch", "none")


def horovod_available() -> bool:
    try:
        import horovod.torch  # noqa: F401
    except Exception:  # ImportError, or a broken build raising at load time
        return False
    return True


def resolve_backend(name: str, comm) -> str:
    """The concrete backend for ``name`` (auto = horovod when importable, else torch; size 1 = none)."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown data-parallel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if comm is None or comm.Get_size() == 1:
        return "none"  # one process: nothing to synchronise, whatever backend was asked for
    if name == "auto":
        return "horovod" if horovod_available() else "torch"
    if name == "none":
        raise ConfigError("backend 'none' cannot train on a trial group of more than one rank")
    return name


def pick_device(preference: str, comm) -> torch.device:
    """cpu, or cuda:<local rank mod #GPUs> when CUDA is present and ``preference`` is auto/cuda."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cpu" or not torch.cuda.is_available():
        if preference == "cuda":
            raise ConfigError("device 'cuda' requested but CUDA is not available")
        return torch.device("cpu")
    local_rank = 0
    if comm is not None:
        from mpi4py import MPI

        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        local_rank = node.Get_rank()
        node.Free()
    return torch.device("cuda", local_rank % torch.cuda.device_count())


class NoBackend:
    name = "none"

    def __init__(self, comm=None, device=None):
        self.comm, self.rank, self.size = comm, 0, 1
        self.device = torch.device("cpu") if device is None else device

    def wrap(self, model, optimizer, micro_batches: int = 1):
        return optimizer

    def broadcast(self, model, optimizer) -> None:
        pass

    def allreduce_sum(self, tensor):
        return tensor

    def reduce_gradients(self, model) -> None:
        pass

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    def close(self) -> None:
        pass


def _flat_grads(model):
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return params, torch.cat([p.grad.reshape(-1) for p in params])


class TorchBackend(NoBackend):
    """torch.distributed world of the trial group (gloo on CPU, nccl on CUDA)."""

    name = "torch"

    def __init__(self, comm, device, store_host: str | None = None, timeout_s: float = 600.0):
        import torch.distributed as dist

        super().__init__(comm, device)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        if dist.is_initialized():
            dist.destroy_process_group()  # a previous unit on this rank did not close (crash path)
        host = None
        store = None
        if self.rank == 0:
            store = dist.TCPStore(
                "0.0.0.0",
                0,
                self.size,
                is_master=True,
                wait_for_workers=False,
                timeout=datetime.timedelta(seconds=timeout_s),
            )
            host = store_host or socket.gethostname()
            info = (host, store.port)
        else:
            info = None
        info = comm.bcast(info, root=0)
        names = comm.allgather(socket.gethostname())
        host, port = info
        if len(set(names)) == 1 and store_host is None:
            host = "127.0.0.1"  # one node: loopback avoids name resolution
        if self.rank != 0:
            store = dist.TCPStore(host, port, self.size, is_master=False, timeout=datetime.timedelta(seconds=timeout_s))
        self._store = store
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, store=store, rank=self.rank, world_size=self.size, timeout=datetime.timedelta(seconds=timeout_s)
        )
        self.dist = dist

    def broadcast(self, model, optimizer) -> None:
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                self.dist.broadcast(t.data, src=0)
            for state in optimizer.state.values():
                for key in sorted(state):
                    if torch.is_tensor(state[key]):
                        buf = state[key].to(self.device) if state[key].device != self.device else state[key]
                        self.dist.broadcast(buf, src=0)
                        state[key].copy_(buf)

    def allreduce_sum(self, tensor):
        out = tensor.clone()
        self.dist.all_reduce(out, op=self.dist.ReduceOp.SUM)
        return out

    def reduce_gradients(self, model) -> None:
        params, flat = _flat_grads(model)
        self.dist.all_reduce(flat, op=self.dist.ReduceOp.SUM)
        i = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[i : i + n].view_as(p.grad))
            i += n

    def barrier(self) -> None:
        self.dist.barrier()

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()
        self._store = None


class HorovodBackend(NoBackend):
    """Horovod over the trial group's communicator; shut down after every unit."""

    name = "horovod"

    def __init__(self, comm, device):
        try:
            import horovod.torch as hvd
        except ImportError:
            raise ConfigError(
                "backend 'horovod' requested but horovod.torch is not importable; "
                "run 'bash jobs/install_horovod.sh .venv/bin/python' or use backend: torch"
            ) from None
        super().__init__(comm, device)
        os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")
        hvd.init(comm=comm)
        self.hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()

    def broadcast(self, model, optimizer) -> None:
        # parameters and buffers only: broadcast_optimizer_state on an empty optimizer runs a dummy
        # step (applying weight decay), and on resume every rank has loaded the same checkpoint
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)

    def wrap(self, model, optimizer, micro_batches: int = 1):
        hvd = self.hvd
        return hvd.DistributedOptimizer(
            optimizer, named_parameters=model.named_parameters(), op=hvd.Sum, backward_passes_per_step=micro_batches
        )

    def allreduce_sum(self, tensor):
        return self.hvd.allreduce(tensor, op=self.hvd.Sum, name=None)

    def reduce_gradients(self, model) -> None:
        pass  # DistributedOptimizer's hooks all-reduce during backward; step() synchronises

    def barrier(self) -> None:
        self.hvd.allreduce(torch.zeros(1), op=self.hvd.Sum, name="hpoq.barrier")

    def close(self) -> None:
        self.hvd.shutdown()


def make_backend(name: str, comm, device, store_host: str | None = None):
    kind = resolve_backend(name, comm)
    if kind == "none":
        return NoBackend(comm, device)
    if kind == "torch":
        return TorchBackend(comm, device, store_host=store_host)
    return HorovodBackend(comm, device)
