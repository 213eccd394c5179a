"""Worker ranks: group leaders take work units from the master; members follow their leader.

Every rank polls (``Iprobe`` + ``sleep``) instead of blocking in ``recv``: a blocked MPICH rank
spins at 100% of a core, which on shared cores steals CPU from training (docs/platform.md 2.3).
Right after sending a result a leader polls faster for a short while, because the next unit
usually follows within milliseconds.

A unit fails (and the study goes on) when the trainer raises -- any exception, ``MemoryError``
and torch's out-of-memory errors included -- or returns a wrong number of values or a NaN/inf.
An ``OSError`` of a full disk or quota (``ENOSPC``, ``EDQUOT``) is reported as ``kind: disk-full``:
the master stops the study then, without counting it against the trial.
"""
from __future__ import annotations

import logging
import math
import time

from hpoq.runtime.groups import (GTAG_DONE, GTAG_STOP, GTAG_WORK, TAG_READY, TAG_RESULT, TAG_SETUP, TAG_STOP,
                                 TAG_WORK, GroupLayout, split_groups)
from hpoq.runtime.journal import is_disk_full
from hpoq.runtime.signals import StopSignals

log = logging.getLogger(__name__)

FAST_POLL_S = 0.0005     # sleep between polls right after a result
FAST_WINDOW_S = 0.05     # how long to poll fast


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def run_unit(trainer, unit: dict, comm) -> dict:
    """Train one unit on this rank; the outcome as a message dict (never raises for trainer errors)."""
    start, end = int(unit["start_epoch"]), int(unit["end_epoch"])
    t0 = time.perf_counter()
    out = {"unit_id": unit["unit_id"], "ok": False, "metrics": None, "reason": "", "kind": "trainer"}
    try:
        metrics = trainer.train(dict(unit["config"]), start, end, unit["checkpoint_dir"], comm)
    except Exception as exc:  # noqa: BLE001 -- any trainer exception fails the unit, not the study
        if _is_oom(exc):
            out.update(reason=f"out of memory: {type(exc).__name__}: {exc}".rstrip(": "), kind="oom")
        elif is_disk_full(exc):  # not the configuration's fault: the master stops the study instead
            out.update(reason=f"{type(exc).__name__}: {exc}", kind="disk-full")
        else:
            out.update(reason=f"{type(exc).__name__}: {exc}")
        out["seconds"] = time.perf_counter() - t0
        return out
    out["seconds"] = time.perf_counter() - t0
    try:
        values = [float(v) for v in metrics]
    except (TypeError, ValueError):
        out.update(reason=f"trainer returned {type(metrics).__name__}, not a list of numbers")
        return out
    if len(values) != end - start:
        out.update(reason=f"trainer returned {len(values)} values for epochs {start + 1}..{end} ({end - start} expected)")
        return out
    for i, v in enumerate(values):
        if not math.isfinite(v):
            out.update(reason=f"non-finite metric {v} at epoch {start + 1 + i}", kind="non-finite", metrics=values)
            return out
    out.update(ok=True, metrics=values)
    return out


class _Poller:
    def __init__(self, poll: float):
        self.poll = poll
        self.fast_until = 0.0

    def fast(self) -> None:
        self.fast_until = time.monotonic() + FAST_WINDOW_S

    def sleep(self) -> None:
        time.sleep(FAST_POLL_S if time.monotonic() < self.fast_until else self.poll)


def _wait_recv(comm, source: int, tags, poll: _Poller):
    """Poll until a message with one of ``tags`` arrives from ``source``; (tag, payload)."""
    from mpi4py import MPI

    status = MPI.Status()
    while True:
        if comm.Iprobe(source=source, tag=MPI.ANY_TAG, status=status):
            tag = status.Get_tag()
            payload = comm.recv(source=source, tag=tag)
            if tag in tags:
                return tag, payload
            log.warning("rank %d: unexpected message tag %d from %d ignored", comm.Get_rank(), tag, source)
            continue
        poll.sleep()


def leader_loop(world, gcomm, trainer, poll: _Poller) -> int:
    members = gcomm.Get_size()
    while True:
        tag, msg = _wait_recv(world, 0, (TAG_WORK, TAG_STOP), poll)
        if tag == TAG_STOP:
            for m in range(1, members):
                gcomm.send(None, dest=m, tag=GTAG_STOP)
            return int((msg or {}).get("code", 0))
        for m in range(1, members):
            gcomm.send(msg, dest=m, tag=GTAG_WORK)
        result = run_unit(trainer, msg, gcomm)
        member_poll = _Poller(FAST_POLL_S)
        for m in range(1, members):
            _, part = _wait_recv(gcomm, m, (GTAG_DONE,), member_poll)
            if result["ok"] and not part["ok"]:
                result.update(ok=False, reason=f"rank {m} of the group: {part['reason']}", kind=part["kind"])
        result["metric"], result["mode"] = getattr(trainer, "metric", "metric"), getattr(trainer, "mode", "min")
        world.send(result, dest=0, tag=TAG_RESULT)
        poll.fast()


def member_loop(gcomm, trainer, poll: _Poller) -> int:
    while True:
        tag, msg = _wait_recv(gcomm, 0, (GTAG_WORK, GTAG_STOP), poll)
        if tag == GTAG_STOP:
            return 0
        part = run_unit(trainer, msg, gcomm)
        gcomm.send({"ok": part["ok"], "reason": part["reason"], "kind": part["kind"]}, dest=0, tag=GTAG_DONE)
        poll.fast()


def worker_main(world) -> int:
    """Everything a non-zero rank does: set up, build the trainer, serve units, exit with the master's code."""
    from hpoq.trainers import make_trainer

    signals = StopSignals(role="worker").install()  # the master decides; a signal must not kill a worker
    try:
        _, setup = _wait_recv(world, 0, (TAG_SETUP,), _Poller(0.01))
        if not setup.get("ok"):
            return int(setup.get("code", 2))  # rank 0 has printed why
        poll = _Poller(float(setup["poll_interval"]))
        layout = GroupLayout(world.Get_size(), int(setup["ranks_per_trial"]))
        gcomm = split_groups(world, layout)
        trainer, ready = None, {"ok": True}
        if gcomm is not None:
            try:
                trainer = make_trainer(setup["trainer"]["name"], setup["trainer"]["params"])
                ready.update(metric=getattr(trainer, "metric", ""), mode=getattr(trainer, "mode", "min"))
            except Exception as exc:  # noqa: BLE001 -- reported to the master, which stops the study cleanly
                ready = {"ok": False, "error": f"rank {world.Get_rank()}: cannot build trainer "
                                              f"{setup['trainer']['name']!r}: {exc}"}
        world.send(ready, dest=0, tag=TAG_READY)
        if gcomm is None:  # the master, or a rank left over by the group split: wait for the end
            _, msg = _wait_recv(world, 0, (TAG_STOP,), _Poller(max(poll.poll, 0.1)))
            return int((msg or {}).get("code", 0))
        if gcomm.Get_rank() == 0:
            return leader_loop(world, gcomm, trainer, poll)
        return member_loop(gcomm, trainer, poll)
    finally:
        signals.restore()
