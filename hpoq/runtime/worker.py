"""Worker ranks: group leaders take work units from the master; members follow their leader.

Every rank polls (probe + sleep, :mod:`hpoq.runtime.polling`) instead of blocking in ``recv``: a
blocked MPICH rank spins at 100% of a core, which on shared cores steals CPU from training
(docs/runtime.md#the-master-loop). Right after sending a result a leader polls faster for a short while,
because the next unit usually follows within milliseconds.

A unit fails (and the study goes on) when the trainer raises -- any exception, ``MemoryError``
and torch's out-of-memory errors included -- or returns a wrong number of values or a NaN/inf.
An ``OSError`` of a full disk or quota (``ENOSPC``, ``EDQUOT``) is reported as ``kind: disk-full``:
the master stops the study then, without counting it against the trial.
"""

from __future__ import annotations

import logging
import math
import time

from hpoq.dispatch import Dispatch
from hpoq.errors import ConfigError
from hpoq.logsetup import add_secrets, redact, study_secrets
from hpoq.runtime.gpus import assign_gpus
from hpoq.runtime.groups import (
    GTAG_DONE,
    GTAG_STOP,
    GTAG_WORK,
    TAG_READY,
    TAG_RESULT,
    TAG_SETUP,
    TAG_STOP,
    TAG_WORK,
    GroupLayout,
    split_groups,
)
from hpoq.runtime.journal import is_disk_full
from hpoq.runtime.polling import FAST_POLL_S, Backoff, wait_for
from hpoq.runtime.protocol import Outcome
from hpoq.runtime.signals import StopSignals
from hpoq.runtime.transport import MPITransport

log = logging.getLogger(__name__)

FAST_WINDOW_S = 0.05  # how long to poll fast after a result, seconds


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or getattr(exc, "kind", None) == "oom":  # a TrainerError(kind="oom")
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def run_unit(trainer, unit: Dispatch, comm) -> Outcome:
    """Train one unit on this rank; its outcome (never raises for trainer errors)."""
    start, end = unit.start_epoch, unit.end_epoch
    out = Outcome(unit.unit_id, metric=getattr(trainer, "metric", "metric"), mode=getattr(trainer, "mode", "min"))
    t0 = time.perf_counter()
    try:
        metrics = trainer.train(dict(unit.config), start, end, unit.checkpoint_dir, comm)
    except Exception as exc:  # noqa: BLE001 -- any trainer exception fails the unit, not the study
        out.seconds = time.perf_counter() - t0
        if _is_oom(exc):
            out.reason, out.kind = f"out of memory: {type(exc).__name__}: {exc}".rstrip(": "), "oom"
        elif is_disk_full(exc):  # not the configuration's fault: the master stops the study instead
            out.reason, out.kind = f"{type(exc).__name__}: {exc}", "disk-full"
        else:
            out.reason = f"{type(exc).__name__}: {exc}"
        out.reason = redact(out.reason)  # a plugin's error may echo its credentials
        return out
    out.seconds = time.perf_counter() - t0
    try:
        values = [float(v) for v in metrics]
    except (TypeError, ValueError):
        out.reason = f"trainer returned {type(metrics).__name__}, not a list of numbers"
        return out
    if len(values) != end - start:
        out.reason = f"trainer returned {len(values)} values for epochs {start + 1}..{end} ({end - start} expected)"
        return out
    for i, v in enumerate(values):
        if not math.isfinite(v):
            out.reason, out.kind, out.metrics = f"non-finite metric {v} at epoch {start + 1 + i}", "non-finite", values
            return out
    out.ok, out.metrics = True, values
    return out


def _wait_recv(transport, source: int, tags, backoff: Backoff):
    """Poll until a message with one of ``tags`` arrives from ``source``; (tag, payload)."""
    while True:
        _, tag = wait_for(lambda: transport.probe(source=source), backoff)
        payload = transport.recv(source, tag)
        if tag in tags:
            return tag, payload
        log.warning("rank %d: unexpected message tag %d from %d ignored", transport.rank, tag, source)


