"""The master rank: owns the scheduler (and its predictor), dispatches work units, journals everything.

Loop (method.md 3.8, "poll, never block"; docs/platform.md 2.3)::

    while the study runs:
        while Iprobe(any leader):   receive a result -> journal -> scheduler.on_result -> decisions
        hand every free trial group a unit (retries and lost units first, then scheduler.suggest())
        fsync the journal before sending; sleep(poll_interval) if nothing happened

The scheduler is asked for work only right after an event (start, a result, a final failure),
never on an idle tick: every call it sees is in the journal, so ``--resume`` can replay them.
Failures: a unit that fails is retried from the same checkpoint while its configuration has failed
at most ``max_retries`` times (default 1, over all its units); the next failure is final and is
reported with ``on_failure`` (the trial is FAILED, never retried again). An exception
from ``on_result`` (e.g. a predictor fit inside it) is journaled (``scheduler_error``) and fails
that unit instead of killing the study; an :class:`HpoqError` (a setting that cannot work, e.g. a
QPU sampler without a token and without fallback) or an exception from ``suggest``/``on_failure``
ends the study cleanly: ``end`` record with ``status: error``, workers stopped, exit code 2.
Checkpoints: ``OUTDIR/checkpoints/trial-NNNNN`` per trial, deleted when the trial is pruned
(STOP), failed, or done (DONE) unless it is the best trial so far; paused trials keep theirs.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections import deque

from hpoq.errors import HpoqError
from hpoq.runtime.book import DONE as DONE_STATUS, FAILED as FAILED_STATUS, PRUNED, TrialBook
from hpoq.runtime.groups import TAG_RESULT, TAG_STOP, TAG_WORK, GroupLayout
from hpoq.runtime.resume import minimized, queue_entry
from hpoq.schedulers.base import DONE, FAILED, STOP

log = logging.getLogger(__name__)

_TERMINAL = (DONE_STATUS, PRUNED, FAILED_STATUS)  # trial states whose checkpoint is no longer needed


class Master:
    def __init__(self, comm, layout: GroupLayout, scheduler, journal, book: TrialBook, *, out_dir: str,
                 poll_interval: float, max_retries: int, mode: str, signals, progress=None, queue=None,
                 known_trials=None):
        self.comm = comm
        self.layout = layout
        self.scheduler = scheduler
        # predict helper's hook: a scheduler that fits models (default) fits them on this thread, never in the loop
        if hasattr(scheduler, "attach_fit_executor"):
            from concurrent.futures import ThreadPoolExecutor
            scheduler.attach_fit_executor(ThreadPoolExecutor(max_workers=1, thread_name_prefix="hpoq-fit"))
        self.journal = journal
        self.book = book
        self.out_dir = out_dir
        self.ckpt_root = os.path.join(out_dir, "checkpoints")
        self.poll = float(poll_interval)
        self.max_retries = int(max_retries)
        self.mode = mode
        self.signals = signals
        self.progress = progress
        self.queue: deque = deque(queue or [])      # retries and lost units, run before suggest()
        self.idle: deque = deque(range(layout.n_groups))
        self.inflight: dict[int, tuple[int, dict]] = {}   # unit_id -> (group, unit message)
        self.trials_seen: set[int] = set(known_trials or ())
        self.to_delete: set[int] = set()                  # trials whose checkpoint goes when idle
        self.best_trial: int | None = None
        self.stopping = False
        self.status = "finished"
        self.master_seconds = 0.0   # CPU time of the master in its loop (benchmark: overhead per unit)
        self._outbox: list = []     # (leader rank, unit) to send once the journal is synced
        self._drops: list = []      # start-of-unit checkpoint copies to delete once the journal is synced

    # -- journal helpers ------------------------------------------------------------------------
    def record(self, rtype: str, **fields) -> dict:
        rec = self.journal.write(rtype, **fields)
        self.book.apply(rec)
        return rec

    def checkpoint_dir(self, trial_id: int) -> str:
        return os.path.join(self.ckpt_root, f"trial-{trial_id:05d}")

    # -- dispatch -------------------------------------------------------------------------------
    def _send(self, entry: dict, source: str) -> None:
        group = self.idle.popleft()
        tid = int(entry["trial_id"])
        if tid not in self.trials_seen:
            self.trials_seen.add(tid)
            self.record("config", trial_id=tid, config=entry["config"])
        if source == "suggest":
            self._keep_start_checkpoint(tid, int(entry["start_epoch"]))
        else:  # a retry or a unit lost in a crash: the trial directory may hold a later or half-written state
            self._restore_start_checkpoint(tid, int(entry["start_epoch"]))
        uid = self.book.next_unit_id
        unit = {"unit_id": uid, "trial_id": tid, "config": entry["config"], "start_epoch": int(entry["start_epoch"]),
                "end_epoch": int(entry["end_epoch"]), "attempt": int(entry.get("attempt", 0)),
                "checkpoint_dir": self.checkpoint_dir(tid)}
        self.record("unit", unit_id=uid, trial_id=tid, start_epoch=unit["start_epoch"], end_epoch=unit["end_epoch"],
                    group=group, ranks=self.layout.ranks(group), attempt=unit["attempt"], source=source,
                    checkpoint_dir=unit["checkpoint_dir"])
        self.inflight[uid] = (group, unit)
        self._outbox.append((self.layout.leader(group), unit))

    def dispatch(self) -> None:
        """Give every free group a unit; call suggest() only while it yields units."""
        while self.idle and not self.stopping:
            if self.queue:
                entry = self.queue.popleft()
                self._send(entry, entry.get("source", "retry"))
                continue
            if self.scheduler.finished:
                return
            try:
                unit = self._call("suggest", self.scheduler.suggest)
            except _SchedulerError as err:
                raise HpoqError(f"the scheduler cannot continue: {err}") from None
            if unit is None:
                self.record("idle")
                return
            self._send({"trial_id": unit.trial_id, "config": unit.config, "start_epoch": unit.start_epoch,
                        "end_epoch": unit.end_epoch, "attempt": 0}, "suggest")

    def _sync(self) -> None:
        self.journal.sync()
        for path in self._drops:
            shutil.rmtree(path, ignore_errors=True)
        self._drops.clear()

    def _flush_outbox(self) -> None:
        self._sync()  # the record of every unit is on disk before the unit starts
        for dest, unit in self._outbox:
            self.comm.send(unit, dest=dest, tag=TAG_WORK)
        self._outbox.clear()

    def _call(self, name: str, fn, *args):
        try:
            return fn(*args)
        except HpoqError:
            raise
        except Exception as exc:  # noqa: BLE001 -- logged; fatal only when the scheduler cannot go on
            self.record("scheduler_error", call=name, error=f"{type(exc).__name__}: {exc}")
            log.error("scheduler %s() raised %s: %s", name, type(exc).__name__, exc)
            raise _SchedulerError(name, exc) from exc

    # -- events -------------------------------------------------------------------------------
    def on_message(self, msg: dict) -> None:
        uid = int(msg["unit_id"])
        if uid not in self.inflight:  # cannot happen with the protocol; never crash the study on it
            log.error("result for unit %d, which is not in flight, ignored", uid)
            return
        group, unit = self.inflight.pop(uid)
        self.idle.append(group)
        tid = unit["trial_id"]
        mode = msg.get("mode") or self.mode
        if msg.get("ok"):
            self.record("result", unit_id=uid, trial_id=tid, start_epoch=unit["start_epoch"], end_epoch=unit["end_epoch"],
                        metrics=msg["metrics"], mode=mode, seconds=round(float(msg.get("seconds", 0.0)), 6), group=group)
            self._drop_start_checkpoint(tid, unit["start_epoch"])
            try:
                decisions = self._call("on_result", self.scheduler.on_result, tid, minimized(msg["metrics"], mode))
            except _SchedulerError as err:
                self._fail(uid, unit, f"scheduler error in on_result: {err}", "scheduler", final=True)
                return
            self._decided(uid, decisions)
        else:
            # a configuration is retried while its failures (over all its units) stay within max_retries
            info = self.book.trials.get(tid)
            final = (info.failures if info is not None else 0) >= self.max_retries
            self._fail(uid, unit, str(msg.get("reason", "unknown failure")), msg.get("kind", "trainer"), final=final)

    def _fail(self, uid: int, unit: dict, reason: str, kind: str, final: bool) -> None:
        tid = unit["trial_id"]
        self.record("failure", unit_id=uid, trial_id=tid, reason=reason, attempt=int(unit["attempt"]), final=final,
                    kind=kind)
        log.warning("trial %d epochs %d..%d failed (attempt %d%s): %s", tid, unit["start_epoch"] + 1, unit["end_epoch"],
                    unit["attempt"] + 1, "" if final else ", will retry", reason)
        if not final:
            self.queue.append(queue_entry(unit, "retry", int(unit["attempt"]) + 1) | {"config": unit["config"]})
            return
        self._drop_start_checkpoint(tid, unit["start_epoch"])
        try:
            decisions = self._call("on_failure", self.scheduler.on_failure, tid, reason)
        except _SchedulerError as err:
            raise HpoqError(f"the scheduler cannot continue: on_failure raised {err}") from None
        self._decided(uid, decisions)

    def _decided(self, uid: int, decisions) -> None:
        if not decisions:
            return
        self.record("decision", unit_id=uid, decisions=[d.to_dict() for d in decisions])
        for d in decisions:
            if d.action in (STOP, FAILED, DONE):
                self.to_delete.add(int(d.trial_id))
        self._collect_checkpoints()

    def _collect_checkpoints(self) -> None:
        best = self.scheduler.best()
        best_tid = None if not best else int(best["trial_id"])
        if best_tid != self.best_trial and self.best_trial is not None:
            self.to_delete.add(self.best_trial)  # the previous best lost its place
        self.best_trial = best_tid
        busy = {u["trial_id"] for _, u in self.inflight.values()} | {int(e["trial_id"]) for e in self.queue}
        for tid in sorted(self.to_delete):
            info = self.book.trials.get(tid)
            if info is None or info.status not in _TERMINAL:
                self.to_delete.discard(tid)  # paused or promoted again: it still needs its checkpoint
                continue
            if tid in busy or tid == best_tid:
                continue
            self._delete_trial_checkpoints(tid)
            self.to_delete.discard(tid)

    # -- checkpoint safety --------------------------------------------------------------------
    # A unit overwrites its trial's checkpoint at start_epoch with the one at end_epoch. If the
    # unit must run again (a retry, or re-run after the master crashed after the trainer had
    # saved but before the result was journaled), it needs the state at start_epoch: the master
    # keeps it as hard links (no data copied; trainers replace checkpoint files atomically, see
    # Trainer.train) in trial-NNNNN.at-EEEEE until the unit's result is in the journal.
    def _start_copy(self, tid: int, start: int) -> str:
        return f"{self.checkpoint_dir(tid)}.at-{start:05d}"

    def _keep_start_checkpoint(self, tid: int, start: int) -> None:
        src = self.checkpoint_dir(tid)
        if start > 0 and os.path.isdir(src):
            dst = self._start_copy(tid, start)
            shutil.rmtree(dst, ignore_errors=True)
            _link_tree(src, dst)

    def _restore_start_checkpoint(self, tid: int, start: int) -> None:
        src, copy = self.checkpoint_dir(tid), self._start_copy(tid, start)
        if start > 0 and not os.path.isdir(copy):
            return  # nothing kept (an older journal, or no checkpoint): let the trainer decide
        shutil.rmtree(src, ignore_errors=True)
        if start > 0:
            _link_tree(copy, src)

    def _drop_start_checkpoint(self, tid: int, start: int) -> None:
        if start > 0:  # only once the result is on disk (see _flush_outbox): a crash before that re-runs the unit
            self._drops.append(self._start_copy(tid, start))

    def _delete_trial_checkpoints(self, tid: int) -> None:
        path = self.checkpoint_dir(tid)
        if os.path.isdir(self.ckpt_root):
            prefix = os.path.basename(path) + ".at-"
            for name in os.listdir(self.ckpt_root):
                if name.startswith(prefix):
                    shutil.rmtree(os.path.join(self.ckpt_root, name), ignore_errors=True)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            self.record("checkpoint_deleted", trial_id=tid, path=path)

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> str:
        """Run until the scheduler finishes or a stop signal; returns the end status."""
        from mpi4py import MPI

        status = MPI.Status()
        cpu0 = time.process_time()
        try:
            self.dispatch()
            self._flush_outbox()
            while True:
                handled = False
                while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_RESULT, status=status):
                    msg = self.comm.recv(source=status.Get_source(), tag=TAG_RESULT)
                    self.on_message(msg)
                    handled = True
                if self.signals.requested and not self.stopping:
                    self.stopping = True
                    self.status = "interrupted"
                    self.record("stop", signal=self.signals.last)
                if self.signals.count >= 2 and self.inflight:
                    log.warning("second stop signal: not waiting for %d running unit(s)", len(self.inflight))
                    break
                if handled:
                    self.dispatch()
                self._flush_outbox()
                if self.progress is not None:
                    self.progress.update(self)
                if not self.inflight:
                    if self.stopping or (self.scheduler.finished and not self.queue):
                        break
                    if not handled:
                        self.dispatch()
                        if not self._outbox:
                            raise HpoqError(f"scheduler {self.scheduler.name!r} stalled: not finished, nothing in flight, "
                                            "and suggest() gives no work")
                        self._flush_outbox()
                        continue
                if not handled:
                    self.master_seconds += time.process_time() - cpu0
                    time.sleep(self.poll)
                    cpu0 = time.process_time()
        finally:
            self.master_seconds += time.process_time() - cpu0
            self._sync()
        if self.stopping and not self.inflight:
            state = self.scheduler.state_dict()
            self.record("snapshot", state=state, queue=list(self.queue))
        elif self.status == "finished":
            self._final_cleanup()
        return self.status

    def _final_cleanup(self) -> None:
        """The search is over: no trial can be promoted, so only the best trial keeps its checkpoint."""
        best = self.scheduler.best()
        keep = None if not best else self.checkpoint_dir(int(best["trial_id"]))
        if not os.path.isdir(self.ckpt_root):
            return
        for name in sorted(os.listdir(self.ckpt_root)):
            path = os.path.join(self.ckpt_root, name)
            if path != keep and name.startswith("trial-") and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
                if ".at-" not in name:
                    self.record("checkpoint_deleted", trial_id=int(name[len("trial-"):]), path=path)

    def stop_workers(self, code: int = 0) -> None:
        """Group leaders (which tell their members) and the idle ranks get the stop message."""
        for rank in [self.layout.leader(g) for g in range(self.layout.n_groups)] + self.layout.idle_ranks():
            self.comm.send({"code": code}, dest=rank, tag=TAG_STOP)


class _SchedulerError(Exception):
    def __init__(self, call: str, exc: BaseException):
        super().__init__(f"{call}: {type(exc).__name__}: {exc}")
        self.call = call
        self.exc = exc


def _link_tree(src: str, dst: str) -> None:
    """Copy a directory tree as hard links (a plain copy where links are impossible)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, symlinks=True)
