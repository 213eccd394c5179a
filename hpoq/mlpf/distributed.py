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
import logging
import os
import socket

import torch

from hpoq.errors import ConfigError

BACKENDS = ("auto", "horovod", "torch", "none")

log = logging.getLogger(__name__)


def horovod_available() -> bool:
    try:
        import horovod.torch  # noqa: F401
    except Exception:  # ImportError, or a broken build raising at load time
        return False
    return True


def horovod_has_cuda() -> bool:
    """The installed Horovod takes CUDA tensors (built with NCCL or CUDA; ``horovodrun --check-build``)."""
    import horovod.torch as hvd

    return bool(hvd.nccl_built()) or bool(hvd.cuda_built())


_FALLBACK_LOGGED = False


def resolve_backend(name: str, comm, device=None) -> str:
    """The concrete backend for ``name`` on ``device`` (size 1: none).

    ``auto``: Horovod when it imports and, on CUDA, was built with CUDA; otherwise torch.distributed
    (gloo on CPU, NCCL on CUDA), with one warning when a CPU-only Horovod is passed over on GPUs.
    ``horovod`` on CUDA with a CPU-only Horovod is refused: it would reject the GPU gradients.
    """
    global _FALLBACK_LOGGED
    if name not in BACKENDS:
        raise ConfigError(f"unknown data-parallel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if comm is None or comm.Get_size() == 1:
        return "none"  # one process: nothing to synchronise, whatever backend was asked for
    on_cuda = device is not None and torch.device(device).type == "cuda"
    if name == "auto":
        if not horovod_available():
            return "torch"
        if not on_cuda or horovod_has_cuda():
            return "horovod"
        if not _FALLBACK_LOGGED and comm.Get_rank() == 0 and _first_group(comm):
            log.warning(
                "the installed Horovod was built without CUDA (horovodrun --check-build: no NCCL): "
                "backend auto trains with torch.distributed over NCCL on the GPUs"
            )
        _FALLBACK_LOGGED = True
        return "torch"
    if name == "none":
        raise ConfigError("backend 'none' cannot train on a trial group of more than one rank")
    if name == "horovod" and on_cuda and horovod_available() and not horovod_has_cuda():
        raise ConfigError(
            "backend 'horovod' on CUDA, but the installed Horovod was built without CUDA (no NCCL); rebuild it "
            "with 'bash jobs/install_horovod.sh .venv/bin/python' where nvcc is found, or use backend: auto or torch"
        )
    return name


def _first_group(comm) -> bool:
    """This group holds the lowest worker rank of the job (world rank 1 under hpoq run, 0 in scripts)."""
    try:
        from mpi4py import MPI

        return MPI.COMM_WORLD.Get_rank() <= 1
    except Exception:  # noqa: BLE001 -- a fake communicator in tests
        return True


def pick_device(preference: str, comm=None) -> torch.device:
    """cpu, or the CUDA device of this rank when CUDA is present and ``preference`` is auto/cuda.

    Under ``hpoq run`` the runtime has given this rank its own GPU (:mod:`hpoq.runtime.gpus`);
    elsewhere (scripts calling :func:`hpoq.mlpf.training.train_unit` on their own communicator)
    the same rule is applied to ``comm``'s ranks, all of which train: a collective over ``comm``
    the first time, remembered for the process.
    """
    from hpoq.runtime import gpus

    if preference not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cpu" or not torch.cuda.is_available():
        if preference == "cuda":
            raise ConfigError("device 'cuda' requested but CUDA is not available")
        return torch.device("cpu")
    index = gpus.assigned_gpu()
    if index is None:
        if comm is None:
            index = gpus.plan_node([gpus.visible_gpus()])[0]
            torch.cuda.set_device(index)
        else:
            index = gpus.assign_gpus(comm, True)
    return torch.device("cuda", index)


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
        extra = {}
        if device.type == "cuda":  # NCCL: one GPU per rank, bound before the communicator is made
            torch.cuda.set_device(device)
            extra["device_id"] = device
        dist.init_process_group(
            self.dist_backend(device),
            store=store,
            rank=self.rank,
            world_size=self.size,
            timeout=datetime.timedelta(seconds=timeout_s),
            **extra,
        )
        self.dist = dist

    @staticmethod
    def dist_backend(device) -> str:
        """torch.distributed's backend for ``device``: nccl on CUDA, gloo on CPU."""
        return "nccl" if torch.device(device).type == "cuda" else "gloo"

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
        if self.device.type == "cuda":
            self.dist.barrier(device_ids=[self.device.index])
        else:
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
    kind = resolve_backend(name, comm, device)
    if kind == "none":
        return NoBackend(comm, device)
    if kind == "torch":
        return TorchBackend(comm, device, store_host=store_host)
    return HorovodBackend(comm, device)
