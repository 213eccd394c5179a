"""The master rank: owns the scheduler (and its predictor), dispatches work units, journals everything.

Loop (docs/algorithms.md#wall-clock, "poll, never block"; docs/runtime.md#the-master-loop); all messages go through a
transport (:mod:`hpoq.runtime.transport`), MPI in a job, a fake one in in-process tests::

    while the study runs:
        while probe(any leader):   receive a result -> journal -> scheduler.on_result -> decisions
        hand every free trial group a unit (retries and lost units first, then scheduler.suggest())
        fsync the journal before sending; sleep(poll_interval) if nothing happened

The scheduler is asked for work only right after an event (start, a result, a final failure),
never on an idle tick: every call it sees is in the journal, so ``--resume`` can replay them.
Failures: a unit that fails is retried from the same checkpoint while its configuration has failed
at most ``max_retries`` times (default 1, over all its units); the next failure is final and is
reported with ``on_failure`` (the trial is FAILED, never retried again). An exception
from ``on_result`` (e.g. a predictor fit inside it) is journaled (``scheduler_error``) and fails
that unit instead of killing the study; an :class:`ConfigError` (a setting that cannot work, e.g. a
QPU sampler without a token and without fallback) ends the study cleanly: ``end`` record with
``status: error``, workers stopped, exit code 2; an :class:`~hpoq.errors.InternalError` or any other
exception from ``suggest``/``on_failure`` (a bug in the scheduler) is journaled the same way and then
raised with its traceback (exit 1).
Checkpoints (:mod:`hpoq.runtime.checkpoints`): ``OUTDIR/checkpoints/trial-NNNNN`` per trial, deleted
when the trial is pruned (STOP), failed, or done (DONE) unless it is the best trial so far; paused
trials keep theirs.

Faults the master outlives:

* **Timeouts** (``unit_timeout``): a unit without a result after that many seconds is a failed
  attempt (``kind: timeout``). An MPI rank cannot be interrupted, so its group is retired (it
  rejoins if a late result comes) and the unit's retry waits for the next start of the job
  (never on another group while the hung one may still write the trial's checkpoint). When no
  work is left that this job can do, the master stops; :meth:`Master.hung_ranks_reason` tells the
  caller to journal why and abort the MPI job, since the hung ranks would never exit.
* **Units lost in a crash** (``lost``, passed in by the resume): a unit in flight when the job
  died (a rank's segfault, OOM kill or ``os._exit``; or the master killed) is journaled as a failed
  attempt (``kind: lost``) and retried *isolated*: alone, with no other unit in flight, so that a
  unit which kills its rank takes no other trial's attempt with it the next time.
* **A full disk**: the journal frees its space reserve, the master stops as for SIGTERM (a
  trainer's ``ENOSPC`` is not counted against its trial); if even that cannot be written the
  journal is left at its last complete record and :class:`JournalDead` ends the run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from hpoq.dispatch import Dispatch, Dispatcher
from hpoq.errors import DeadlockError
from hpoq.journal import records
from hpoq.journal.state import StudyState
from hpoq.runtime.checkpoints import Checkpoints
from hpoq.runtime.groups import TAG_RESULT, TAG_STOP, TAG_WORK, GroupLayout
from hpoq.runtime.journal import JournalWriteError, is_disk_full
from hpoq.runtime.polling import Backoff
from hpoq.runtime.protocol import Outcome
from hpoq.runtime.resume import LOST_REASON
from hpoq.schedulers.base import DONE, FAILED, STOP

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """The master loop's settings: the study directory, the poll interval (seconds), the trainer's metric
    direction (``min``/``max``) and the seconds a unit may run (None: no limit)."""

    out_dir: str
    poll_interval: float
    mode: str = "min"
    unit_timeout: float | None = None


class Master:
    """Rank 0's loop around a :class:`~hpoq.dispatch.Dispatcher`: messages, journal, checkpoints, timeouts,
    signals, a full disk (module docstring). ``lost``: units of a job that died, failed before any dispatch."""

    def __init__(
        self,
        transport,
        layout: GroupLayout,
        dispatcher: Dispatcher,
        journal,
        state: StudyState,
        settings: LoopSettings,
        *,
        signals,
        progress=None,
        lost=(),
    ):
        self.transport = transport  # hpoq.runtime.transport: MPI, or a fake one in tests
        self.layout = layout
        self.dispatcher = dispatcher
        self.scheduler = dispatcher.scheduler
        # a scheduler that fits models in the background fits them on this thread, never in the loop
        self.fit_pool: TimedExecutor | None = None
        if self.scheduler.background_fits:
            from concurrent.futures import ThreadPoolExecutor

            self.fit_pool = TimedExecutor(ThreadPoolExecutor(max_workers=1, thread_name_prefix="hpoq-fit"))
            self.scheduler.attach_fit_executor(self.fit_pool)
        self.journal = journal
        self.state = state  # the study as the journal tells it (the trials' curves, statuses, failures)
        self.out_dir, self.mode = settings.out_dir, settings.mode
        self.ckpt = Checkpoints(settings.out_dir)
        self.backoff = Backoff(float(settings.poll_interval))  # the master polls at a constant interval
        self.signals = signals
        self.progress = progress
        self.started: dict[int, float] = {}  # unit_id -> monotonic time it was sent
        self.unit_timeout = None if settings.unit_timeout is None else float(settings.unit_timeout)
        self.hung: dict[int, int] = {}  # timed-out unit_id -> its (retired) group
        self.lost: list[Dispatch] = list(lost)  # units lost in a crash, failed at start
        self.stop_reason: str | None = None  # why the master stopped without a signal
        self.abort_reason: str | None = None  # why the MPI job must be aborted (hung ranks)
        self.stopping, self.status = False, "finished"
        # benchmarks (end record): CPU time of the master's own thread in its loop (overhead per unit; the
        # fit thread's CPU is apart, in fit_stats), and the longest pass of the loop (wall clock, sleep
        # excluded): the longest a result that arrived or a group that returned one waited for the master
        self.master_seconds = 0.0
        self.max_pass_seconds = 0.0
        self._outbox: list[tuple[int, Dispatch]] = []  # (leader rank, unit) to send once the journal is synced
        self._gc_due = False  # decisions may have freed checkpoints since the last collection

    # -- journal --------------------------------------------------------------------------------
    def record(self, record: records.Record) -> None:
        self.journal.append(record)
        self.state.apply(record)

    def _journal_events(self) -> list[records.Record]:
        """Journal what the dispatcher did since the last call; decisions free checkpoints."""
        events = self.dispatcher.drain()
        for event in events:
            self.record(event)
            if isinstance(event, records.SchedulerError):
                log.error("scheduler %s() raised %s", event.call, event.error)
            elif isinstance(event, records.Decisions):
                self.ckpt.decided(d.trial_id for d in event.decisions if d.action in (STOP, FAILED, DONE))
                self._gc_due = True
        return events

    # -- dispatch -------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Give every free group a unit; the scheduler is asked only while it yields units."""
        while not self.stopping:
            try:
                unit = self.dispatcher.next_unit()
            finally:
                self._journal_events()
            if unit is None or not self._prepare_start(unit):
                return
            self.dispatcher.start(unit, checkpoint_dir=self.ckpt.trial_dir(unit.trial_id))
            self._journal_events()
            self._outbox.append((self.layout.leader(unit.group), unit))

    def _prepare_start(self, unit: Dispatch) -> bool:
        """Keep (a new unit) or put back (a retry, a re-run) the trial's start checkpoint; False (the unit
        goes back to the queue, the master stops) when the disk is full."""
        try:
            self.ckpt.prepare_start(unit.trial_id, unit.start_epoch, new=unit.source == "suggest")
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.dispatcher.put_back(unit)
            self.disk_full(f"copying the start checkpoint of trial {unit.trial_id}: {exc.strerror}")
            return False
        return True

    def _sync(self) -> None:
        try:
            self.journal.sync()
        except JournalWriteError as exc:
            self._journal_failed(exc)
        self.ckpt.flush()

    def _journal_failed(self, exc: JournalWriteError) -> None:
        """Free the space reserve and write the batch again, then stop as for SIGTERM; else the journal is dead."""
        if not self.journal.release_reserve():
            self.journal.drop_pending()
            raise JournalDead(str(exc)) from exc
        self._sync_or_die()
        for _, unit in reversed(self._outbox):  # journaled but not sent: back to the queue (a re-run)
            self.started.pop(unit.unit_id, None)
            self.dispatcher.put_back(unit)
        self._outbox.clear()
        self.disk_full(exc.strerror or str(exc))
        self._sync_or_die()  # the stop record, in the reserve's space

    def _sync_or_die(self) -> None:
        try:
            self.journal.sync()
        except JournalWriteError as again:
            self.journal.drop_pending()
            raise JournalDead(str(again)) from again

    def disk_full(self, what: str) -> None:
        """Stop handing out work, as SIGTERM does; the directory stays resumable once space is freed."""
        if self.stop_reason is None:
            self.stop_reason = f"disk full ({what})"
            log.error("the disk of %s is full (%s): stopping after the running work units", self.out_dir, what)
            if not self.stopping:
                self.stopping, self.status = True, "interrupted"
                self.record(records.Stop(signal=None, reason=self.stop_reason))

    def _flush_outbox(self) -> None:
        if self._gc_due:  # once per pass of the loop: the answer (scheduler.best()) is not asked per result
            self._gc_due = False
            self._collect_checkpoints()
        self._sync()  # the record of every unit is on disk before the unit starts
        now = time.monotonic()
        for dest, unit in self._outbox:
            self.transport.send(unit.to_message(), dest, TAG_WORK)
            self.started[unit.unit_id] = now
        self._outbox.clear()

    # -- events -------------------------------------------------------------------------------
    def on_message(self, msg: dict) -> None:
        outcome = Outcome.from_message(msg, self.mode)
        uid = outcome.unit_id
        if uid in self.hung:  # a timed-out unit ended after all: its group can work again, its outcome is void
            group = self.hung.pop(uid)
            self.dispatcher.free_worker(group)
            log.warning(
                "unit %d ended %s after its timeout; outcome ignored, group %d works again",
                uid,
                "ok" if outcome.ok else "with a failure",
                group,
            )
            return
        if uid not in self.dispatcher.inflight:  # cannot happen with the protocol; never crash the study on it
            log.error("result for unit %d, which is not in flight, ignored", uid)
            return
        self.started.pop(uid, None)
        unit = self.dispatcher.release(uid)
        if outcome.kind == "disk-full":
            self._fail(unit, "disk-full", outcome.reason)
            self.disk_full(f"trial {unit.trial_id}'s trainer: {outcome.reason}")
            return
        if not outcome.ok:
            self._fail(unit, outcome.kind, outcome.reason)
            return
        self.ckpt.drop_start(unit.trial_id, unit.start_epoch)
        try:
            self.dispatcher.result(unit, outcome.result_record(unit))
        finally:
            self._journal_events()

    def models_ready(self) -> bool:
        """Journal (``model``) and hand to ``on_model_ready`` the models whose background fit is done, so a resume
        replays them here; the loop polls them and never waits for a fit. True when a model was reported."""
        if not self.scheduler.background_fits or self.stopping:
            return False
        try:
            self.dispatcher.poll_models()
        finally:
            events = self._journal_events()
        return any(isinstance(e, records.Model) for e in events)

    def _fail(self, unit: Dispatch, kind: str, reason: str) -> None:
        """A failed attempt: the dispatcher retries it or, past ``max_retries``, reports it to the scheduler."""
        try:
            self.dispatcher.fail(unit, kind, reason)
        finally:
            events = self._journal_events()
        final = any(isinstance(e, records.Failure) and e.final for e in events)
        log.warning(
            "trial %d epochs %d..%d failed (attempt %d%s): %s",
            unit.trial_id,
            unit.start_epoch + 1,
            unit.end_epoch,
            unit.attempt + 1,
            "" if final else ", will retry",
            reason,
        )
        if final:
            self.ckpt.drop_start(unit.trial_id, unit.start_epoch)

    def check_timeouts(self) -> bool:
        """Fail every unit running longer than ``unit_timeout``; True if one did."""
        if self.unit_timeout is None:
            return False
        now = time.monotonic()
        inflight = self.dispatcher.inflight
        late = [uid for uid, t0 in self.started.items() if now - t0 > self.unit_timeout and uid in inflight]
        for uid in late:
            self.started.pop(uid, None)
            unit = self.dispatcher.release(uid, free=False)  # the group stays retired: its rank is busy
            self.hung[uid] = unit.group
            reason = (
                f"timeout: no result after {self.unit_timeout:g} s (unit_timeout); rank(s) "
                f"{self.layout.ranks(unit.group)} still busy"
            )
            self._fail(unit, "timeout", reason)
        return bool(late)

    def fail_lost_units(self) -> None:
        """Units in flight when the previous job died count as failed attempts (journaled before any dispatch)."""
        lost, self.lost = self.lost, []
        for unit in reversed(lost):  # each retry goes to the head of the queue: this keeps their order
            self._fail(unit, "lost", LOST_REASON)

    def _collect_checkpoints(self) -> None:
        best = self.scheduler.best()
        busy = self.dispatcher.busy_trials()
        status_of = lambda tid: getattr(self.state.trials.get(tid), "status", None)  # noqa: E731
        for tid, path in self.ckpt.collect(None if not best else int(best["trial_id"]), status_of, busy):
            self.record(records.CheckpointDeleted(tid, path))

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> str:
        """Run until the scheduler finishes, a stop signal, a full disk or no usable group; the end status."""
        cpu0, wall0 = time.thread_time(), time.perf_counter()  # this thread's CPU: not the fit thread's
        try:
            self.fail_lost_units()
            self.dispatch()
            self._flush_outbox()
            self._pass_ended(wall0)
            while True:
                wall0 = time.perf_counter()
                step = self._step()
                self._pass_ended(wall0)
                if step:
                    break
                if step is False:  # nothing happened: sleep instead of spinning
                    self.master_seconds += time.thread_time() - cpu0
                    self.backoff.sleep()
                    cpu0 = time.thread_time()
        finally:
            self.master_seconds += time.thread_time() - cpu0
            self._sync()
            self.ckpt.wait()
        self._finish()
        return self.status

    def _pass_ended(self, wall0: float) -> None:
        self.max_pass_seconds = max(self.max_pass_seconds, time.perf_counter() - wall0)

    def _step(self) -> bool | None:
        """One pass of the loop: True to end it, False to sleep a poll interval, None to go on at once."""
        handled = False
        while (hit := self.transport.probe(tag=TAG_RESULT)) is not None:
            self.on_message(self.transport.recv(hit[0], TAG_RESULT))
            handled = True
        handled = self.models_ready() or handled
        if self.unit_timeout is not None:
            handled = self.check_timeouts() or handled
        if self.signals.requested and not self.stopping:
            self.stopping, self.status = True, "interrupted"
            self.record(records.Stop(signal=self.signals.last))
        inflight = self.dispatcher.inflight
        if self.signals.count >= 2 and inflight:
            log.warning("second stop signal: not waiting for %d running unit(s)", len(inflight))
            self.abort_reason = (
                f"a second stop signal ({self.signals.last}) while {len(inflight)} unit(s) ran; "
                "they run again on resume"
            )
            return True
        if handled:
            self.dispatch()
        self._flush_outbox()
        if self.progress is not None:
            self.progress.update(self)
        if not inflight:
            if self.stopping or (self.scheduler.finished and not self.dispatcher.queue):
                return True
            if not handled:
                self.dispatch()
                if not self._outbox:
                    return self._nothing_to_run()
                self._flush_outbox()
                return None
        return None if handled else False

    def _nothing_to_run(self) -> bool:
        """Nothing in flight, nothing to send: stop for a restart if timeouts hold work, else the scheduler stalled."""
        held = self.dispatcher.held()
        if self.hung or held:
            why = f"{len(self.hung)} trial group(s) hold a timed-out unit" + (
                f" and {len(held)} retry(ies) of timed-out units wait for a restart" if held else ""
            )
            self.stopping, self.status, self.stop_reason = True, "interrupted", why
            self.record(records.Stop(signal=None, reason=why))
            return True
        raise DeadlockError(
            f"scheduler {self.scheduler.name!r} stalled: not finished, nothing in flight, and suggest() gives no work"
        )

    def _finish(self) -> None:
        if self._gc_due and self.status != "finished":  # what the last decisions freed (finished: all below)
            self._gc_due = False
            self._collect_checkpoints()
        # A snapshot only when the runtime holds no unit of its own: a scheduler's state_dict() puts its
        # units in flight back into its own queue, so a retry waiting here would run twice after a resume.
        # Otherwise the resume replays the journal, which knows the retries.
        if self.stopping and not self.dispatcher.inflight and not self.dispatcher.queue:
            self.record(records.Snapshot(state=self.scheduler.state_dict(), queue=[]))
        elif self.status == "finished":
            self._final_cleanup()
        self._sync()
        self.ckpt.wait()  # the checkpoints the last decisions freed are gone when the run ends

    def hung_ranks_reason(self) -> str | None:
        """Why the MPI job must be aborted, or None: ranks still run a timed-out unit, or a second signal left units."""
        if self.hung:
            groups = sorted(self.hung.values())
            return (
                f"rank(s) {[r for g in groups for r in self.layout.ranks(g)]} still run timed-out "
                f"unit(s) {sorted(self.hung)} and cannot be stopped otherwise"
            )
        return self.abort_reason if self.dispatcher.inflight else None

    def _final_cleanup(self) -> None:
        """The search is over: no trial can be promoted, so only the best trial keeps its checkpoint."""
        best = self.scheduler.best()
        for tid, path in self.ckpt.keep_only(None if not best else int(best["trial_id"])):
            self.record(records.CheckpointDeleted(tid, path))

    def stop_workers(self, code: int = 0) -> None:
        """Group leaders (which tell their members) and the idle ranks get the stop message."""
        for rank in [self.layout.leader(g) for g in range(self.layout.n_groups)] + self.layout.idle_ranks():
            self.transport.send({"code": code}, rank, TAG_STOP)


