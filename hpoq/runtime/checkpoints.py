"""The checkpoint lifecycle of a study directory, owned by the master (rank 0).

``OUTDIR/checkpoints/trial-NNNNN`` is the trial's checkpoint, written by its trainer. A unit
overwrites the state at ``start_epoch`` with the one at ``end_epoch``. If the unit must run again
(a retry, or a re-run after the job died after the trainer saved but before the result was
journaled), it needs the state at ``start_epoch``: the master keeps it as hard links (no data
copied; trainers replace checkpoint files atomically, see ``Trainer.train``) in
``trial-NNNNN.at-EEEEE`` until the unit's result is in the journal, and puts it back before a retry.

Garbage collection is driven by the scheduler's decisions: a trial that was stopped (pruned),
failed or is done loses its checkpoint as soon as no unit of it is running or waiting, unless it is
the best trial so far; paused and promoted trials keep theirs. When the search is over, only the
best trial's checkpoint is left.

The directories go on a background thread (:class:`Remover`): a shared file system takes milliseconds per
``rmdir``, which on the master's loop would cap a study with short units at a few hundred units per second.
What is handed to it is decided on the loop, in the order above, and never needed again; :meth:`Checkpoints.wait`
(before the final clean-up and at the end of the run) lets it finish.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading

# trial states (hpoq.schedulers.base.Status, as hpoq.journal.state keeps them) whose checkpoint is no longer needed
TERMINAL = ("done", "pruned", "failed")


class Checkpoints:
    """Paths, start-of-unit copies and garbage collection of ``OUTDIR/checkpoints``."""

    def __init__(self, out_dir: str):
        self.root = os.path.join(out_dir, "checkpoints")
        self._drops: list[tuple[int, int]] = []  # (trial, start) copies to delete once the journal is synced
        self.to_delete: set[int] = set()  # trials whose checkpoint goes when nothing of them is busy
        self.best_trial: int | None = None
        self._copies: dict[int, set[int]] | None = None  # trial -> starts of its start copies (scanned once)
        self.remover = Remover()

    def _start_copies(self) -> dict[int, set[int]]:
        """Trial -> the starts of its start copies on disk: one listing of the folder (copies an earlier job
        left), then kept up to date, so that deleting a trial never lists the folder again."""
        if self._copies is None:
            self._copies = {}
            names = os.listdir(self.root) if os.path.isdir(self.root) else []
            for name in names:
                head, sep, start = name.partition(".at-")
                if sep and head.startswith("trial-") and head[6:].isdigit() and start.isdigit():
                    self._copies.setdefault(int(head[6:]), set()).add(int(start))
        return self._copies

    def trial_dir(self, trial_id: int) -> str:
        return os.path.join(self.root, f"trial-{trial_id:05d}")

    def start_copy(self, trial_id: int, start: int) -> str:
        return f"{self.trial_dir(trial_id)}.at-{start:05d}"

    # -- around one unit ------------------------------------------------------------------------
    def keep_start(self, trial_id: int, start: int) -> None:
        """Before a new unit: keep the state at ``start`` (hard links) until its result is journaled."""
        src = self.trial_dir(trial_id)
        if start > 0 and os.path.isdir(src):
            dst = self.start_copy(trial_id, start)
            shutil.rmtree(dst, ignore_errors=True)
            link_tree(src, dst)
            self._start_copies().setdefault(int(trial_id), set()).add(int(start))

    def restore_start(self, trial_id: int, start: int) -> None:
        """Before a retry or re-run: the trial directory may hold a later or half-written state."""
        src, copy = self.trial_dir(trial_id), self.start_copy(trial_id, start)
        if start > 0 and not os.path.isdir(copy):
            return  # nothing kept (an older journal, or no checkpoint): let the trainer decide
        shutil.rmtree(src, ignore_errors=True)
        if start > 0:
            link_tree(copy, src)

    def prepare_start(self, trial_id: int, start: int, new: bool) -> None:
        """Before a unit starts: keep the state at ``start`` (``new``: the scheduler's unit), or put it back (a
        retry or re-run: the trial directory may hold a later or half-written state)."""
        (self.keep_start if new else self.restore_start)(trial_id, start)

    def drop_start(self, trial_id: int, start: int) -> None:
        """The unit's outcome is final: its start copy goes once the journal says so (:meth:`flush`)."""
        if start > 0:  # a crash before the journal sync re-runs the unit, which needs the copy
            self._drops.append((int(trial_id), int(start)))

    def flush(self) -> None:
        """Call right after the journal sync: delete the start copies of journaled outcomes."""
        copies = self._start_copies() if self._drops else {}
        for trial_id, start in self._drops:
            starts = copies.get(trial_id)
            if starts is not None and start in starts:
                starts.discard(start)
                self.remover.remove(self.start_copy(trial_id, start))
        self._drops.clear()

    def wait(self) -> None:
        """Until every directory handed to the remover is gone."""
        self.remover.wait()

    # -- garbage collection -----------------------------------------------------------------------
    def decided(self, trial_ids) -> None:
        """Trials the scheduler stopped, failed or finished: candidates for deletion."""
        self.to_delete.update(int(t) for t in trial_ids)

    def collect(self, best_trial: int | None, status_of, busy: set[int]) -> list[tuple[int, str]]:
        """Delete what the decisions freed; (trial_id, path) of every trial checkpoint deleted.

        ``status_of(trial_id)`` gives the trial's status now (None if unknown); ``busy`` holds the
        trials with a unit running or waiting.
        """
        if best_trial != self.best_trial and self.best_trial is not None:
            self.to_delete.add(self.best_trial)  # the previous best lost its place
        self.best_trial = best_trial
        deleted = []
        for tid in sorted(self.to_delete):
            if status_of(tid) not in TERMINAL:
                self.to_delete.discard(tid)  # paused or promoted again: it still needs its checkpoint
                continue
            if tid in busy or tid == best_trial:
                continue
            path = self.delete_trial(tid)
            if path is not None:
                deleted.append((tid, path))
            self.to_delete.discard(tid)
        return deleted

    def delete_trial(self, trial_id: int) -> str | None:
        """Delete a trial's checkpoint and start copies (on the remover's thread); its path if a checkpoint
        was there."""
        path = self.trial_dir(trial_id)
        for start in sorted(self._start_copies().pop(int(trial_id), ())):
            self.remover.remove(self.start_copy(trial_id, start))
        if os.path.isdir(path):
            self.remover.remove(path)
            return path
        return None

    def keep_only(self, best_trial: int | None) -> list[tuple[int, str]]:
        """The search is over: only the best trial keeps its checkpoint; (trial_id, path) of those deleted."""
        self.wait()
        keep = None if best_trial is None else self.trial_dir(best_trial)
        deleted = []
        if not os.path.isdir(self.root):
            return deleted
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name)
            if path != keep and name.startswith("trial-") and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
                if ".at-" not in name:
                    deleted.append((int(name[len("trial-") :]), path))
        return deleted


class Remover:
    """Deletes directory trees on one background thread, in the order given (started on first use)."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def remove(self, path: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hpoq-remove", daemon=True)
            self._thread.start()
        self._queue.put(path)

    def _run(self) -> None:
        while True:
            path = self._queue.get()
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                self._queue.task_done()

    def wait(self) -> None:
        """Until every path given so far is deleted."""
        self._queue.join()


def link_tree(src: str, dst: str) -> None:
    """Copy a directory tree as hard links (a plain copy where links are impossible)."""

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, symlinks=True)
