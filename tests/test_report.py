"""``hpoq report``: fates per scheduler vocabulary, and reports of a real MPI study (finished, running, torn)."""

from __future__ import annotations

import base64
import collections
import csv
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import start_mpi

from hpoq.main import main
from hpoq.report import build_report
from hpoq.report.fates import (
    COMPLETED,
    FAILED,
    FATE_LABELS,
    FATES,
    PRUNED_PREDICTION,
    PRUNED_RUNG,
    STOPPED_OTHER,
    UNFINISHED,
    classify_fate,
)
from hpoq.report.study import load_study_output
from hpoq.schedulers.base import Decision

REPO = Path(__file__).resolve().parents[1]
TABLE = str(REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
R, ETA = 9, 3


def d(action, reason, epoch=1, **info):
    return Decision(0, action, epoch, reason, info)


# Decision sequences as each scheduler writes them (see the reasons in hpoq/schedulers/*.py).
VOCABULARY = {
    "hyperband completed": (
        [d("pause", "rung", bracket=1), d("continue", "promoted", next_r=9), d("done", "completed", 9)],
        COMPLETED,
    ),
    "hyperband ranked out": ([d("pause", "rung", bracket=1), d("stop", "rung", rank=3, keep=1)], PRUNED_RUNG),
    "hyperband failed": ([d("failed", "failed", 0, error="boom")], FAILED),
    "hyperband paused": ([d("pause", "rung", bracket=2)], UNFINISHED),
    "swift predicted stop": (
        [d("pause", "parked", 2), d("stop", "predicted", 2, prediction=457.8, tau=456.3, key=[3, 2])],
        PRUNED_PREDICTION,
    ),
    "swift predicted continue": (
        [
            d("pause", "parked", 2),
            d("continue", "predicted", 2, prediction=455.0),
            d("pause", "selected", 3),
            d("stop", "rung", 3),
        ],
        PRUNED_RUNG,
    ),
    "swift quota then full": (
        [d("continue", "quota", 2), d("pause", "full", 3), d("continue", "promoted", 3), d("done", "completed", 9)],
        COMPLETED,
    ),
    "asha never promoted": ([d("pause", "rung", 1, rung=0), d("stop", "rung", 1, final_rung_epoch=1)], PRUNED_RUNG),
    "asha finish": ([d("pause", "rung", 3), d("continue", "finish", 3), d("done", "completed", 9)], COMPLETED),
    "default predicted": (
        [d("pause", "rung", 3), d("stop", "predicted", 3, predicted_final=470.1, error=3.0, threshold=450.0)],
        PRUNED_PREDICTION,
    ),
    "default forecast prune": (
        [
            d("pause", "rung", 2),
            d("stop", "predicted", 2, predicted=471.0, sigma=2.0, threshold=455.0, target_epoch=9, rung_epoch=2),
        ],
        PRUNED_PREDICTION,
    ),
    "default promoted by forecast": (
        [
            d("pause", "rung", 1),
            d("continue", "predicted", 1, predicted=450.0, target_epoch=9),
            d("pause", "rung", 2),
            d("stop", "rung", 2, final_rung_epoch=2),
        ],
        PRUNED_RUNG,
    ),
    "default finalist": (
        [d("pause", "rung", 3), d("continue", "finalist", 3, predicted_final=449.0), d("done", "completed", 9)],
        COMPLETED,
    ),
    "default evidence stop": (
        [
            d("continue", "checkpoint", 1, score=460.0),
            d("pause", "evidence", 2, rule="evidence", p=0.001, bar=450.0),
            d("stop", "evidence", 2, rule="evidence", p=0.001, bar=450.0),
        ],
        PRUNED_PREDICTION,
    ),
    "default audited": (
        [d("continue", "audit", 2, rule="evidence", p=0.001), d("done", "audit", 9, value=449.0)],
        COMPLETED,
    ),
    "random completed": ([d("done", "completed", 9)], COMPLETED),
    "topk screened out": ([d("pause", "screened"), d("stop", "top-k", rank=5, K=2)], PRUNED_RUNG),
    "unknown stop reason": ([d("pause", "rung"), d("stop", "budget-exhausted")], STOPPED_OTHER),
    "unknown action": ([d("vanish", "?")], STOPPED_OTHER),
    "no decision yet": ([], UNFINISHED),
}


@pytest.mark.parametrize("case", sorted(VOCABULARY))
def test_fate_of_each_scheduler_vocabulary(case):
    decisions, fate = VOCABULARY[case]
    assert classify_fate(decisions) == fate


@pytest.mark.parametrize(
    "algorithm,params",
    [
        ("hyperband", {}),
        ("asha", {}),
        ("random", {"n": 6}),
        ("topk-1epoch", {}),
        ("default", {"protect": 0.2, "audit": 0.5}),
    ],
)
def test_fates_of_real_scheduler_decisions(algorithm, params):
    """Drive the real scheduler on the MLPF table (every 7th trial fails): no reason it uses is unknown."""
    from hpoq.curves.table import load_table
    from hpoq.schedulers import make_scheduler
    from hpoq.schedulers.sampling import TableRowSampler

    table = load_table(TABLE, "loss", "min")
    curves = table.minimized()
    scheduler = make_scheduler(algorithm, R=R, eta=ETA, sampler=TableRowSampler(table, 1), seed=1, **params)
    decisions = collections.defaultdict(list)
    failed = set()
    while not scheduler.finished:
        unit = scheduler.suggest()
        if unit is None:
            break
        if unit.trial_id % 7 == 3 and unit.start_epoch == 0:
            failed.add(unit.trial_id)
            out = scheduler.on_failure(unit.trial_id, "boom")
        else:
            out = scheduler.on_result(
                unit.trial_id, curves[unit.config["_row"], unit.start_epoch : unit.end_epoch].tolist()
            )
        for dec in out:
            decisions[dec.trial_id].append(dec)
    fates = {tid: classify_fate(ds) for tid, ds in decisions.items()}
    assert STOPPED_OTHER not in fates.values()
    assert {t for t, f in fates.items() if f == FAILED} == failed
    reached_r = {t for t, ds in decisions.items() if any(x.action == "done" for x in ds)}
    assert {t for t, f in fates.items() if f == COMPLETED} == reached_r and reached_r
    if algorithm in ("hyperband", "asha", "topk-1epoch"):  # these end with every trial decided
        assert UNFINISHED not in fates.values()
        assert PRUNED_RUNG in fates.values()


# ---------------------------------------------------------------- a real MPI study
def _study_file(tmp: Path) -> Path:
    # mode "max" on a loss: schedulers see -loss, the report must show +loss everywhere (a sign slip shows)
    doc = {
        "name": "report-test",
        "seed": 3,
        "algorithm": {"name": "swift", "R": R, "eta": ETA, "params": {"d": 3}},
        "trainer": {
            "name": "tests.plugins.flaky:FlakyTableTrainer",
            "params": {"table": TABLE, "mode": "max", "raise_mod": 7, "nan_mod": 11, "sleep": 0.04},
        },
        "space": "table",
        "poll_interval": 0.005,
        "max_retries": 1,
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Swift-Hyperband on 3 real MPI ranks with a failing trainer; a report is built while it runs."""
    tmp = tmp_path_factory.mktemp("report")
    out = tmp / "out"
    proc = start_mpi(3, "run", str(_study_file(tmp)), "--out", str(out))
    running = None
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and proc.poll() is None:
            path = out / "journal.jsonl"
            if path.exists() and path.read_text().count('"type":"result"') >= 6:
                running = load_study_output(str(out))
                break
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert running is not None, "the study ended before a running report could be taken"
    return {"out": out, "running": running, "tmp": tmp}


def _html_sections(html: str) -> set[str]:
    return set(re.findall(r"<section id='([a-z-]+)'>", html))


def _embedded_pngs(html: str) -> dict:
    found = re.findall(r'data-file="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return {name: base64.b64decode(data) for name, data in found}


def _fate_table(html: str) -> dict:
    section = re.search(r"<section id='fates'>(.*?)</section>", html, re.S).group(1)
    rows = re.findall(r'<tr><td class="l">([^<]+)</td><td>(\d+)</td>', section)
    labels = {v: k for k, v in FATE_LABELS.items()}
    return {labels[label]: int(n) for label, n in rows}


def _journal_fates(records) -> dict:
    """Fates straight from the raw journal: the last decision of each trial, as the schedulers mean it."""
    last = {}
    for rec in records:
        if rec["type"] == "config":
            last.setdefault(rec["trial_id"], None)
        if rec["type"] == "decision":
            for dec in rec["decisions"]:
                last[dec["trial_id"]] = dec
    counts = collections.Counter()
    for dec in last.values():
        if dec is None or dec["action"] in ("continue", "pause"):
            counts[UNFINISHED] += 1
        elif dec["action"] == "done":
            counts[COMPLETED] += 1
        elif dec["action"] == "failed":
            counts[FAILED] += 1
        elif dec["reason"] == "predicted":
            counts[PRUNED_PREDICTION] += 1
        else:
            assert dec["reason"] == "rung", dec
            counts[PRUNED_RUNG] += 1
    return {f: counts.get(f, 0) for f in FATES}


def test_report_of_a_finished_study(study, capsys):
    out = study["out"]
    assert main(["report", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert {
        "summary",
        "fates",
        "curves",
        "predictions",
        "best-so-far",
        "brackets",
        "compute",
        "failures",
        "trials",
        "files",
    } <= _html_sections(html)
    pngs = _embedded_pngs(html)
    assert set(pngs) == {"curves.png", "predictions.png", "best_so_far.png"}
    for name, data in pngs.items():
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
        assert (out / "report" / name).read_bytes() == data  # the files next to it are the embedded ones
    assert "finished" in html

    records = _records(out)
    expected = _journal_fates(records)
    assert _fate_table(html) == {f: n for f, n in expected.items() if n or f in FATES[:4]}
    assert expected[FAILED] >= 1 and expected[PRUNED_PREDICTION] >= 1 and expected[COMPLETED] >= 1
    finals = sum(1 for r in records if r["type"] == "failure" and r["final"])
    assert finals == expected[FAILED]
    assert re.search(
        rf'<tr><td class="l">trainer</td><td>{finals}</td><td>{finals}</td></tr>', html
    )  # retried once each
    # trials.csv, written by the runtime from its own book, says the same
    with open(out / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    csv_fates = collections.Counter(
        "failed"
        if r["status"] == "failed"
        else "completed"
        if r["status"] == "done"
        else f"pruned-{'prediction' if r['reason'] == 'predicted' else 'rung'}"
        for r in rows
    )
    assert {f: n for f, n in expected.items() if n} == dict(csv_fates)


def test_report_numbers_match_the_journal(study):
    out = study["out"]
    records = _records(out)
    s = load_study_output(str(out))
    end = records[-1]
    assert s.status == "finished" and s.epochs_used == end["epochs"] and s.mode == "max"
    best_yaml = yaml.safe_load((out / "best.yaml").read_text())
    trial, value = s.best_trial()
    assert (trial.trial_id, value) == (best_yaml["trial_id"], pytest.approx(best_yaml["value"]))
    assert "agrees with the journal" in s.files["curves.h5"]

    from hpoq.report.brackets import bracket_rows
    from hpoq.report.predictions import extract_predictions
    from hpoq.report.timeline import best_so_far

    rows = bracket_rows(s)
    assert [r["bracket"] for r in rows] == ["2", "1", "0", "all"]
    assert sum(r["configs"] for r in rows[:-1]) == rows[-1]["configs"] == len(s.trials)
    assert sum(r["epochs"] for r in rows[:-1]) == end["epochs"]
    assert sum(r["hyperband_epochs"] for r in rows[:-1]) == rows[-1]["hyperband_epochs"] == records[0]["budget"]
    assert all(r["epochs"] <= r["hyperband_epochs"] for r in rows)  # swift never trains more than Hyperband
    assert max(r["best"] for r in rows[:-1] if math.isfinite(r["best"])) == pytest.approx(value) == rows[-1]["best"]

    points, omitted = extract_predictions(s)
    predicted = [
        (dec["trial_id"], dec["info"])
        for r in records
        if r["type"] == "decision"
        for dec in r["decisions"]
        if "prediction" in dec["info"]
    ]
    assert len(points) == len(predicted) > 0
    curve_len = {t.trial_id: len(t.curve) for t in s.trials.values()}
    assert omitted["no_actual"] == sum(1 for tid, info in predicted if curve_len[tid] < info["key"][0])
    for p, (_, info) in zip(sorted(points, key=lambda p: p.trial_id), sorted(predicted, key=lambda x: x[0])):
        assert p.predicted == -info["prediction"] and p.threshold == -info["tau"]  # back to the metric's direction
        if math.isfinite(p.actual):
            assert p.actual == s.trials[p.trial_id].curve[p.target_epoch - 1]
            assert abs(p.predicted - p.actual) < 0.5 * abs(p.actual)

    from hpoq.report.compute import rung_rows

    results = [r for r in records if r["type"] == "result"]
    compute = rung_rows(s)
    assert compute[-1]["units"] == len(results) and compute[-1]["epochs"] == end["epochs"]
    assert compute[-1]["seconds"] == pytest.approx(sum(r["seconds"] for r in results))
    assert compute[-1]["rank_seconds"] == pytest.approx(compute[-1]["seconds"])  # one rank per trial group
    assert [int(r["to_epoch"]) for r in compute[:-1]] == sorted({r["end_epoch"] for r in results})
    assert 0 < s.wall_seconds < 120

    timeline = best_so_far(s)
    assert timeline.epochs[-1] == end["epochs"] and timeline.best_at_R[-1] == pytest.approx(value)
    assert all(np.diff(timeline.epochs) > 0)
    finite = [v for v in timeline.best_at_R if math.isfinite(v)]
    assert finite == sorted(finite)  # mode max: the best so far only grows


def test_report_while_the_study_runs(study):
    running = study["running"]
    assert running.status == "running" and running.end is None
    final = load_study_output(str(study["out"]))
    assert len(running.results) < len(final.results)
    # nothing it knew is contradicted later: curves only grow, decided fates stay
    for tid, t in running.trials.items():
        assert final.trials[tid].curve[: len(t.curve)] == t.curve
        if t.fate != UNFINISHED:
            assert final.trials[tid].fate == t.fate


def test_report_of_a_killed_study_with_a_torn_journal(study, tmp_path):
    """Only the journal, cut in the middle of a record and without an end record: still a report."""
    raw = (study["out"] / "journal.jsonl").read_bytes()
    cut = raw.index(b'"type":"result"', len(raw) // 2) + 40
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "journal.jsonl").write_bytes(raw[:cut])
    html_path = tmp_path / "copy" / "r.html"
    html_path.parent.mkdir()
    assert main(["report", str(killed), "--out", str(html_path)]) == 0
    html = html_path.read_text()
    s = load_study_output(str(killed))
    assert s.status == "no end record" and s.torn_bytes > 0 and f"torn last line of {s.torn_bytes} bytes" in html
    complete = [json.loads(line) for line in raw[:cut].split(b"\n")[:-1]]
    expected = _journal_fates(complete)
    assert expected[UNFINISHED] >= 1
    assert _fate_table(html) == {f: n for f, n in expected.items() if n or f in FATES[:4]}
    assert set(_embedded_pngs(html)) >= {"curves.png", "best_so_far.png"}
    assert all(p.read_bytes().startswith(PNG_SIGNATURE) for p in (tmp_path / "copy" / "r").iterdir())
    assert "missing; curves rebuilt from the journal" in html
    assert sorted(os.listdir(killed)) == ["journal.jsonl"]  # --out elsewhere: nothing written into the study


def test_report_errors_write_nothing(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["report", str(missing)]) == 2
    assert "hpoq: error: report: output directory" in capsys.readouterr().err
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpoq: error: report:") and "journal.jsonl" in err and err.count("\n") == 1
    assert os.listdir(empty) == []
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "journal.jsonl").write_text('{"type":"header","t":1}\nnot json\n{"type":"end","t":2}\n')
    assert main(["report", str(damaged)]) == 2
    assert "damaged" in capsys.readouterr().err and os.listdir(damaged) == ["journal.jsonl"]


def test_report_out_folder_must_exist(study, tmp_path, capsys):
    target = tmp_path / "no-such-folder" / "r.html"
    assert main(["report", str(study["out"]), "--out", str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err and not target.parent.exists()


def test_predictions_and_audit_of_the_default_scheduler():
    """``default`` puts the forecast that scored a trial at a checkpoint (``predicted`` of the value at
    ``target_epoch`` = R from ``rung_epoch``) in its decisions; the report reads them as prediction points,
    counts the decisions by kind and turns the audited stops into the false-prune estimate, the same as the
    scheduler's own."""
    from hpoq.curves.table import load_table
    from hpoq.report.decisions import KINDS, audit_line, audit_summary, decision_kind, predictor_decisions
    from hpoq.report.html import predictor_section
    from hpoq.report.predictions import extract_predictions
    from hpoq.report.study import StudyOutput, TrialView
    from hpoq.schedulers import make_scheduler
    from hpoq.schedulers.sampling import TableRowSampler

    table = load_table(TABLE, "loss", "min")
    curves = table.minimized()
    rows = np.arange(table.n_rows)
    R = 64  # a study long enough for its stops to pay for audits
    scheduler = make_scheduler(
        "default",
        R=R,
        eta=2,
        sampler=TableRowSampler(table, 1, rows=rows[:200]),
        seed=1,
        warm_curves=table.subset(rows[200:]),
        predictor="svr",
        protect=0.0,
        audit=1.0,
    )
    trials: dict = {}
    while not scheduler.finished:
        unit = scheduler.suggest()
        t = trials.setdefault(unit.trial_id, TrialView(unit.trial_id, dict(unit.config)))
        values = curves[unit.config["_row"], unit.start_epoch : unit.end_epoch].tolist()
        t.curve[unit.start_epoch :] = values
        for dec in scheduler.on_result(unit.trial_id, values):
            trials[dec.trial_id].decisions.append(dec)
    study = StudyOutput(
        out_dir="",
        header={},
        name="default",
        algorithm="default",
        R=R,
        eta=2,
        metric="loss",
        mode="min",
        budget=None,
        status="finished",
        status_detail="",
        trials=trials,
        results=[],
        end=None,
        resumes=0,
        records=0,
        torn_bytes=0,
        files={},
    )
    points, omitted = extract_predictions(study)
    made = [(tid, dec.info) for tid, t in trials.items() for dec in t.decisions if "predicted" in dec.info]
    assert len(points) == len(made) > 0 and omitted["no_target"] == 0
    from hpoq.report.predictions import _forecast
    from hpoq.schedulers.base import Decision

    for dec in (dec for t in trials.values() for dec in t.decisions):  # the typed forecast, read as the info is
        assert (dec.forecast is not None) == ("predicted" in dec.info)
        legacy = Decision(dec.trial_id, dec.action, dec.epoch, dec.reason, dec.info)
        assert _forecast(dec, R) == pytest.approx(_forecast(legacy, R), nan_ok=True)
        assert dec.forecast is None or dec.forecast.model == dec.info["model"]
    for p, (tid, info) in zip(points, made):
        assert (p.trial_id, p.target_epoch, p.from_epoch, p.predicted) == (tid, R, info["rung_epoch"], info["score"])
    kinds, models = predictor_decisions(study)
    every = [decision_kind(dec) for t in trials.values() for dec in t.decisions]
    assert [row[1] for row in kinds] == [every.count(k) for k in KINDS]
    assert sum(c for _, c in models) == sum(1 for _, info in made if "model" in info) > 0
    mine, theirs = audit_summary(study), scheduler.audit_estimate()
    assert mine["audited"] == theirs["audited"] > 0 and mine["false_prunes"] == theirs["false_prunes"]
    assert mine["stops"] == theirs["stops"]
    assert (mine["low"], mine["high"]) == (theirs["low"], theirs["high"])
    assert "audit: of the" in audit_line(mine)
    html = predictor_section(study)
    assert "What the predictor decided" in html and "passed a checkpoint" in html


def test_report_of_a_study_that_just_started(study, tmp_path):
    """Header, a config and its unit, nothing finished: the report says so instead of failing."""
    lines = (study["out"] / "journal.jsonl").read_text().splitlines(keepends=True)
    assert [json.loads(x)["type"] for x in lines[:3]] == ["header", "config", "unit"]
    (tmp_path / "journal.jsonl").write_text("".join(lines[:3]))
    report = build_report(str(tmp_path))
    html = Path(report.html_path).read_text()
    assert report.n_predictions == 0 and "No decision of this study holds a prediction" in html
    assert _fate_table(html) == {COMPLETED: 0, PRUNED_RUNG: 0, PRUNED_PREDICTION: 0, FAILED: 0, UNFINISHED: 1}
    assert "1 trial(s) have a unit in flight" in html and "none yet" in html
    assert set(_embedded_pngs(html)) == {"curves.png", "best_so_far.png"}
