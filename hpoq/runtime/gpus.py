"""One GPU per worker rank of a node, whatever the launcher (docs/runtime.md#data-parallelism-inside-a-trial).

The node a rank runs on is the MPI library's own answer: ``Split_type(COMM_TYPE_SHARED)`` of the
world communicator (under ``srun`` the PMI's node ids, under ``mpiexec`` hydra's host list). On
each node the ranks that want a GPU -- worker ranks of a trial group whose trainer trains on CUDA;
never the master, never a rank left over by the group split -- are taken in rank order, and each
takes the first GPU it sees that no earlier rank of the node took. A GPU is known by its UUID
(``torch.cuda.get_device_properties(i).uuid``), else by its ``CUDA_VISIBLE_DEVICES`` entry, else
by its index, so the same rule serves

- every rank seeing all of the node's GPUs (``mpiexec``, plain ``srun``): the k-th GPU rank of a
  node takes ``cuda:k``, whatever ``ranks_per_trial`` and however the groups fall on the nodes;
- a launcher that binds each rank to its own GPU (``jobs/gpu_bind.sh``, ``srun --gpu-bind``): each
  rank sees one GPU, its own, and takes ``cuda:0``.

More GPU ranks on a node than GPUs they can see is refused in one line (:class:`ConfigError`):
two ranks of one trial group on one GPU fail in NCCL, and two groups on one GPU halve each other's
speed and memory without saying so. Set ``device: cpu`` or start fewer ranks per node.
"""

from __future__ import annotations

import logging
import os

from hpoq.errors import ConfigError

log = logging.getLogger(__name__)

#: the CUDA device index this process was given by :func:`assign_gpus` (None: none assigned)
_ASSIGNED: int | None = None


def assigned_gpu() -> int | None:
    """The CUDA index the runtime gave this rank, or None."""
    return _ASSIGNED


def visible_gpus() -> list[str]:
    """Identities of the GPUs this process sees, in CUDA index order (UUID, CUDA_VISIBLE_DEVICES entry, index)."""
    import torch

    n = torch.cuda.device_count()
    entries = [e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()]
    ids = []
    for i in range(n):
        try:
            ids.append(f"uuid:{torch.cuda.get_device_properties(i).uuid}")
        except Exception:  # noqa: BLE001 -- no properties (a driver without them): the launcher's names
            ids.append(f"visible:{entries[i]}" if i < len(entries) else f"index:{i}")
    return ids


def plan_node(wants: list[list[str] | None], node: str = "this node") -> list[int | None]:
    """The CUDA index of each rank of one node (in node-rank order); None for ranks that want none.

    ``wants[r]``: the identities of the GPUs rank ``r`` sees (:func:`visible_gpus`), or None when it
    needs no GPU. Raises ConfigError when a rank finds every GPU it sees taken.
    """
    taken: set[str] = set()
    out: list[int | None] = []
    for ids in wants:
        if ids is None:
            out.append(None)
            continue
        free = [i for i, g in enumerate(ids) if g not in taken]
        if not free:
            n_ranks = sum(w is not None for w in wants)
            n_gpus = len({g for w in wants if w is not None for g in w})
            raise ConfigError(
                f"{node}: {n_ranks} ranks train on GPUs but they see {n_gpus} GPU(s); hpoq gives every worker "
                f"rank its own GPU: start at most {n_gpus} worker rank(s) on this node (the master needs none; "
                "srun --ntasks-per-node, or fewer ranks), or set trainer.params.device: cpu"
            )
        taken.add(ids[free[0]])
        out.append(free[0])
    return out


def assign_gpus(comm, wants_gpu: bool) -> int | None:
    """Collective over ``comm`` (every rank calls it): this rank's CUDA index, or None.

    ``wants_gpu``: this rank will train on CUDA. Ranks that want a GPU get their own one on their
    node (module docstring) and make it the current CUDA device. Every rank raises the same
    ConfigError when some node has more GPU ranks than GPUs.
    """
    global _ASSIGNED
    from mpi4py import MPI

    ids = visible_gpus() if wants_gpu else None
    if wants_gpu and not ids:
        ids = []  # wants one but sees none: refused below with the others
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        wants = node.allgather(ids)
        name = MPI.Get_processor_name()
        error, index = None, None
        try:
            index = plan_node(wants, f"node {name}")[node.Get_rank()]
        except ConfigError as exc:
            error = str(exc)
    finally:
        node.Free()
    errors = [e for e in comm.allgather(error) if e]
    if errors:
        raise ConfigError(errors[0])
    if index is not None:
        import torch

        torch.cuda.set_device(index)
        log.info("rank %d on node %s: cuda:%d (%s)", comm.Get_rank(), name, index, ids[index])
    _ASSIGNED = index
    return index


def release() -> None:
    """Forget the assignment (tests that assign twice in one process)."""
    global _ASSIGNED
    _ASSIGNED = None
