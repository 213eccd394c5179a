"""The journal's typed records (:mod:`hpoq.journal.records`) and the decision's typed forecast.

Every record type round-trips through its JSON line; a line written before a field existed reads with the
field's default; a damaged line is one ConfigError naming the field; swift's decisions carry their forecast
as a :class:`~hpoq.schedulers.base.Forecast`, which the report reads in the same shape as any other.
"""

from __future__ import annotations

import json

import pytest

from hpoq.errors import ConfigError
from hpoq.journal import records
from hpoq.runtime.journal import dumps
from hpoq.schedulers.base import Decision, Forecast

EXAMPLES = [
    records.Header(study={"name": "s"}, seeds={"study": 1}, metric="loss", budget=3213, groups=[[1], [2]]),
    records.Resume(replayed=12, lost_units=[3], counted_lost=[3], queue=1, changed_inputs=["table"]),
    records.Config(4, {"lr": 0.1, "_row": 7}),
    records.Unit(9, 4, 2, 6, group=1, ranks=[2, 3], attempt=1, source="retry", checkpoint_dir="/c", isolated=True),
    records.Idle(),
    records.Result(9, 4, 2, 6, [0.5, 0.4, 0.3, 0.25], mode="min", seconds=1.5, group=1),
    records.Failure(9, 4, "boom", attempt=1, final=True, kind="disk-full", counted=False),
    records.Decisions(
        9,
        [
            Decision(4, "stop", 6, "predicted", {"tau": 0.2}, Forecast(0.31, 3, 6, threshold=0.2, model="svr:3->6@15")),
            Decision(5, "pause", 6, "rung", {"value": 0.5, "rank": 2}),
        ],
    ),
    records.Model([1, 3, 12]),
    records.SchedulerError("on_result", "ValueError: x"),
    records.CheckpointDeleted(4, "/c/trial-00004"),
    records.Stop(signal="SIGTERM"),
    records.Snapshot({"algorithm": "hyperband"}, []),
    records.End("finished", best={"trial_id": 4}, epochs=10, units=3, reason="disk full"),
]


@pytest.mark.parametrize("rec", EXAMPLES, ids=lambda r: r.type)
def test_every_record_round_trips_through_its_json_line(rec):
    rec.t = 1234.5
    line = json.loads(dumps(rec.to_record()))
    assert line["type"] == rec.type and line["t"] == 1234.5
    back = records.from_record(line)
    assert type(back) is type(rec) and back == rec and back.t == 1234.5


def test_the_record_types_are_the_journals():
    assert set(records.RECORD_TYPES) == {r.type for r in EXAMPLES}


def test_fields_at_their_default_are_left_out_and_old_lines_read_with_defaults():
    assert "isolated" not in records.Unit(1, 2, 0, 1).to_record()
    assert "counted" not in records.Failure(1, 2, "x").to_record()
    assert "forecast" not in Decision(1, "pause", 1).to_dict()  # a decision without one reads as before
    old = {"type": "unit", "t": 1.0, "unit_id": 1, "trial_id": 2, "start_epoch": 0, "end_epoch": 3}
    unit = records.from_record(old)
    assert (unit.source, unit.attempt, unit.isolated, unit.ranks) == ("suggest", 0, False, [])


@pytest.mark.parametrize(
    "line,message",
    [
        ({"type": "unit", "trial_id": 2, "start_epoch": 0, "end_epoch": 3}, "unit record without its 'unit_id'"),
        (
            {"type": "result", "unit_id": "x", "trial_id": 2, "start_epoch": 0, "end_epoch": 1, "metrics": [1]},
            "unit_id",
        ),
        ({"type": "result", "unit_id": 1, "trial_id": 2, "start_epoch": 0, "end_epoch": 1, "metrics": 3}, "metrics"),
        ({"type": "decision", "unit_id": 1, "decisions": [{"action": "stop"}]}, "decisions"),
        ({"type": "teleport"}, "unknown record type 'teleport'"),
    ],
)
def test_a_damaged_record_is_one_config_error_naming_it(line, message):
    with pytest.raises(ConfigError, match=message):
        records.from_record(line)


def test_swift_decisions_carry_a_typed_forecast_the_report_reads_like_any_other(mlpf_table):
    from hpoq.curves.table import load_table
    from hpoq.report.predictions import _forecast
    from hpoq.simulate import simulate_run

    table = load_table(str(mlpf_table), "loss")
    run = simulate_run(table, "swift", 0, 27, 3, params={"d": 5}, keep_events=True)
    predicted = [Decision.from_dict(json.loads(dumps(d))) for d in run["decisions"] if d["reason"] == "predicted"]
    assert predicted
    for d in predicted:
        f, key = d.forecast, d.info["key"]
        assert (f.target_epoch, f.from_epoch) == tuple(key) and f.value == pytest.approx(d.info["prediction"])
        assert f.threshold == pytest.approx(d.info["tau"]) and f.model.startswith("svr:")
        # the report's reader gives the same numbers from the typed field as from the info of an older journal
        legacy = Decision(d.trial_id, d.action, d.epoch, d.reason, d.info)
        assert _forecast(d, 27) == pytest.approx(_forecast(legacy, 27), nan_ok=True)


def test_one_fold_of_the_journal_for_the_master_resume_status_and_report(tmp_path):
    """The master's live state (written out as trials.csv), the state a resume and ``status`` fold from the
    journal, and the report's trials are one :class:`~hpoq.journal.state.StudyState`: they agree trial by trial."""
    import csv

    from hpoq.journal.state import StudyState
    from hpoq.report.study import load_study_output
    from hpoq.runtime.journal import read_records
    from tests.test_master_inprocess import TABLE, FakeRanks, run_job, table_trainer, write_study

    trainer = {
        "name": "tests.plugins.flaky:FlakyTableTrainer",
        "params": {"table": TABLE, "raise_mod": 7, "flaky_mod": 5},
    }
    study, out = write_study(tmp_path, trainer=trainer, seed=0), tmp_path / "out"
    code, _ = run_job(study, out, lambda plan: FakeRanks(4, table_trainer(plan)))
    assert code == 0
    journal, _ = read_records(str(out / "journal.jsonl"))
    state = StudyState.of(journal)
    with open(out / "trials.csv", newline="") as fh:
        rows = {int(r["trial_id"]): r for r in csv.DictReader(fh)}
    assert rows.keys() == state.trials.keys() and any(t.failures for t in state.trials.values())
    report = load_study_output(str(out))
    for tid, t in state.trials.items():
        row = rows[tid]
        assert (row["status"], int(row["epochs"]), int(row["units"]), int(row["failures"])) == (
            t.status,
            t.epochs,
            t.units_sent,
            t.failures,
        )
        shown = report.trials[tid]
        assert shown.curve == t.curve and shown.decisions == t.decisions and shown.failed_attempts >= t.failures
    assert state.epochs_used == journal[-1].epochs and state.units_done == journal[-1].units