def fit_stats(pool: "TimedExecutor | None", scheduler) -> dict:
    """The model fits of a master run, for the end record: the background fits' CPU seconds on the fit thread
    and number, the wall seconds and times the loop waited for one still running when its model was needed,
    and the scheduler's own count (:attr:`~hpoq.schedulers.base.Scheduler.fits`; swift fits inline)."""
    own = {} if scheduler.fits is None else {"predictor_fits": int(scheduler.fits)}
    if pool is None:
        return {"fit_cpu_s": 0.0, "fit_jobs": 0, "fit_wait_s": 0.0, "fit_waits": 0, **own}
    return {
        "fit_cpu_s": round(pool.seconds, 6),
        "fit_jobs": pool.jobs,
        "fit_wait_s": round(pool.wait_seconds, 6),
        "fit_waits": pool.waits,
        **own,
    }


class TimedExecutor:
    """An executor's ``submit`` that times its jobs: :attr:`seconds`, the CPU time they spent on the worker
    thread, and :attr:`wait_seconds`, the wall time callers of ``result()`` waited for a job not yet done."""

    def __init__(self, executor):
        self.executor = executor
        self.seconds = 0.0  # written by the worker thread only (one thread: no lock needed)
        self.jobs = 0
        self.wait_seconds = 0.0  # written by the thread that waits (the master's)
        self.waits = 0

    def submit(self, fn, /, *args, **kwargs):
        return _TimedFuture(self.executor.submit(self._timed, fn, args, kwargs), self)

    def _timed(self, fn, args, kwargs):
        cpu0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds += time.thread_time() - cpu0
            self.jobs += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)


class _TimedFuture:
    """A future whose ``result()`` counts the time spent waiting for it; anything else is the future's."""

    def __init__(self, future, pool: TimedExecutor):
        self._future, self._pool = future, pool

    def result(self, timeout=None):
        if self._future.done():
            return self._future.result()
        t0 = time.perf_counter()
        try:
            return self._future.result(timeout)
        finally:
            self._pool.wait_seconds += time.perf_counter() - t0
            self._pool.waits += 1

    def __getattr__(self, name):
        return getattr(self._future, name)


class JournalDead(Exception):
    """The journal cannot be written even after freeing the space reserve; nothing more is recorded."""
