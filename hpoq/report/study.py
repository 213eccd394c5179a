"""Read a study output directory into per-trial facts for the report (journal first, files second).

The journal (:mod:`hpoq.runtime.journal`) is the source of truth: configurations come from
``config`` records, curves are rebuilt from ``result`` records (metrics in the trainer's own
direction, written at ``start_epoch``), decisions from ``decision`` records. This works while
the study runs, after it was interrupted, and after the master was killed mid-write (a torn last
line is ignored by :func:`~hpoq.runtime.journal.read_journal`). ``trials.csv``, ``best.yaml`` and
``curves.h5`` are written by the master at the end of a run; when present they are read only to
say whether they agree with the journal.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field

from hpoq.errors import ConfigError
from hpoq.journal import records
from hpoq.journal.state import StudyState, TrialState, as_float
from hpoq.logsetup import add_secrets, study_secrets
from hpoq.report.fates import FATES, classify_fate
from hpoq.runtime.dirlock import DirLock
from hpoq.runtime.journal import JOURNAL_FILE, read_records

TRIALS_FILE, BEST_FILE, CURVES_FILE = "trials.csv", "best.yaml", "curves.h5"


@dataclass
class TrialView(TrialState):
    """One trial as the journal shows it (:class:`~hpoq.journal.state.TrialState`), with its fate and bracket.
    ``curve``: values after epochs 1..len, own direction."""

    @property
    def fate(self) -> str:
        return classify_fate(self.decisions)

    @property
    def bracket(self):
        """Hyperband bracket s from the first decision that names one (None: no brackets)."""
        for d in self.decisions:
            if "bracket" in d.info:
                return d.info["bracket"]
        return None


class ReportState(StudyState):
    """The journal folded for the report: :class:`TrialView` trials."""

    trial_type = TrialView


@dataclass
class StudyOutput:
    """Everything the report shows, extracted from one output directory."""

    out_dir: str
    header: dict
    name: str
    algorithm: str
    R: int | None
    eta: int | None
    metric: str
    mode: str
    budget: int | None
    status: str  # finished / interrupted / error / running / no end record
    status_detail: str
    trials: dict
    results: list  # (trial_id, start_epoch, end_epoch, [values]) in journal order
    end: dict | None
    resumes: int
    records: int
    torn_bytes: int  # bytes after the last complete record (ignored)
    files: dict  # file name -> one-line note
    best_file: dict | None = None
    failures: list = field(default_factory=list)  # failure records (retried ones too), journal order
    costs: list = field(default_factory=list)  # per finished unit: (start_epoch, end_epoch, seconds, ranks)
    wall_seconds: float = 0.0  # summed over master runs: first to last record of each
    launch: dict = field(default_factory=dict)  # the latest header or resume record (ranks, groups, pid, host)

    @property
    def sign(self) -> float:
        """+1 for mode min, -1 for max: ``sign * value`` is minimised."""
        return -1.0 if self.mode == "max" else 1.0

    @property
    def epochs_used(self) -> int:
        return sum(end - start for _, start, end, _ in self.results)

    def fate_counts(self) -> dict:
        counts = {f: 0 for f in FATES}
        for t in self.trials.values():
            counts[t.fate] += 1
        return counts

    def best_trial(self):
        """(trial, value at R) of the best trial that reached R in this journal, or None."""
        if not self.R:
            return None
        best = None
        for t in self.trials.values():
            v = t.value_at(self.R)
            if math.isfinite(v) and (
                best is None or (self.sign * v, t.trial_id) < (self.sign * best[1], best[0].trial_id)
            ):
                best = (t, v)
        return best


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _pid_alive(pid, host) -> bool | None:
    """True/False if the master ran on this host; None if it cannot be told from here."""
    if not pid or host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return None
    return True


def _status(state: StudyState, out_dir: str | None = None) -> tuple[str, str, dict | None]:
    """Status of the latest master run (after the last header/resume record).

    Without an end record, the directory's lock says whether a master runs (:meth:`DirLock.holder`):
    the header's pid may belong to another process by now. Only where the lock cannot be asked
    (no lock file, no access) does the pid decide, on the master's host.
    """
    end = None if state.end is None else state.end.to_record()
    if end is not None:
        status = str(end.get("status", "unknown"))
        stopped = f"stopped: {end['reason']}" if end.get("reason") else "stopped by a signal"
        if end.get("abort"):
            stopped += f" ({end['abort']})"
        detail = {
            "finished": "the search finished",
            "interrupted": f"{stopped}; resume with run --resume",
            "error": f"the master stopped with an error: {end.get('error', '')}",
        }.get(status, status)
        return status, detail, end
    launch = state.launches[-1].record.to_record()
    holder = DirLock.holder(out_dir) if out_dir else None
    if holder is False:
        return (
            "no end record",
            f"no master holds the directory's lock: the master (pid {launch.get('pid')} on {launch.get('host')}) "
            "was killed or crashed; resume with run --resume",
            None,
        )
    if holder is not None:
        pid = holder or launch.get("pid")
        return "running", f"a master holds the directory's lock (pid {pid}; started on {launch.get('host')})", None
    alive = _pid_alive(launch.get("pid"), launch.get("host"))
    if alive:
        return "running", f"master pid {launch.get('pid')} on {launch.get('host')} is alive", None
    if alive is False:
        return (
            "no end record",
            f"master pid {launch.get('pid')} is gone: killed or crashed; resume with run --resume",
            None,
        )
    return "no end record", f"master on host {launch.get('host')!r}: still running there, or killed", None


def _read_files(out_dir: str, study: StudyOutput) -> tuple[dict, dict | None]:
    """One-line notes on the optional output files, compared with the journal."""
    notes, best = {}, None
    path = os.path.join(out_dir, BEST_FILE)
    if os.path.isfile(path):
        import yaml

        try:
            with open(path, encoding="utf-8") as fh:
                best = yaml.safe_load(fh)
            if not isinstance(best, dict):
                raise ValueError("not a mapping")
            notes[BEST_FILE] = f"trial {best.get('trial_id')}, value {best.get('value')}"
        except (OSError, ValueError, yaml.YAMLError) as exc:
            best = None
            notes[BEST_FILE] = f"unreadable ({type(exc).__name__}); ignored"
    else:
        notes[BEST_FILE] = "missing (written when a run ends or stops)"
    path = os.path.join(out_dir, TRIALS_FILE)
    if os.path.isfile(path):
        import csv

        try:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            same = len(rows) == len(study.trials)
            notes[TRIALS_FILE] = f"{len(rows)} trials" + (
                "" if same else f" (journal: {len(study.trials)}; written earlier)"
            )
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            notes[TRIALS_FILE] = f"unreadable ({type(exc).__name__}); ignored"
    else:
        notes[TRIALS_FILE] = "missing (written when a run ends or stops)"
    path = os.path.join(out_dir, CURVES_FILE)
    if os.path.isfile(path):
        from hpoq.curves.store import read_store

        try:
            table = read_store(path)
            epochs = int(table.row_lengths().sum())
            journal_epochs = sum(len(t.curve) for t in study.trials.values())
            agree = table.n_rows == sum(1 for t in study.trials.values() if t.curve) and epochs == journal_epochs
            notes[CURVES_FILE] = f"{table.n_rows} curves, {epochs} epochs: " + (
                "agrees with the journal" if agree else f"journal has {journal_epochs} epochs (written earlier)"
            )
        except ConfigError as exc:
            notes[CURVES_FILE] = f"unreadable, curves rebuilt from the journal ({exc})"
    else:
        notes[CURVES_FILE] = "missing; curves rebuilt from the journal's result records"
    return notes, best


def load_study_output(out_dir: str) -> StudyOutput:
    """Read ``out_dir`` (raises :class:`ConfigError` if it or its journal is missing or damaged): its journal
    through the one reader (:func:`~hpoq.runtime.journal.read_records`) folded by :class:`ReportState`, then
    the output files beside it."""
    if not os.path.isdir(out_dir):
        raise ConfigError(f"report: output directory {out_dir!r} does not exist")
    path = os.path.join(out_dir, JOURNAL_FILE)
    if not os.path.isfile(path):
        raise ConfigError(f"report: {out_dir!r} has no {JOURNAL_FILE} (not a study output directory)")
    journal, valid_bytes = read_records(path)
    header = journal[0]
    spec = header.study if isinstance(header.study, dict) else {}
    add_secrets(study_secrets(spec))  # the header keeps them; nothing shown from it may
    algo = spec.get("algorithm") if isinstance(spec.get("algorithm"), dict) else {}
    if header.mode not in ("min", "max"):
        raise ConfigError(f"report: journal header has mode {header.mode!r}; expected 'min' or 'max'")
    state = ReportState.of(journal, header.mode)
    status, detail, end = _status(state, out_dir)
    if end is not None:
        for t in state.trials.values():
            t.in_flight = False  # the last master ended: nothing runs
    study = StudyOutput(
        out_dir=out_dir,
        header=header.to_record(),
        name=str(spec.get("name") or os.path.basename(os.path.abspath(out_dir))),
        algorithm=str(algo.get("name") or "?"),
        R=_int_or_none(algo.get("R")),
        eta=_int_or_none(algo.get("eta")),
        metric=str(header.metric or "metric"),
        mode=header.mode,
        budget=_int_or_none(header.budget),
        status=status,
        status_detail=detail,
        trials=dict(sorted(state.trials.items())),
        results=[(r.trial_id, r.start_epoch, r.end_epoch, [as_float(v) for v in r.metrics]) for r in state.results],
        end=end,
        resumes=sum(isinstance(launch.record, records.Resume) for launch in state.launches),
        records=state.records,
        torn_bytes=os.path.getsize(path) - valid_bytes,
        files={},
        failures=[f.to_record() for f in state.failures],
        costs=state.costs,
        wall_seconds=state.wall_seconds(),
        launch=state.launches[-1].record.to_record(),
    )
    study.files, study.best_file = _read_files(out_dir, study)
    return study
