"""Trial groups: rank 0 is the master; ranks 1.. form groups of ``ranks_per_trial`` ranks.

Group ``g`` holds world ranks ``1 + g*k .. (g+1)*k`` (``k = ranks_per_trial``); its lowest rank
is the leader, which talks to the master. Ranks left over (``(size - 1) % k``) idle until the
study ends. The groups are fixed for the whole run: one ``COMM_WORLD.Split`` at start (a
collective over all ranks, integer colours, never ``hash()``; docs/runtime.md#testing-mpi-on-a-laptop), and every
unit of a group runs on the same sub-communicator -- the trainer builds its data-parallel world
(torch.distributed / Horovod) from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpoq.errors import ConfigError

# message tags between the master and the group leaders (COMM_WORLD), and inside a group
TAG_SETUP = 11  # master -> every rank: the study (or an error) to set up
TAG_READY = 12  # every worker rank -> master: trainer built (or its error)
TAG_WORK = 13  # master -> leader: a work unit
TAG_RESULT = 14  # leader -> master: the unit's metrics or failure
TAG_STOP = 15  # master -> every worker rank: the study is over
GTAG_WORK = 21  # leader -> members (group communicator)
GTAG_DONE = 22  # member -> leader: its part of the unit finished (ok / reason)
GTAG_STOP = 23  # leader -> members


@dataclass(frozen=True)
class GroupLayout:
    world_size: int
    ranks_per_trial: int

    def __post_init__(self):
        if self.world_size - 1 < self.ranks_per_trial:
            raise ConfigError(
                f"{self.world_size} MPI rank(s) cannot form one trial group: rank 0 is the master and "
                f"ranks_per_trial is {self.ranks_per_trial}, so at least {self.ranks_per_trial + 1} ranks are needed "
                f"(mpiexec -n {self.ranks_per_trial + 1} ...)"
            )

    @property
    def n_groups(self) -> int:
        return (self.world_size - 1) // self.ranks_per_trial

    def ranks(self, group: int) -> list[int]:
        k = self.ranks_per_trial
        return list(range(1 + group * k, 1 + (group + 1) * k))

    def leader(self, group: int) -> int:
        return 1 + group * self.ranks_per_trial

    def group_of(self, rank: int) -> int | None:
        """Group index of a world rank, or None for the master and idle ranks."""
        if rank == 0:
            return None
        g = (rank - 1) // self.ranks_per_trial
        return g if g < self.n_groups else None

    def groups(self) -> list[list[int]]:
        return [self.ranks(g) for g in range(self.n_groups)]

    def idle_ranks(self) -> list[int]:
        return list(range(1 + self.n_groups * self.ranks_per_trial, self.world_size))


def split_groups(comm, layout: GroupLayout):
    """Collective over ``comm``: the calling rank's group communicator (None for master / idle ranks)."""
    from mpi4py import MPI

    rank = comm.Get_rank()
    group = layout.group_of(rank)
    color = MPI.UNDEFINED if group is None else group
    sub = comm.Split(color, rank)
    return None if sub == MPI.COMM_NULL else sub
