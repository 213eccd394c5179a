"""The bad-input table (issue 11): every case ends with one line ``hpoq: error: ...`` naming the problem, exit 2.

Bad study files, bad curve tables, truncated or foreign HDF5, damaged journals, and signals. Each
row is a real file on disk handed to the real CLI (in-process where no MPI is involved).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import MLPF_TABLE, mpi_cmd, mpi_env

from hpoq.main import main

REPO = Path(__file__).resolve().parents[1]
TABLE = str(MLPF_TABLE)
GOOD_STUDY = {
    "name": "s",
    "seed": 1,
    "algorithm": {"name": "hyperband", "R": 9, "eta": 3},
    "trainer": {"name": "table", "params": {"table": TABLE}},
    "space": "table",
}


def study_text(**over) -> str:
    return yaml.safe_dump({**GOOD_STUDY, **over}, sort_keys=False)


# (case id, file contents, message the one line must contain)
STUDY_CASES = [
    ("duplicate-top-key", study_text() + "seed: 2\n", "key 'seed' is given twice"),
    ("duplicate-nested-key", study_text().replace("  R: 9\n", "  R: 9\n  R: 27\n"), "key 'R' is given twice"),
    ("unknown-key", study_text(max_retry=2), "max_retry: unknown key"),
    (
        "misspelt-algorithm-param",
        study_text(algorithm={"name": "swift", "R": 9, "params": {"knwon_curve": 2}}),
        "algorithm.params.knwon_curve",
    ),
    ("wrong-type", study_text(seed="one"), "seed must be an integer"),
    ("yaml-syntax", "name: [unclosed\n", "is not valid YAML"),
    ("not-a-mapping", "- a\n- b\n", "must hold a mapping"),
    ("empty-file", "", "must hold a mapping of keys, got null"),
    ("negative-timeout", study_text(unit_timeout=-5), "unit_timeout must be a positive"),
    ("text-timeout", study_text(unit_timeout="ten"), "unit_timeout must be a finite number"),
    ("missing-table", study_text(trainer={"name": "table", "params": {"table": "nope.csv"}}), "does not exist"),
    (
        "bad-mode",
        study_text(trainer={"name": "table", "params": {"table": TABLE, "mode": "up"}}),
        "trainer.params.mode must be 'min' or 'max'",
    ),
    ("unknown-algorithm", study_text(algorithm={"name": "nope", "R": 9}), "algorithm.name"),
    ("R-missing", study_text(algorithm={"name": "hyperband"}), "algorithm.R: required"),
    ("zero-retries-negative", study_text(max_retries=-1), "max_retries must be >= 0"),
    ("deep-nesting", "name: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),  # RecursionError in YAML
]


@pytest.mark.parametrize("text, message", [c[1:] for c in STUDY_CASES], ids=[c[0] for c in STUDY_CASES])
def test_bad_study_file(tmp_path, capsys, text, message):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("hpoq: error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err and captured.out == ""


# (case id, file name, contents, message)
TABLE_CASES = [
    ("empty", "t.csv", b"", "is empty"),
    ("header-only", "t.csv", b"a,loss_1,loss_2\n", "no rows with finite 'loss'"),
    ("no-metric-columns", "t.csv", b"a,acc_1,acc_2\n1,2,3\n", "has no columns loss_<epoch>"),
    ("truncated-row", "t.csv", b"a,loss_1,loss_2\n1,0.5,0.4\n2,0.3\n", "line 3 has 2 fields, expected 3"),
    ("epoch-gap", "t.csv", b"a,loss_1,loss_3\n1,0.5,0.4\n", "not consecutive"),
    ("all-nan", "t.csv", b"a,loss_1,loss_2\n1,nan,0.4\n2,x,inf\n", "no rows with finite 'loss'"),
    ("binary", "t.csv", b"garbage\x00\xff\xfe", "is not UTF-8 text"),
    ("truncated-gzip", "t.csv.gz", Path(TABLE).read_bytes()[:3000], "not a readable gzip file"),
    ("missing", "absent.csv", None, "does not exist"),
    (
        "duplicate-column",
        "t.csv",
        b"a,a,loss_1\n" + b"".join(b"%d,%d,0.5\n" % (i, -i) for i in range(20)),
        "'a' appears more",
    ),
]


@pytest.mark.parametrize("name, data, message", [c[1:] for c in TABLE_CASES], ids=[c[0] for c in TABLE_CASES])
def test_bad_curve_table(tmp_path, capsys, name, data, message):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    argv = ["predict-eval", "--table", str(path), "--metric", "loss", "--known", "0.5", "--seeds", "0"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("hpoq: error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err


@pytest.fixture(scope="module")
def curve_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "curves.h5"
    assert main(["convert", "mlpf", "--out", str(path)]) == 0
    return path


@pytest.mark.parametrize("cut", ["half", "header", "foreign"])
def test_truncated_or_foreign_hdf5(tmp_path, capsys, curve_store, cut):
    data = curve_store.read_bytes()
    bad = tmp_path / "bad.h5"
    bad.write_bytes({"half": data[: len(data) // 2], "header": data[:512], "foreign": os.urandom(4096)}[cut])
    capsys.readouterr()
    for argv in (
        ["predict-eval", "--table", str(bad), "--known", "0.5", "--seeds", "0"],
        ["simulate", "--table", str(bad), "--algorithm", "hyperband", "--R", "9", "--eta", "3"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("hpoq: error: ") and err.count("\n") == 1 and "not a readable HDF5 file" in err, err


# -- journals -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def journal_lines(tmp_path_factory) -> list[str]:
    """A real finished study's journal (one small mpiexec run shared by the journal cases)."""
    from conftest import mpiexec

    tmp = tmp_path_factory.mktemp("journal")
    study = tmp / "s.yaml"
    study.write_text(study_text(poll_interval=0.005))
    proc = subprocess.run(
        [
            mpiexec(),
            "-n",
            "3",
            sys.executable,
            "-m",
            "mpi4py",
            "-m",
            "hpoq.main",
            "run",
            str(study),
            "--out",
            str(tmp / "out"),
        ],
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return (tmp / "out" / "journal.jsonl").read_text().splitlines()


def _damage(lines: list[str], how: str) -> str:
    half = len(lines) // 2
    if how == "truncated-last-line":
        return "\n".join(lines[:half]) + "\n" + lines[half][: len(lines[half]) // 2]
    if how == "garbage-middle-line":
        return "\n".join(lines[:half] + ["{not json at all"] + lines[half + 1 :]) + "\n"
    if how == "no-header":
        return "\n".join(lines[1:]) + "\n"
    if how == "empty":
        return ""
    if how == "binary-middle-line":
        return "\n".join(lines[:half] + ["\udcff\udcfe"] + lines[half + 1 :]) + "\n"
    raise ValueError(how)


# (damage, status exit code, message of the one line for exit 2)
JOURNAL_CASES = [
    ("truncated-last-line", 3, None),  # a master killed mid-write: resumable
    ("garbage-middle-line", 2, "is not a JSON record"),
    ("binary-middle-line", 2, "is not a JSON record"),
    ("no-header", 2, "no header record"),
    ("empty", 2, "no header record"),
]


@pytest.mark.parametrize("how, code, message", JOURNAL_CASES, ids=[c[0] for c in JOURNAL_CASES])
def test_damaged_journal(tmp_path, capsys, journal_lines, how, code, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "journal.jsonl").write_bytes(_damage(journal_lines, how).encode("utf-8", "surrogateescape"))
    capsys.readouterr()
    assert main(["status", str(out)]) == code
    captured = capsys.readouterr()
    if code == 2:
        assert captured.err.startswith("hpoq: error: status: ") and captured.err.count("\n") == 1, captured.err
        assert message in captured.err
    else:
        assert "study 's'" in captured.out and "Traceback" not in captured.err


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["garbage-middle-line", "no-header"])
def test_resume_of_a_damaged_journal_writes_nothing(tmp_path, journal_lines, how):
    from conftest import mpiexec

    out = tmp_path / "out"
    out.mkdir()
    text = _damage(journal_lines, how)
    (out / "journal.jsonl").write_text(text)
    proc = subprocess.run(
        [mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "hpoq.main", "run", "--resume", str(out)],
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("hpoq: error:")], proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "journal.jsonl").read_text() == text
    assert sorted(p.name for p in out.iterdir()) == ["journal.jsonl"]  # not even a lock file