def leader_loop(world, group, trainer, backoff: Backoff) -> int:
    """A group leader: take units from the master, hand them to the members, report the outcome."""
    members = group.size
    while True:
        tag, msg = _wait_recv(world, 0, (TAG_WORK, TAG_STOP), backoff)
        if tag == TAG_STOP:
            for m in range(1, members):
                group.send(None, m, GTAG_STOP)
            return int((msg or {}).get("code", 0))
        for m in range(1, members):
            group.send(msg, m, GTAG_WORK)
        outcome = run_unit(trainer, Dispatch.from_message(msg), group.comm)
        member_backoff = Backoff(FAST_POLL_S)
        for m in range(1, members):
            _, part = _wait_recv(group, m, (GTAG_DONE,), member_backoff)
            if outcome.ok and not part["ok"]:
                outcome.ok, outcome.kind = False, part["kind"]
                outcome.reason = f"rank {m} of the group: {part['reason']}"
        world.send(outcome.to_message(), 0, TAG_RESULT)
        backoff.busy()


def member_loop(group, trainer, backoff: Backoff) -> int:
    """A group member: run the leader's units on its share of the group."""
    while True:
        tag, msg = _wait_recv(group, 0, (GTAG_WORK, GTAG_STOP), backoff)
        if tag == GTAG_STOP:
            return 0
        part = run_unit(trainer, Dispatch.from_message(msg), group.comm)
        group.send({"ok": part.ok, "reason": part.reason, "kind": part.kind}, 0, GTAG_DONE)
        backoff.busy()


def worker_main(world) -> int:
    """Everything a non-zero rank does: set up, build the trainer, serve units, exit with the master's code."""
    from hpoq.trainers import make_trainer

    signals = StopSignals(role="worker").install()  # the master decides; a signal must not kill a worker
    world_comm, world = world, MPITransport(world)
    try:
        _, setup = _wait_recv(world, 0, (TAG_SETUP,), Backoff(0.01))
        if not setup.get("ok"):
            return int(setup.get("code", 2))  # rank 0 has printed why
        add_secrets(study_secrets(setup.get("trainer")))  # a plugin's api_key: masked in what this rank writes
        poll = Backoff(float(setup["poll_interval"]), FAST_POLL_S, FAST_WINDOW_S)
        layout = GroupLayout(world.size, int(setup["ranks_per_trial"]))
        gcomm = split_groups(world_comm, layout)
        trainer, ready, wants_gpu = None, {"ok": True}, False
        if gcomm is not None:
            try:
                trainer = make_trainer(setup["trainer"]["name"], setup["trainer"]["params"])
                ready.update(metric=getattr(trainer, "metric", ""), mode=getattr(trainer, "mode", "min"))
                wants_gpu = bool(getattr(trainer, "wants_gpu", lambda: False)())
            except Exception as exc:  # noqa: BLE001 -- reported to the master, which stops the study cleanly
                ready = {
                    "ok": False,
                    "error": f"rank {world.rank}: cannot build trainer {setup['trainer']['name']!r}: {exc}",
                }
        try:  # collective over the world, the master included: one GPU per worker rank of a node
            assign_gpus(world_comm, wants_gpu)
        except ConfigError as exc:
            if ready.get("ok"):
                ready = {"ok": False, "error": str(exc)}
        world.send(ready, 0, TAG_READY)
        if gcomm is None:  # the master, or a rank left over by the group split: wait for the end
            _, msg = _wait_recv(world, 0, (TAG_STOP,), Backoff(max(poll.interval, 0.1)))
            return int((msg or {}).get("code", 0))
        group = MPITransport(gcomm)
        if group.rank == 0:
            return leader_loop(world, group, trainer, poll)
        return member_loop(group, trainer, poll)
    finally:
        signals.restore()
