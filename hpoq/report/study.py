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
from hpoq.logsetup import add_secrets, study_secrets
from hpoq.report.fates import FATES, classify_fate
from hpoq.runtime.dirlock import DirLock
from hpoq.runtime.journal import JOURNAL_FILE, read_journal

TRIALS_FILE, BEST_FILE, CURVES_FILE = "trials.csv", "best.yaml", "curves.h5"


def as_float(value) -> float:
    """A journal number (JSON number, or "nan"/"inf"/"-inf" string) as float; NaN if unreadable."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class TrialView:
    """One trial as the journal shows it. ``curve``: values after epochs 1..len, own direction."""

    trial_id: int
    config: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)
    epochs_trained: int = 0  # epochs of finished units (a re-run unit counts again)
    units: int = 0  # finished units
    failures: int = 0  # failure records (retried or final)
    decisions: list = field(default_factory=list)
    in_flight: bool = False  # a unit was sent and has no result or failure yet

    @property
    def fate(self) -> str:
        return classify_fate(self.decisions)

    @property
    def bracket(self):
        """Hyperband bracket s from the first decision that names one (None: no brackets)."""
        for d in self.decisions:
            info = d.get("info")
            if isinstance(info, dict) and "bracket" in info:
                return info["bracket"]
        return None

    def value_at(self, epoch: int) -> float:
        """Observed value after ``epoch`` epochs (own direction), NaN if not trained that far."""
        if 1 <= epoch <= len(self.curve):
            return self.curve[epoch - 1]
        return math.nan


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


def _status(records: list[dict], out_dir: str | None = None) -> tuple[str, str, dict | None]:
    """Status of the latest master run (after the last header/resume record).

    Without an end record, the directory's lock says whether a master runs (:meth:`DirLock.holder`):
    the header's pid may belong to another process by now. Only where the lock cannot be asked
    (no lock file, no access) does the pid decide, on the master's host.
    """
    start = max(i for i, r in enumerate(records) if r["type"] in ("header", "resume"))
    end = next((r for r in records[start:] if r["type"] == "end"), None)
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
    launch = records[start]
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
    """Read ``out_dir`` (raises :class:`ConfigError` if it or its journal is missing or damaged)."""
    if not os.path.isdir(out_dir):
        raise ConfigError(f"report: output directory {out_dir!r} does not exist")
    path = os.path.join(out_dir, JOURNAL_FILE)
    if not os.path.isfile(path):
        raise ConfigError(f"report: {out_dir!r} has no {JOURNAL_FILE} (not a study output directory)")
    records, valid_bytes = read_journal(path)
    torn = os.path.getsize(path) - valid_bytes
    header = records[0]
    spec = header.get("study") if isinstance(header.get("study"), dict) else {}
    add_secrets(study_secrets(spec))  # the header keeps them; nothing shown from it may
    algo = spec.get("algorithm") if isinstance(spec.get("algorithm"), dict) else {}
    mode = str(header.get("mode") or "min")
    if mode not in ("min", "max"):
        raise ConfigError(f"report: journal header has mode {mode!r}; expected 'min' or 'max'")

    trials: dict[int, TrialView] = {}
    results: list = []
    failures: list = []
    costs: list = []
    unit_ranks: dict[int, int] = {}
    open_units: dict[int, int] = {}
    lost: set[int] = set()

    def trial(tid) -> TrialView:
        tid = int(tid)
        if tid not in trials:
            trials[tid] = TrialView(tid)
        return trials[tid]

    try:
        for rec in records:
            kind = rec["type"]
            if kind == "config":
                trial(rec["trial_id"]).config = dict(rec.get("config") or {})
            elif kind == "unit":
                open_units[int(rec["unit_id"])] = int(rec["trial_id"])
                unit_ranks[int(rec["unit_id"])] = len(rec.get("ranks") or [0])
                trial(rec["trial_id"])
            elif kind == "result":
                open_units.pop(int(rec["unit_id"]), None)
                t = trial(rec["trial_id"])
                start, end = int(rec["start_epoch"]), int(rec["end_epoch"])
                values = [as_float(v) for v in rec["metrics"]]
                if len(t.curve) < start:
                    t.curve.extend([math.nan] * (start - len(t.curve)))
                t.curve[start : start + len(values)] = values
                t.epochs_trained += len(values)
                t.units += 1
                results.append((t.trial_id, start, end, values))
                costs.append((start, end, as_float(rec.get("seconds", 0.0)), unit_ranks.get(int(rec["unit_id"]), 1)))
            elif kind == "failure":
                open_units.pop(int(rec["unit_id"]), None)
                trial(rec["trial_id"]).failures += 1
                failures.append(rec)
            elif kind == "decision":
                for d in rec.get("decisions") or []:
                    trial(d["trial_id"]).decisions.append(d)
            elif kind == "resume":
                lost.update(int(u) for u in rec.get("lost_units") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"report: journal {path!r} has a record without a valid {exc} field") from None

    status, detail, end = _status(records, out_dir)
    starts = [i for i, r in enumerate(records) if r["type"] in ("header", "resume")] + [len(records)]
    wall = sum(
        max(as_float(records[b - 1].get("t")) - as_float(records[a].get("t")), 0.0) for a, b in zip(starts, starts[1:])
    )
    for uid, tid in open_units.items():
        if uid not in lost and end is None:
            trials[tid].in_flight = True
    study = StudyOutput(
        out_dir=out_dir,
        header=header,
        name=str(spec.get("name") or os.path.basename(os.path.abspath(out_dir))),
        algorithm=str(algo.get("name") or "?"),
        R=_int_or_none(algo.get("R")),
        eta=_int_or_none(algo.get("eta")),
        metric=str(header.get("metric") or "metric"),
        mode=mode,
        budget=_int_or_none(header.get("budget")),
        status=status,
        status_detail=detail,
        trials=dict(sorted(trials.items())),
        results=results,
        end=end,
        resumes=sum(1 for r in records if r["type"] == "resume"),
        records=len(records),
        torn_bytes=torn,
        files={},
        failures=failures,
        costs=costs,
        wall_seconds=wall if math.isfinite(wall) else 0.0,
        launch=records[starts[-2]],
    )
    study.files, study.best_file = _read_files(out_dir, study)
    return study