# -- the command line ------------------------------------------------------------------------------------------
def hpoq(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hpoq.main", *args],
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=timeout,
    )


def test_run_refuses_a_study_file_with_resume_dir(tmp_path):
    study = tmp_path / "other.yaml"
    study.write_text(study_text())
    proc = hpoq("run", str(study), "--resume", str(tmp_path / "somewhere"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not both" in proc.stderr and "other.yaml" in proc.stderr


def test_status_errors_name_status_not_report(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpoq: error: status: ") and "report" not in err


def test_run_without_a_journal_to_resume(tmp_path):
    proc = hpoq("run", "--resume", str(tmp_path))
    assert proc.returncode == 2 and "nothing to resume" in proc.stderr and proc.stderr.count("\n") == 1


# -- signals -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig, code, err", [(signal.SIGINT, 130, "hpoq: interrupted\n"), (signal.SIGTERM, -15, "")])
def test_signal_to_an_offline_command_ends_it_without_a_traceback(sig, code, err):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpoq.main",
            "simulate",
            "--table",
            "mlpf",
            "--algorithm",
            "hyperband",
            "--R",
            "27",
            "--eta",
            "3",
            "--seeds",
            "0-99999",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=mpi_env(),
        cwd=REPO,
    )
    time.sleep(2.5)  # well inside the replay of 100,000 seeds
    proc.send_signal(sig)
    out, got = proc.communicate(timeout=60)
    got = "\n".join(ln for ln in got.splitlines() if "rows dropped" not in ln) + ("\n" if err else "")
    assert proc.returncode == code and got == err and out == ""


# -- issue 20: more bad input, each one line and exit 2 ---------------------------------------------------
def one_line(proc) -> str:
    """The single ``hpoq: error:`` line of a refused command (and nothing else on stderr)."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert proc.stderr.startswith("hpoq: error: ") and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    return proc.stderr


def test_huge_seed_ranges_are_refused_before_any_list_is_built():
    for seeds, message in (
        ("0-99999999999", "at most 4294967295"),
        ("0-9999999", "asks for 10000000 seeds"),
        ("0-999999,5-10", "asks for 1000006 seeds"),
    ):
        for argv in (
            ["simulate", "--table", "mlpf", "--algorithm", "hyperband", "--R", "9", "--eta", "3"],
            ["predict-eval", "--table", "mlpf", "--known", "0.5"],
        ):
            line = one_line(hpoq(*argv, "--seeds", seeds))
            assert "--seeds" in line and message in line


def test_a_time_column_that_is_not_there_is_refused(tmp_path, capsys):
    store = tmp_path / "t.h5"
    assert main(["convert", "mlpf", "--out", str(store)]) == 0
    capsys.readouterr()
    for table in ("mlpf", str(store)):
        for argv in (
            ["simulate", "--table", table, "--algorithm", "hyperband", "--R", "9", "--eta", "3"],
            ["predict-eval", "--table", table, "--known", "0.5", "--seeds", "0"],
        ):
            assert main([*argv, "--time-column", "nosuch"]) == 2
            captured = capsys.readouterr()
            assert captured.err.count("\n") == 1 and "--time-column 'nosuch'" in captured.err, captured.err
            assert captured.out == ""


SPACE_STUDY = {
    "name": "sp",
    "algorithm": {"name": "hyperband", "R": 9, "eta": 3},
    "trainer": {"name": "tests.plugins.synthetic:SyntheticTrainer"},
}


@pytest.mark.parametrize(
    "space, path, message",
    [
        (
            {
                "o": {"type": "choice", "values": ["sgd", "adam"]},
                "m": {"type": "uniform", "low": 0, "high": 1, "when": {"o": "sgdd"}},
            },
            "space.m.when.o",
            "'sgdd' is not among the values of 'o'",
        ),
        (
            {
                "o": {"type": "choice", "values": ["sgd", "adam"]},
                "m": {"type": "uniform", "low": 0, "high": 1, "when": {"o": ["sgd", "nadam"]}},
            },
            "space.m.when.o",
            "'nadam' is not among",
        ),
        (
            {
                "n": {"type": "int", "low": 1, "high": 4},
                "m": {"type": "uniform", "low": 0, "high": 1, "when": {"n": 7}},
            },
            "space.m.when.n",
            "7 is not an integer 'n' can take, in [1, 4]",
        ),
        (
            {
                "x": {"type": "uniform", "low": 0, "high": 1},
                "m": {"type": "uniform", "low": 0, "high": 1, "when": {"x": 0.5}},
            },
            "space.m.when.x",
            "continuous (uniform) parameter",
        ),
    ],
    ids=["typo", "one-of-a-list", "int-out-of-range", "continuous-parent"],
)
def test_a_when_value_the_parent_never_takes_is_refused(tmp_path, capsys, space, path, message):
    study = tmp_path / "sp.yaml"
    study.write_text(yaml.safe_dump({**SPACE_STUDY, "space": space}))
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: " in err and message in err, err


def test_a_when_value_the_parent_takes_is_accepted(tmp_path, capsys):
    space = {
        "o": {"type": "choice", "values": ["sgd", "adam"]},
        "n": {"type": "int", "low": 1, "high": 4},
        "m": {"type": "uniform", "low": 0, "high": 1, "when": {"o": ["sgd"], "n": [2, 4]}},
    }
    study = tmp_path / "sp.yaml"
    study.write_text(yaml.safe_dump({**SPACE_STUDY, "space": space}))
    assert main(["validate", str(study)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", ".", "back\\slash", "bell\x07"])
def test_a_study_name_is_a_name_not_a_path(tmp_path, capsys, name):
    study = tmp_path / "s.yaml"
    study.write_text(study_text(name=name))
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be a plain name, not a path" in err, err


@pytest.mark.mpi
def test_run_of_a_study_named_like_a_path_writes_nothing_outside(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    study = work / "s.yaml"
    study.write_text(study_text(name="../../escape", poll_interval=0.005))
    proc = subprocess.run(
        mpi_cmd(2, "run", str(study)), capture_output=True, text=True, env=mpi_env(), cwd=work, timeout=60
    )
    assert "must be a plain name" in one_line(proc)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.yaml", "work"]  # no runs/, no escape/


PLUGINS = {
    "imports_missing": ("import hpoq_no_such_package_xyz\n", "needs the missing package 'hpoq_no_such_package_xyz'"),
    "bad_syntax": ("class T(:\n    pass\n", "SyntaxError: invalid syntax (bad_syntax.py, line 1)"),
    "bad_name": ("from os import no_such_name_xyz\n", "ImportError: cannot import name 'no_such_name_xyz'"),
    "exits": ("import sys\nsys.exit(3)\n", "it calls sys.exit(3)"),
    "raises": (
        "raise RuntimeError('licence server unreachable\\nsecond line')\n",
        "RuntimeError: licence server unreachable",
    ),
}


@pytest.mark.parametrize("module", sorted(PLUGINS))
def test_a_trainer_plugin_that_does_not_import_is_one_line(tmp_path, module):
    source, message = PLUGINS[module]
    (tmp_path / f"{module}.py").write_text(source)
    study = tmp_path / "s.yaml"
    study.write_text(study_text(trainer={"name": f"{module}:Trainer", "params": {"table": TABLE}}))
    env = dict(mpi_env(), PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    proc = subprocess.run(
        [sys.executable, "-m", "hpoq.main", "validate", str(study)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    line = one_line(proc)
    assert module in line and message in line and "second line" not in line


def test_error_lines_are_masked_like_log_lines(capsys, monkeypatch):
    token = "DEV-" + "a" * 16 + "3333"
    argv = ["predict-eval", "--table", "mlpf", "--known", "0.5", "--seeds", "0", "--predictor", "qsvr"]
    assert main([*argv, "--param", f"gamma={token}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gamma" in err and token not in err and "3333" not in err, err
    monkeypatch.setenv("HPOQ_TEST_API_KEY", "plain-secret-value")  # a secret of any shape, known from its name
    assert main([*argv, "--param", "gamma=plain-secret-value"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plain-secret-value" not in err and "'***'" in err, err


# -- issue 20: journals this hpoq cannot read ---------------------------------------------------------------
def _with_line(lines: list[str], index: int, change) -> str:
    recs = [json.loads(ln) for ln in lines]
    at = index if index >= 0 else next(i for i, r in enumerate(recs) if r["type"] == "result")
    change(recs[at])
    return "\n".join(json.dumps(r) for r in recs) + "\n", at + 1


JOURNAL_RECORD_CASES = [
    ("unknown-version", 0, lambda r: r.update(version=7), "format version 7"),
    ("no-version", 0, lambda r: r.pop("version"), "format version None"),
    ("text-metrics", -1, lambda r: r.update(metrics=["low", "lower"]), "metrics"),
    ("null-metric", -1, lambda r: r["metrics"].__setitem__(0, None), "metrics"),
    ("text-trial-id", -1, lambda r: r.update(trial_id="seven"), "trial_id"),
]


@pytest.mark.parametrize(
    "index, change, message", [c[1:] for c in JOURNAL_RECORD_CASES], ids=[c[0] for c in JOURNAL_RECORD_CASES]
)
def test_a_journal_record_no_reader_can_use_is_refused_with_its_line(
    tmp_path, capsys, journal_lines, index, change, message
):
    out = tmp_path / "out"
    out.mkdir()
    text, line = _with_line(journal_lines, index, change)
    (out / "journal.jsonl").write_text(text)
    for argv in (["status", str(out)], ["report", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"line {line}: " in err and message in err, err
    assert os.listdir(out) == ["journal.jsonl"]


@pytest.mark.mpi
@pytest.mark.parametrize("case", ["unknown-version", "text-metrics"])
def test_resume_of_a_journal_no_reader_can_use_is_one_line(tmp_path, journal_lines, case):
    _, index, change, _ = next(c for c in JOURNAL_RECORD_CASES if c[0] == case)
    out = tmp_path / "out"
    out.mkdir()
    text, line = _with_line(journal_lines[: len(journal_lines) // 2], index, change)
    (out / "journal.jsonl").write_text(text)
    proc = subprocess.run(
        mpi_cmd(3, "run", "--resume", str(out)), capture_output=True, text=True, env=mpi_env(), cwd=REPO, timeout=60
    )
    assert f"line {line}: " in one_line(proc)
    assert (out / "journal.jsonl").read_text() == text


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: SUBCOMMAND"),
        (["simulat"], "invalid choice: 'simulat'"),
        (["simulate", "--table", "mlpf", "--algorithm", "hyperband", "--eta", "x"], "argument --eta: invalid int"),
        (["simulate", "--algorithm", "hyperband"], "the following arguments are required: --table"),
    ],
    ids=["no-subcommand", "unknown-subcommand", "bad-int", "missing-required"],
)
def test_a_bad_command_line_is_one_line_not_a_usage_block(argv, message):
    line = one_line(hpoq(*argv))
    assert message in line and "--help" in line and "usage:" not in line


def test_the_battery_registers_its_cases():
    """benchmarks/bad_input_battery.py (not run here: about 10 minutes) imports and lists every category."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bad_input_battery.py"), "--list"],
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    categories = {line.split(":")[0] for line in proc.stdout.splitlines()}
    assert len(proc.stdout.splitlines()) >= 300 and len(categories) == 8, categories
