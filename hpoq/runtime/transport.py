"""The runtime's only contact with MPI: probe, send and receive Python objects, and abort the job.

:class:`Master` and the worker loops talk to a *transport*, not to mpi4py, so that the master and
the resume can be driven in-process by a fake transport in tests (``tests/test_master_inprocess.py``)
as well as by real ranks under ``mpiexec``. A transport has ``rank``, ``size``, ``probe(source, tag)``
-> ``(source, tag)`` of a waiting message or None, ``recv(source, tag)``, ``send(obj, dest, tag)``
and ``abort(code)``. Nobody blocks in ``recv`` without a probe first: a blocked MPICH rank spins a
core (docs/runtime.md#the-master-loop); see :mod:`hpoq.runtime.polling`.
"""

from __future__ import annotations


class MPITransport:
    """A transport over an mpi4py communicator (``COMM_WORLD`` or a trial group's sub-communicator)."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.comm = comm
        self._status = MPI.Status()
        self._any_source, self._any_tag = MPI.ANY_SOURCE, MPI.ANY_TAG

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()

    def probe(self, source: int | None = None, tag: int | None = None) -> tuple[int, int] | None:
        """(source, tag) of a message waiting from ``source`` with ``tag`` (None: any), else None."""
        status = self._status
        if self.comm.Iprobe(
            source=self._any_source if source is None else source,
            tag=self._any_tag if tag is None else tag,
            status=status,
        ):
            return status.Get_source(), status.Get_tag()
        return None

    def recv(self, source: int, tag: int):
        return self.comm.recv(source=source, tag=tag)

    def send(self, obj, dest: int, tag: int) -> None:
        self.comm.send(obj, dest=dest, tag=tag)

    def abort(self, code: int) -> None:
        self.comm.Abort(code)
