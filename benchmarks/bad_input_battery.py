"""The bad-input and fault battery (issue 20): a new user's mistakes and a cluster's faults, run for real.

Every case runs the real CLI in a subprocess (``python -m hpoq.main``; ``mpiexec -n 3`` for ``run``)
on real files in a fresh folder, and checks what the README promises:

- **bad input**: exit code 2, exactly one line ``hpoq: error: ...`` on stderr naming the problem (the
  case gives a fragment the line must hold), nothing on stdout, no traceback, no MPICH ``Abort`` line,
  and nothing written: the case's folder is the same afterwards (every file's bytes and mtime);
- **faults** (SIGKILL, SIGTERM, SIGUSR1, hung and dying ranks, two masters, changed inputs, full and
  read-only disks, a kill before the journal header): the study ends as an uninterrupted one does
  (same epochs, same best trial) within the promised number of invocations, every stop says so in one
  line, nothing of the user's is lost;
- **secrets** (environment, ``dwave.conf``, study): no secret on stdout, stderr or in any output file
  except the journal header the user wrote it into.

Categories: ``study files``, ``study files under mpiexec``, ``command line``, ``curve tables``,
``output places``, ``broken study directories``, ``runtime faults``, ``secrets``. Prints a markdown table
of tried / held / defects per category, then one line per defect (case, what went wrong).

Usage: ``python benchmarks/bad_input_battery.py [--only CATEGORY ...] [--jobs N] [--list]``.
Needs ``mpiexec`` (the venv's mpich), root for the tmpfs / chattr / pid cases (they are counted as
skipped otherwise), ``strace`` for the kill-before-header case. About 6 minutes on 2 cores; not part of
``make test`` (the defects it found are, each as its own test).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "tests"))

from test_faults import early_threshold, echoing_endpoint, top_value_threshold, tree, user_dir, wait_for  # noqa: E402

from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path  # noqa: E402

TABLE = str(REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz")
GOOD = {
    "name": "s",
    "seed": 4,
    "algorithm": {"name": "hyperband", "R": 9, "eta": 3},
    "trainer": {"name": "table", "params": {"table": TABLE}},
    "space": "table",
    "poll_interval": 0.005,
}
FAULTY = "tests.plugins.faulty:FaultyTableTrainer"
KEYED = "tests.plugins.keyed:KeyedTableTrainer"
REFERENCE_EPOCHS = 69  # plain Hyperband R=9 eta=3: every uninterrupted run of GOOD trains exactly these


class Skip(Exception):
    """The case cannot run here (no root for a tmpfs, no strace); counted apart, not as held."""


@dataclass
class Case:
    category: str
    name: str
    run: Callable[["Box"], list[str]]  # problems found (empty: held)


CASES: list[Case] = []


def case(category: str, name: str):
    def register(fn):
        CASES.append(Case(category, name, fn))
        return fn

    return register


@dataclass
class Box:
    """One case's folder, environment and runners."""

    root: Path
    env: dict = field(default_factory=dict)
    mounts: list = field(default_factory=list)

    def __post_init__(self):
        self.env = dict(mpi_child_env(), PYTHONPATH=os.pathsep.join([str(self.root), str(REPO)]))
        for name in ("DWAVE_API_TOKEN", "DWAVE_API_ENDPOINT", "DWAVE_CONFIG_FILE"):
            self.env.pop(name, None)

    # -- files -------------------------------------------------------------------------------------
    def study(self, name: str = "s.yaml", text: str | None = None, **over) -> str:
        path = self.root / name
        path.write_text(text if text is not None else yaml.safe_dump({**GOOD, **over}, sort_keys=False))
        return str(path)

    # -- commands ----------------------------------------------------------------------------------
    def _run(self, argv: list[str], env, timeout, cwd) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=cwd or self.root,
            timeout=timeout,
            errors="replace",
        )

    def cli(self, *args, env=None, timeout=120, cwd=None) -> subprocess.CompletedProcess:
        return self._run([sys.executable, "-m", "hpoq.main", *map(str, args)], env, timeout, cwd)

    def mpi_argv(self, n: int, *args, mpi4py: bool = False) -> list[str]:
        head = [mpiexec_path(), "-n", str(n), sys.executable] + (["-m", "mpi4py"] if mpi4py else [])
        return [*head, "-m", "hpoq.main", *map(str, args)]

    def mpi(self, n: int, *args, env=None, timeout=120, mpi4py: bool = False, cwd=None):
        return self._run(self.mpi_argv(n, *args, mpi4py=mpi4py), env, timeout, cwd)

    def start(self, n: int, *args) -> subprocess.Popen:
        return subprocess.Popen(
            self.mpi_argv(n, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    # -- disks ---------------------------------------------------------------------------------------
    def tmpfs(self, name: str, size: str, readonly: bool = False) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size}" + (",ro" if readonly else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode:
            raise Skip("cannot mount a tmpfs (not root)")
        self.mounts.append(path)
        return path

    def close(self) -> None:
        for path in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


# -- what "held" means --------------------------------------------------------------------------------------------
def tree_diff(before: dict, after: dict) -> str | None:
    """What changed between two :func:`tree` snapshots: files' bytes or mtimes, entries deleted or added.

    A folder's own mtime is not compared: a refused command may have made and removed its probe or
    lock file there (every entry of the folder is compared)."""
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k] and before[k][1] is not None)
    gone, new = sorted(before.keys() - after.keys()), sorted(after.keys() - before.keys())
    parts = [
        f"{what}: {', '.join(items[:3])}"
        for what, items in (("changed", changed), ("deleted", gone), ("added", new))
        if items
    ]
    return "; ".join(parts) or None


def refused(proc, *fragments: str, code: int = 2, logged: bool = False) -> list[str]:
    """Problems with a refusal: exit code, one ``hpoq: error:`` line holding every fragment, nothing else.

    ``logged``: a study that ran before it stopped may also have logged warnings (failed units, a
    full disk); then only its ``hpoq: error:`` lines count, and there must be one.
    """
    problems = []
    err = proc.stderr
    lines = [ln for ln in err.splitlines() if ln.strip() and (not logged or ln.startswith("hpoq: "))]
    if proc.returncode != code:
        problems.append(f"exit {proc.returncode}, not {code}")
    if "Traceback" in err:
        problems.append("a traceback")
    if "Abort(" in err or "BAD TERMINATION" in err:
        problems.append("MPI Abort lines")
    if len(lines) != 1 or not lines[0].startswith("hpoq: error: "):
        problems.append(f"{len(lines)} stderr lines, not one 'hpoq: error:' line: {err.strip()[:160]!r}")
    else:
        for fragment in fragments:
            if fragment.lower() not in lines[0].lower():
                problems.append(f"the line does not name {fragment!r}: {lines[0][:200]!r}")
    if proc.stdout.strip():
        problems.append(f"stdout not empty: {proc.stdout.strip()[:80]!r}")
    return problems


def refused_writing_nothing(
    box: Box, run: Callable[[], subprocess.CompletedProcess], *fragments: str, watch=None, ignore=()
):
    """``run()`` must be refused (see :func:`refused`) and leave ``watch`` (default the box) as it was
    (``ignore``: names of hpoq's own files a refusal may touch, the lock's holder note)."""
    watch = watch or [box.root]

    def snapshot(w):
        return {k: v for k, v in tree(w).items() if Path(k).name not in ignore}

    before = [snapshot(w) for w in watch]
    time.sleep(0.005)
    problems = refused(run(), *fragments)
    for w, b in zip(watch, before):
        diff = tree_diff(b, snapshot(w))
        if diff:
            problems.append(f"wrote in {w.name}: {diff}")
    return problems


def records(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "journal.jsonl").read_text().splitlines() if ln.strip()]


_REFERENCE: dict = {}
_REFERENCE_LOCK = threading.Lock()


def reference_end(box: Box, **over) -> dict:
    """The end record of an uninterrupted run of GOOD (with ``over``), computed once per variant."""
    key = json.dumps(over, sort_keys=True)
    with _REFERENCE_LOCK:
        if key not in _REFERENCE:
            with tempfile.TemporaryDirectory(prefix="hpoq-battery-ref-") as tmp:
                ref = Box(Path(tmp))
                study = ref.study(**over)
                proc = ref.mpi(3, "run", study, "--out", Path(tmp) / "out")
                if proc.returncode:
                    raise RuntimeError(f"the uninterrupted reference run failed: {proc.stderr[-500:]}")
                _REFERENCE[key] = records(Path(tmp) / "out")[-1]
        return _REFERENCE[key]


def same_answer(out: Path, reference: dict) -> list[str]:
    try:
        end = records(out)[-1]
    except (OSError, ValueError) as exc:
        return [f"journal unreadable: {exc}"]
    problems = []
    if end.get("type") != "end" or end.get("status") != "finished":
        problems.append(f"ends with {end.get('type')} {end.get('status')}, not finished")
        return problems
    mine, theirs = end.get("best") or {}, reference.get("best") or {}
    if (mine.get("trial_id"), mine.get("value")) != (theirs.get("trial_id"), theirs.get("value")):
        problems.append(f"best {mine.get('trial_id')}/{mine.get('value')} != uninterrupted {theirs.get('trial_id')}")
    return problems


def no_problems(proc, code: int = 0) -> list[str]:
    if proc.returncode != code:
        return [f"exit {proc.returncode}, not {code}: {proc.stderr.strip()[-200:]!r}"]
    if "Traceback" in proc.stderr:
        return ["a traceback"]
    return []


# == study files =====================================================================================================
def _set(doc: dict, path: str, value):
    """``doc`` with key path ``a.b.c`` set (``DELETE`` removes it)."""
    doc = json.loads(json.dumps(doc))
    keys = path.split(".")
    here = doc
    for k in keys[:-1]:
        here = here.setdefault(k, {})
    if value is DELETE:
        here.pop(keys[-1], None)
    else:
        here[keys[-1]] = value
    return doc


DELETE = object()
SPACE = {
    "opt": {"type": "choice", "values": ["sgd", "adam"]},
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "layers": {"type": "int", "low": 1, "high": 4},
}
SPACE_STUDY = {**GOOD, "trainer": {"name": "tests.plugins.synthetic:SyntheticTrainer"}, "space": SPACE}

# (case name, key path, bad value, fragment the one line must hold); on GOOD unless the path starts with space
STUDY_MUTATIONS = [
    ("name-int", "name", 5, "name"),
    ("name-empty", "name", "", "name"),
    ("name-path", "name", "../../escape", "plain name"),
    ("name-slash", "name", "a/b", "plain name"),
    ("name-dotdot", "name", "..", "plain name"),
    ("name-control", "name", "a\x07b", "plain name"),
    ("seed-text", "seed", "one", "seed"),
    ("seed-negative", "seed", -1, "seed"),
    ("seed-fraction", "seed", 1.5, "seed"),
    ("seed-list", "seed", [1], "seed"),
    ("seed-bool", "seed", True, "seed"),
    ("out-int", "out", 5, "out"),
    ("out-list", "out", ["a"], "out"),
    ("ranks-zero", "ranks_per_trial", 0, "ranks_per_trial"),
    ("ranks-text", "ranks_per_trial", "two", "ranks_per_trial"),
    ("poll-zero", "poll_interval", 0, "poll_interval"),
    ("poll-huge", "poll_interval", 11, "poll_interval"),
    ("poll-text", "poll_interval", "fast", "poll_interval"),
    ("poll-nan", "poll_interval", float("nan"), "poll_interval"),
    ("retries-negative", "max_retries", -1, "max_retries"),
    ("retries-text", "max_retries", "x", "max_retries"),
    ("dedupe-text", "dedupe", "yes", "dedupe"),
    ("timeout-zero", "unit_timeout", 0, "unit_timeout"),
    ("timeout-negative", "unit_timeout", -5, "unit_timeout"),
    ("timeout-text", "unit_timeout", "ten", "unit_timeout"),
    ("timeout-inf", "unit_timeout", float("inf"), "unit_timeout"),
    ("warm-fraction-one", "warm_fraction", 1.0, "warm_fraction"),
    ("warm-fraction-negative", "warm_fraction", -0.1, "warm_fraction"),
    ("warm-curves-missing", "warm_curves", "nope.h5", "warm_curves"),
    ("warm-curves-mode", "warm_curves", {"path": TABLE, "mode": "up"}, "warm_curves.mode"),
    ("unknown-key", "max_retry", 2, "max_retry"),
    ("algorithm-missing", "algorithm", DELETE, "algorithm"),
    ("algorithm-list", "algorithm", ["hyperband"], "algorithm"),
    ("algorithm-name", "algorithm.name", "hyperbandd", "algorithm.name"),
    ("algorithm-name-int", "algorithm.name", 3, "algorithm.name"),
    ("R-missing", "algorithm.R", DELETE, "algorithm.R"),
    ("R-zero", "algorithm.R", 0, "algorithm.R"),
    ("R-text", "algorithm.R", "nine", "algorithm.R"),
    ("R-fraction", "algorithm.R", 9.5, "algorithm.R"),
    ("R-beyond-table", "algorithm.R", 1000, "R"),
    ("eta-one", "algorithm.eta", 1, "algorithm.eta"),
    ("eta-fraction", "algorithm.eta", 2.5, "algorithm.eta"),
    ("algorithm-params-list", "algorithm.params", [1], "algorithm.params"),
    ("algorithm-params-unknown", "algorithm.params", {"knwon_curve": 2}, "knwon_curve"),
    ("algorithm-unknown-key", "algorithm.Rmax", 9, "algorithm.Rmax"),
    ("predictor-on-hyperband", "predictor", {"name": "svr"}, "predictor"),
    ("predictor-list", "predictor", ["svr"], "predictor"),
    ("trainer-missing", "trainer", DELETE, "trainer"),
    ("trainer-string", "trainer", "table", "trainer"),
    ("trainer-unknown", "trainer.name", "tabel", "tabel"),
    ("trainer-module-missing", "trainer.name", "no_such_module_xyz:T", "no_such_module_xyz"),
    ("trainer-class-missing", "trainer.name", "tests.plugins.faulty:NoSuchClass", "NoSuchClass"),
    ("trainer-not-a-trainer", "trainer.name", "json:JSONDecoder", "not a subclass"),
    ("trainer-params-unknown", "trainer.params.tabel", TABLE, "tabel"),
    ("trainer-params-list", "trainer.params", [TABLE], "trainer.params"),
    ("table-missing", "trainer.params.table", "nope.csv", "does not exist"),
    ("table-directory", "trainer.params.table", "/tmp", "/tmp"),
    ("table-mode", "trainer.params.mode", "up", "trainer.params.mode"),
    ("table-metric", "trainer.params.metric", "acc", "acc"),
    ("space-word", "space", "tables", "space"),
    ("space-number", "space", 5, "space"),
]
SPACE_MUTATIONS = [
    ("space-empty", {}, "space"),
    ("space-entry-not-mapping", {"lr": 0.1}, "space.lr"),
    ("space-type-unknown", {"lr": {"type": "gauss", "low": 0, "high": 1}}, "space.lr.type"),
    ("space-low-above-high", {"lr": {"type": "uniform", "low": 1, "high": 0}}, "space.lr"),
    ("space-log-nonpositive", {"lr": {"type": "loguniform", "low": 0, "high": 1}}, "space.lr.low"),
    ("space-bound-text", {"lr": {"type": "uniform", "low": "a", "high": 1}}, "space.lr.low"),
    ("space-int-fraction", {"n": {"type": "int", "low": 1.5, "high": 4}}, "space.n.low"),
    ("space-choice-empty", {"o": {"type": "choice", "values": []}}, "space.o.values"),
    ("space-choice-mapping", {"o": {"type": "choice", "values": [{"a": 1}]}}, "space.o.values"),
    ("space-unknown-key", {"lr": {"type": "uniform", "low": 0, "high": 1, "step": 2}}, "space.lr.step"),
    ("space-underscore-name", {"_lr": {"type": "uniform", "low": 0, "high": 1}}, "_lr"),
    (
        "space-when-undeclared",
        {**SPACE, "m": {"type": "uniform", "low": 0, "high": 1, "when": {"nope": 1}}},
        "space.m.when.nope",
    ),
    (
        "space-when-typo",
        {**SPACE, "m": {"type": "uniform", "low": 0, "high": 1, "when": {"opt": "sgdd"}}},
        "space.m.when.opt",
    ),
    (
        "space-when-int-range",
        {**SPACE, "m": {"type": "uniform", "low": 0, "high": 1, "when": {"layers": 9}}},
        "space.m.when.layers",
    ),
    (
        "space-when-continuous",
        {**SPACE, "m": {"type": "uniform", "low": 0, "high": 1, "when": {"lr": 0.01}}},
        "space.m.when.lr",
    ),
    (
        "space-when-cycle",
        {
            "a": {"type": "choice", "values": [1, 2], "when": {"b": 1}},
            "b": {"type": "choice", "values": [1, 2], "when": {"a": 1}},
        },
        "cycle",
    ),
    ("space-when-not-mapping", {**SPACE, "m": {"type": "uniform", "low": 0, "high": 1, "when": "opt"}}, "space.m.when"),
]
YAML_CASES = [
    ("yaml-syntax", "name: [unclosed\n", "not valid YAML"),
    ("yaml-tab-indent", "name: s\nalgorithm:\n\tname: hyperband\n", "not valid YAML"),
    ("yaml-empty", "", "mapping"),
    ("yaml-list", "- a\n- b\n", "mapping"),
    ("yaml-scalar", "hello\n", "mapping"),
    ("yaml-duplicate-key", yaml.safe_dump(GOOD, sort_keys=False) + "seed: 5\n", "given twice"),
    ("yaml-binary", "\x00\x01\xff garbage", "s.yaml"),
    ("yaml-deep-nesting", "name: " + "[" * 3000 + "]" * 3000 + "\n", "s.yaml"),
    ("yaml-python-tag", "name: !!python/object/apply:os.system ['true']\n", "s.yaml"),
]


def _study_case(doc=None, text=None, fragment="", binary: bytes | None = None):
    def run(box: Box) -> list[str]:
        path = box.root / "s.yaml"
        if binary is not None:
            path.write_bytes(binary)
        else:
            path.write_text(text if text is not None else yaml.safe_dump(doc, sort_keys=False))
        return refused_writing_nothing(box, lambda: box.cli("validate", path), fragment)

    return run


for _name, _path, _value, _fragment in STUDY_MUTATIONS:
    case("study files", _name)(_study_case(_set(GOOD, _path, _value), fragment=_fragment))
for _name, _space, _fragment in SPACE_MUTATIONS:
    case("study files", _name)(_study_case({**SPACE_STUDY, "space": _space}, fragment=_fragment))
for _name, _text, _fragment in YAML_CASES:
    if _name == "yaml-binary":
        case("study files", _name)(_study_case(binary=b"\x00\x01\xff\xfe garbage", fragment=_fragment))
    else:
        case("study files", _name)(_study_case(text=_text, fragment=_fragment))

PLUGIN_MODULES = [
    ("plugin-syntax-error", "class T(:\n    pass\n", "SyntaxError"),
    ("plugin-import-error", "from os import no_such_name_xyz\n", "ImportError"),
    ("plugin-missing-package", "import no_such_package_xyz\n", "no_such_package_xyz"),
    ("plugin-raises", "raise RuntimeError('licence server down\\nline two')\n", "licence server down"),
    ("plugin-exits", "import sys\nsys.exit(3)\n", "plugin_exits"),
]


def _plugin_case(module: str, source: str, fragment: str, mpi: bool):
    def run(box: Box) -> list[str]:
        mod = module.replace("-", "_")
        (box.root / f"{mod}.py").write_text(source)
        study = box.study(trainer={"name": f"{mod}:T", "params": {"table": TABLE}})
        if mpi:
            return refused_writing_nothing(box, lambda: box.mpi(3, "run", study), fragment, mod)
        return refused_writing_nothing(box, lambda: box.cli("validate", study), fragment, mod)

    return run


for _name, _source, _fragment in PLUGIN_MODULES:
    case("study files", _name)(_plugin_case(_name, _source, _fragment, mpi=False))


@case("study files", "study-file-missing")
def _(box):
    return refused_writing_nothing(box, lambda: box.cli("validate", box.root / "nope.yaml"), "nope.yaml")


@case("study files", "study-file-is-a-directory")
def _(box):
    (box.root / "d.yaml").mkdir()
    return refused_writing_nothing(box, lambda: box.cli("validate", box.root / "d.yaml"), "d.yaml")


# == the same mistakes under mpiexec: one line, no Abort lines, nothing written (not even runs/) ====================
MPI_STUDY_CASES = [
    "seed-text",
    "name-path",
    "algorithm-name",
    "R-beyond-table",
    "table-missing",
    "trainer-unknown",
    "unknown-key",
]


def _mpi_study_case(doc: dict, fragment: str, mpi4py: bool):
    def run(box: Box) -> list[str]:
        study = box.study(text=yaml.safe_dump(doc, sort_keys=False))
        return refused_writing_nothing(box, lambda: box.mpi(3, "run", study, mpi4py=mpi4py), fragment)

    return run


for _name, _path, _value, _fragment in STUDY_MUTATIONS:
    if _name in MPI_STUDY_CASES:
        for _mpi4py in (False, True):
            _label = f"{_name}{' (-m mpi4py)' if _mpi4py else ''}"
            case("study files under mpiexec", _label)(_mpi_study_case(_set(GOOD, _path, _value), _fragment, _mpi4py))
for _name, _source, _fragment in PLUGIN_MODULES[:3]:
    case("study files under mpiexec", _name)(_plugin_case(_name, _source, _fragment, mpi=True))


@case("study files under mpiexec", "trainer-fails-to-build-on-the-workers")
def _(box):
    study = box.study(trainer={"name": FAULTY, "params": {"table": TABLE, "fault": "nope"}})
    return refused(box.mpi(3, "run", study, "--out", box.root / "out"), "cannot build trainer")


@case("study files under mpiexec", "too-few-ranks")
def _(box):
    study = box.study(ranks_per_trial=4)
    return refused_writing_nothing(box, lambda: box.mpi(3, "run", study), "rank")


@case("study files under mpiexec", "study-and-resume-dir")
def _(box):
    study = box.study()
    return refused_writing_nothing(box, lambda: box.mpi(3, "run", study, "--resume", box.root / "x"), "not both")


# == the command line ===============================================================================================
CLI_CASES = [  # (name, argv, fragment the line must name); {T} is the MLPF table's path
    ("no-subcommand", "", "SUBCOMMAND"),
    ("unknown-subcommand", "simulat", "simulat"),
    ("unknown-option", "simulate --table mlpf --algorithm hyperband --etaa 3", "--etaa"),
    ("int-option-text", "simulate --table mlpf --algorithm hyperband --eta x", "--eta"),
    ("choice-option", "simulate --table mlpf --algorithm hyperband --mode up", "--mode"),
    ("required-missing", "simulate --algorithm hyperband", "--table"),
    ("seeds-empty", "simulate --table mlpf --algorithm hyperband --seeds ''", "--seeds"),
    ("seeds-text", "simulate --table mlpf --algorithm hyperband --seeds a-b", "--seeds"),
    ("seeds-reversed", "simulate --table mlpf --algorithm hyperband --seeds 5-2", "--seeds"),
    ("seeds-negative", "simulate --table mlpf --algorithm hyperband --seeds -1", "--seeds"),
    ("seeds-huge-range", "simulate --table mlpf --algorithm hyperband --seeds 0-99999999999", "--seeds"),
    ("seeds-many", "simulate --table mlpf --algorithm hyperband --seeds 0-2000000", "--seeds"),
    ("seeds-huge-value", "predict-eval --table mlpf --known 0.5 --seeds 99999999999999999999", "--seeds"),
    ("eta-one", "simulate --table mlpf --algorithm hyperband --eta 1", "eta"),
    ("R-zero", "simulate --table mlpf --algorithm hyperband --R 0", "R"),
    ("R-beyond-table", "simulate --table mlpf --algorithm hyperband --R 1000", "R"),
    ("workers-zero", "simulate --table mlpf --algorithm hyperband --workers 0", "--workers"),
    ("warm-fraction-one", "simulate --table mlpf --algorithm default --warm-fraction 1", "--warm-fraction"),
    ("warm-fraction-text", "simulate --table mlpf --algorithm default --warm-fraction x", "--warm-fraction"),
    ("algorithm-unknown", "simulate --table mlpf --algorithm hyperbandd", "hyperbandd"),
    ("algorithm-param-unknown", "simulate --table mlpf --algorithm hyperband --param foo=1", "foo"),
    ("param-no-equals", "simulate --table mlpf --algorithm hyperband --param foo", "--param"),
    ("predictor-unknown", "simulate --table mlpf --algorithm default --predictor svrr", "svrr"),
    ("time-column-shared", "simulate --table mlpf --algorithm hyperband --time-column nosuch", "--time-column"),
    ("time-column-csv", "simulate --table {T} --metric loss --algorithm hyperband --time-column nosuch", "nosuch"),
    ("metric-mismatch-shared", "simulate --table mlpf --metric acc --algorithm hyperband", "acc"),
    ("mode-mismatch-shared", "predict-eval --table mlpf --mode max --known 0.5", "max"),
    ("metric-missing-csv", "simulate --table {T} --algorithm hyperband", "--metric"),
    ("table-unknown-name", "simulate --table mlpff --algorithm hyperband", "mlpff"),
    ("known-zero", "predict-eval --table mlpf --known 0", "--known"),
    ("known-one", "predict-eval --table mlpf --known 1", "--known"),
    ("known-text", "predict-eval --table mlpf --known half", "--known"),
    ("known-nan", "predict-eval --table mlpf --known nan", "--known"),
    ("target-epoch-beyond", "predict-eval --table mlpf --known 0.5 --target-epoch 1000 --seeds 0", "1000"),
    ("target-epoch-zero", "predict-eval --table mlpf --known 0.5 --target-epoch 0 --seeds 0", "target"),
    (
        "predictor-param-bad",
        "predict-eval --table mlpf --known 0.5 --predictor qsvr --param num_reads=x --seeds 0",
        "num_reads",
    ),
    ("predictor-param-unknown", "predict-eval --table mlpf --known 0.5 --predictor svr --param Cc=1 --seeds 0", "Cc"),
    (
        "sampler-unknown",
        "predict-eval --table mlpf --known 0.5 --predictor qsvr --param sampler=quantum --seeds 0",
        "quantum",
    ),
    ("events-zero", "generate-data --out d --events 0 --seed 0", "--events"),
    ("events-text", "generate-data --out d --events many --seed 0", "--events"),
    ("seed-negative-data", "generate-data --out d --events 10 --seed -1", "--seed"),
    ("shards-zero", "generate-data --out d --events 10 --seed 0 --shards 0", "--shards"),
    ("val-fraction-one", "generate-data --out d --events 10 --seed 0 --val-fraction 1", "--val-fraction"),
    ("compression-unknown", "generate-data --out d --events 10 --seed 0 --compression zip", "zip"),
    ("preset-unknown", "generate-data --out d --events 10 --seed 0 --preset lhc", "lhc"),
    ("generator-knob-unknown", "generate-data --out d --events 10 --seed 0 --param pu_maen=3", "pu_maen"),
    ("data-workers-zero", "generate-data --out d --events 10 --seed 0 --workers 0", "--workers"),
    ("convert-extension", "convert mlpf --out t.txt", "t.txt"),
    ("convert-missing-source", "convert nope.npz --out t.csv", "nope.npz"),
    ("convert-csv-without-metric", "convert {T} --out t.csv", "--metric"),
    ("convert-task-unknown", "convert taskset --task nosuchtask --out t.csv", "nosuchtask"),
    ("convert-events-missing", "convert-events nope.parquet --out d", "nope.parquet"),
    ("convert-events-not-parquet", "convert-events s.yaml --out d", "s.yaml"),
    ("convert-events-val-fraction", "convert-events s.yaml --out d --val-fraction 2", "--val-fraction"),
    ("validate-ranks-zero", "validate s.yaml --ranks 0", "rank"),
    ("validate-ranks-one", "validate s.yaml --ranks 1", "rank"),
    ("status-missing", "status nowhere", "nowhere"),
    ("report-missing", "report nowhere", "nowhere"),
    ("resume-missing", "run --resume nowhere", "nowhere"),
    ("run-nothing", "run", "study"),
]


def _cli_case(argv: str, fragment: str):
    def run(box: Box) -> list[str]:
        box.study()
        args = [a.replace("{T}", TABLE) if a != "''" else "" for a in argv.split()]
        return refused_writing_nothing(box, lambda: box.cli(*args), fragment)

    return run


for _name, _argv, _fragment in CLI_CASES:
    case("command line", _name)(_cli_case(_argv, _fragment))


# == curve tables ===================================================================================================
def _gz(data: bytes) -> bytes:
    return gzip.compress(data)


TABLE_CASES = [
    ("empty", "t.csv", b"", "is empty"),
    ("header-only", "t.csv", b"a,loss_1,loss_2\n", "loss"),
    ("no-metric-columns", "t.csv", b"a,acc_1,acc_2\n1,2,3\n", "loss"),
    ("short-row", "t.csv", b"a,loss_1,loss_2\n1,0.5,0.4\n2,0.3\n", "line 3"),
    ("long-row", "t.csv", b"a,loss_1,loss_2\n1,0.5,0.4,9\n", "line 2"),
    ("epoch-gap", "t.csv", b"a,loss_1,loss_3\n1,0.5,0.4\n", "consecutive"),
    ("all-nan", "t.csv", b"a,loss_1,loss_2\n1,nan,0.4\n2,x,inf\n", "loss"),
    (
        "duplicate-columns",
        "t.csv",
        b"a,a,loss_1,loss_2\n" + b"".join(b"%d,%d,0.5,0.4\n" % (i, -i) for i in range(20)),
        "'a'",
    ),
    (
        "duplicate-metric-columns",
        "t.csv",
        b"a,loss_1,loss_1\n" + b"".join(b"%d,0.5,0.4\n" % i for i in range(20)),
        "loss_1",
    ),
    ("binary", "t.csv", b"garbage\x00\xff\xfe", "UTF-8"),
    ("gzip-garbage", "t.csv.gz", b"\x1f\x8b\x08\x00garbage", "gzip"),
    ("gzip-truncated", "t.csv.gz", None, "gzip"),
    ("gzip-of-binary", "t.csv.gz", _gz(b"\x00\xff\xfe\x00"), "UTF-8"),
    ("missing", "absent.csv", "absent", "does not exist"),
    ("directory", "dir.csv", "dir", "dir.csv"),
    ("h5-foreign", "t.h5", os.urandom(4096), "HDF5"),
    ("h5-truncated", "t.h5", "h5-half", "HDF5"),
    ("h5-not-a-store", "t.h5", "h5-other", "curve store"),
]


def _table_case(name, data, fragment, command):
    def run(box: Box) -> list[str]:
        path = box.root / name
        if data == "absent":
            pass
        elif data == "dir":
            path.mkdir()
        elif data is None:
            path.write_bytes(Path(TABLE).read_bytes()[:3000])
        elif data in ("h5-half", "h5-other"):
            import h5py

            if data == "h5-other":
                with h5py.File(path, "w") as f:
                    f["x"] = [1, 2, 3]
            else:
                full = box.root / "full.h5"
                assert box.cli("convert", "mlpf", "--out", full).returncode == 0
                path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
                full.unlink()
        else:
            path.write_bytes(data)
        if command == "simulate":
            argv = [
                "simulate",
                "--table",
                path,
                "--metric",
                "loss",
                "--algorithm",
                "hyperband",
                "--R",
                "2",
                "--eta",
                "2",
            ]
        else:
            argv = ["predict-eval", "--table", path, "--metric", "loss", "--known", "0.5", "--seeds", "0"]
        if name.endswith(".h5"):
            argv = [a for a in argv if a not in ("--metric", "loss")]
        return refused_writing_nothing(box, lambda: box.cli(*argv), fragment)

    return run


for _name, _file, _data, _fragment in TABLE_CASES:
    for _command in ("simulate", "predict-eval"):
        case("curve tables", f"{_name} ({_command})")(_table_case(_file, _data, _fragment, _command))


# == output places ==================================================================================================
_FINISHED: dict = {}
_FINISHED_LOCK = threading.Lock()


def finished_study() -> dict:
    """One finished study shared by the report cases (read only)."""
    with _FINISHED_LOCK:
        if not _FINISHED:
            tmp = Path(tempfile.mkdtemp(prefix="hpoq-battery-finished-"))
            box = Box(tmp)
            table = tmp / "table.csv.gz"
            shutil.copy(TABLE, table)
            study = box.study(trainer={"name": "table", "params": {"table": str(table)}})
            proc = box.mpi(3, "run", study, "--out", tmp / "out")
            if proc.returncode:
                raise RuntimeError(proc.stderr[-500:])
            _FINISHED.update(root=tmp, out=tmp / "out", study=Path(study), table=table)
        return _FINISHED


def _out_argv(box: Box, command: str, target: Path, as_file: bool) -> list:
    if command == "run":
        return ["mpi", "run", box.study(), "--out", target]
    if command == "report":
        return ["report", finished_study()["out"], "--out", target / "report.html" if not as_file else target]
    if command == "convert":
        return ["convert", "mlpf", "--out", target / "trials.csv" if not as_file else target]
    if command == "generate-data":
        return ["generate-data", "--out", target, "--events", "20", "--seed", "0"]
    raise KeyError(command)


OUT_COMMANDS = ("run", "report", "convert", "generate-data")


def _out_case(command: str, place: str):
    def run(box: Box) -> list[str]:
        home = box.root / "home"
        home.mkdir()
        as_file = place in ("user-file", "symlink-to-user-file")
        if place == "user-file":
            target = home / "mine.csv"
            target.write_text("the user's table\n")
        elif place == "user-dir":
            target = user_dir(home / "mine")
        elif place == "symlink-to-user-file":
            (home / "real.csv").write_text("the user's table\n")
            target = home / "link.csv"
            target.symlink_to(home / "real.csv")
        elif place == "symlink-to-user-dir":
            user_dir(home / "real")
            target = home / "link"
            target.symlink_to(home / "real")
        elif place == "under-a-file":
            (home / "file").write_text("x")
            target = home / "file" / "out.csv"
            as_file = True
        elif place == "read-only-disk":
            target = box.tmpfs("home/ro", "1m", readonly=True) / "out.csv"
            as_file = command in ("convert", "report")
        elif place == "full-disk":
            disk = box.tmpfs("home/full", "64k")
            subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=4k"], capture_output=True)
            target = disk / ("out.csv" if command in ("convert", "report") else "out")
            as_file = command in ("convert", "report")
        elif place == "immutable-dir":
            target = home / "imm"
            target.mkdir()
            if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode:
                raise Skip("chattr +i not allowed here")
            if command in ("convert", "report"):
                target, as_file = target / "out.csv", True
        else:
            raise KeyError(place)
        argv = _out_argv(box, command, target, as_file)
        runner = (lambda: box.mpi(3, *argv[1:])) if argv[0] == "mpi" else (lambda: box.cli(*argv))
        watch = [home] + ([finished_study()["out"]] if command == "report" else [])
        return refused_writing_nothing(box, runner, watch=watch)

    return run


OUT_PLACES = (
    "user-file",
    "user-dir",
    "symlink-to-user-file",
    "symlink-to-user-dir",
    "under-a-file",
    "read-only-disk",
    "full-disk",
    "immutable-dir",
)
for _command in OUT_COMMANDS:
    for _place in OUT_PLACES:
        case("output places", f"{_command} --out {_place}")(_out_case(_command, _place))


def _report_onto(what: str):
    def run(box: Box) -> list[str]:
        fin = finished_study()
        target = {
            "journal": fin["out"] / "journal.jsonl",
            "trials.csv": fin["out"] / "trials.csv",
            "best.yaml": fin["out"] / "best.yaml",
            "curves.h5": fin["out"] / "curves.h5",
            "study file": fin["study"],
            "table": fin["table"],
            "checkpoints": fin["out"] / "checkpoints" / "r.html",
            "figures in checkpoints": fin["out"] / "checkpoints.html",
        }[what]
        return refused_writing_nothing(box, lambda: box.cli("report", fin["out"], "--out", target), watch=[fin["root"]])

    return run


for _what in (
    "journal",
    "trials.csv",
    "best.yaml",
    "curves.h5",
    "study file",
    "table",
    "checkpoints",
    "figures in checkpoints",
):
    case("output places", f"report --out the study's {_what}")(_report_onto(_what))


@case("output places", "convert --out its own source")
def _(box):
    src = box.root / "t.csv.gz"
    shutil.copy(TABLE, src)
    return refused_writing_nothing(
        box, lambda: box.cli("convert", src, "--metric", "loss", "--out", src, "--overwrite"), "input"
    )


@case("output places", "convert-events --out a user's directory")
def _(box):
    user_dir(box.root / "mine")
    (box.root / "in.parquet").write_bytes(b"PAR1")
    return refused_writing_nothing(
        box, lambda: box.cli("convert-events", box.root / "in.parquet", "--out", box.root / "mine"), "not empty"
    )


@case("output places", "run --resume a user's directory")
def _(box):
    user_dir(box.root / "mine")
    return refused_writing_nothing(box, lambda: box.mpi(3, "run", "--resume", box.root / "mine"), "nothing to resume")


# == broken study directories =======================================================================================
def journal_lines() -> list[str]:
    fin = finished_study()
    return (fin["out"] / "journal.jsonl").read_text().splitlines()


def _damage(how: str) -> bytes | None:
    lines = journal_lines()
    half = len(lines) // 2
    recs = [json.loads(ln) for ln in lines]
    result = next(i for i, r in enumerate(recs) if r["type"] == "result")

    def dump(rs) -> bytes:
        return ("\n".join(json.dumps(r) for r in rs) + "\n").encode()

    if how == "garbage-middle-line":
        return ("\n".join(lines[:half] + ["{not json"] + lines[half + 1 :]) + "\n").encode()
    if how == "binary-middle-line":
        return (
            ("\n".join(lines[:half]) + "\n").encode()
            + b"\xff\xfe\x00\n"
            + ("\n".join(lines[half + 1 :]) + "\n").encode()
        )
    if how == "no-header":
        return ("\n".join(lines[1:]) + "\n").encode()
    if how == "empty":
        return b""
    if how == "json-array-line":
        return ("\n".join(lines[:half] + ["[1, 2]"] + lines[half + 1 :]) + "\n").encode()
    if how == "unknown-version":
        recs[0]["version"] = 99
        return dump(recs)
    if how == "no-version":
        recs[0].pop("version")
        return dump(recs)
    if how == "text-metrics":
        recs[result]["metrics"] = ["low"]
        return dump(recs)
    if how == "null-metric":
        recs[result]["metrics"] = [None]
        return dump(recs)
    if how == "text-trial-id":
        recs[result]["trial_id"] = "seven"
        return dump(recs)
    if how == "metrics-missing":
        recs[result].pop("metrics")
        return dump(recs)
    if how == "config-not-mapping":
        i = next(i for i, r in enumerate(recs) if r["type"] == "config")
        recs[i]["config"] = "lr=0.1"
        return dump(recs)
    raise KeyError(how)


DAMAGES = [
    "garbage-middle-line",
    "binary-middle-line",
    "no-header",
    "empty",
    "json-array-line",
    "unknown-version",
    "no-version",
    "text-metrics",
    "null-metric",
    "text-trial-id",
    "metrics-missing",
    "config-not-mapping",
]
DAMAGE_FRAGMENT = {
    "garbage-middle-line": "line",
    "binary-middle-line": "line",
    "no-header": "header",
    "empty": "header",
    "json-array-line": "line",
    "unknown-version": "line 1",
    "no-version": "line 1",
    "text-metrics": "line",
    "null-metric": "line",
    "text-trial-id": "line",
    "metrics-missing": "line",
    "config-not-mapping": "line",
}


def _damaged_case(how: str, command: str):
    def run(box: Box) -> list[str]:
        out = box.root / "out"
        out.mkdir()
        (out / "journal.jsonl").write_bytes(_damage(how))
        if command == "resume":
            return refused_writing_nothing(box, lambda: box.mpi(3, "run", "--resume", out), DAMAGE_FRAGMENT[how])
        return refused_writing_nothing(box, lambda: box.cli(command, out), DAMAGE_FRAGMENT[how])

    return run


for _how in DAMAGES:
    for _command in ("status", "report", "resume"):
        case("broken study directories", f"{_how} ({_command})")(_damaged_case(_how, _command))


@case("broken study directories", "torn-last-line (status says resumable)")
def _(box):
    lines = journal_lines()
    out = box.root / "out"
    out.mkdir()
    (out / "journal.jsonl").write_text("\n".join(lines[: len(lines) // 2]) + "\n" + lines[len(lines) // 2][:20])
    proc = box.cli("status", out)
    return [] if proc.returncode == 3 and "Traceback" not in proc.stderr else [f"status exit {proc.returncode}"]


for _what in ("missing", "a file", "no journal", "journal is a directory", "unstarted journal"):

    def _run(box, what=_what):
        out = box.root / "out"
        if what == "a file":
            out.write_text("x")
        elif what == "no journal":
            out.mkdir()
        elif what == "journal is a directory":
            (out / "journal.jsonl").mkdir(parents=True)
        elif what == "unstarted journal":
            out.mkdir()
            (out / "journal.jsonl").write_bytes(b"")
        problems = []
        for command in ("status", "report"):
            problems += [f"{command}: {p}" for p in refused_writing_nothing(box, lambda c=command: box.cli(c, out))]
        problems += [f"resume: {p}" for p in refused_writing_nothing(box, lambda: box.mpi(3, "run", "--resume", out))]
        return problems

    case("broken study directories", f"directory {_what} (status, report, resume)")(_run)


# == runtime faults =================================================================================================
def _journal_has(out: Path, text: str, count: int = 1) -> bool:
    path = out / "journal.jsonl"
    return path.exists() and path.read_text().count(text) >= count


def _stop_at(box: Box, out: Path, study: str, sig, at_results: int, resume: bool = False):
    proc = box.start(3, *(["run", "--resume", out] if resume else ["run", study, "--out", out]))
    try:
        wait_for(lambda: _journal_has(out, '"type":"result"', at_results), proc)
        pid = next(r for r in reversed(records(out)) if r["type"] in ("header", "resume"))["pid"]
        os.kill(pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc


def _sigkill_repeatedly(times: int):
    def run(box: Box) -> list[str]:
        reference = reference_end(box, trainer={"name": "table", "params": {"table": TABLE, "sleep": 0.02}})
        study = box.study(trainer={"name": "table", "params": {"table": TABLE, "sleep": 0.02}})
        out = box.root / "out"
        problems = []
        for k in range(times):
            n = len([r for r in records(out) if r["type"] == "result"]) if out.exists() else 0
            if out.exists() and records(out)[-1].get("type") == "end":
                break
            _stop_at(box, out, study, signal.SIGKILL, n + 2, resume=k > 0)
        last = box.mpi(3, "run", "--resume", out)
        problems += no_problems(last)
        problems += same_answer(out, reference)
        resumes = [r for r in records(out) if r["type"] == "resume"]
        if len(resumes) < min(times, 2):
            problems.append(f"only {len(resumes)} resumes")
        return problems

    return run


case("runtime faults", "SIGKILL of the master once, then resume")(_sigkill_repeatedly(1))
case("runtime faults", "SIGKILL of the master five times in a row, then resume")(_sigkill_repeatedly(5))


def _signal_then_resume(sig):
    def run(box: Box) -> list[str]:
        params = {"name": "table", "params": {"table": TABLE, "sleep": 0.02}}
        reference = reference_end(box, trainer=params)
        study = box.study(trainer=params)
        out = box.root / "out"
        proc = _stop_at(box, out, study, sig, 3)
        problems = [] if proc.returncode == 0 else [f"the stopped run exit {proc.returncode}"]
        err = proc.stderr.read()
        if "Traceback" in err or "run --resume" not in err:
            problems.append(f"the stop did not say how to continue: {err.strip()[-200:]!r}")
        if box.cli("status", out).returncode != 3:
            problems.append("status does not say resumable")
        problems += no_problems(box.mpi(3, "run", "--resume", out))
        return problems + same_answer(out, reference)

    return run


case("runtime faults", "SIGTERM, then resume")(_signal_then_resume(signal.SIGTERM))
case("runtime faults", "SIGUSR1, then resume")(_signal_then_resume(signal.SIGUSR1))


def _faulty_threshold(box: Box, fault: str) -> tuple[float, int]:
    """A dropout threshold that exactly one sampled configuration exceeds (GOOD's seed), and that row."""
    return top_value_threshold(
        box.study(name="probe.yaml", trainer={"name": FAULTY, "params": {"table": TABLE, "fault": fault}})
    )


@case("runtime faults", "a unit that hangs, with unit_timeout")
def _(box):
    above, _ = _faulty_threshold(box, "hang")
    study = box.study(
        trainer={"name": FAULTY, "params": {"table": TABLE, "fault": "hang", "above": above}},
        unit_timeout=2,
        max_retries=1,
    )
    out, problems = box.root / "out", []
    procs = [box.mpi(3, "run", study, "--out", out)]
    while box.cli("status", out).returncode == 3 and len(procs) < 3:
        procs.append(box.mpi(3, "run", "--resume", out))
    if box.cli("status", out).returncode != 0:
        problems.append(f"not finished after {len(procs)} invocations")
    failed = [r for r in records(out) if r["type"] == "failure" and r.get("final")]
    if len(failed) != 1 or failed[0]["kind"] != "timeout":
        problems.append(f"final failures {[(r['kind']) for r in failed]}, expected one timeout")
    return problems


@case("runtime faults", "a rank that dies (os._exit)")
def _(box):
    above, _ = _faulty_threshold(box, "exit")
    study = box.study(
        trainer={"name": FAULTY, "params": {"table": TABLE, "fault": "exit", "above": above}}, max_retries=1
    )
    out, problems = box.root / "out", []
    procs = [box.mpi(3, "run", study, "--out", out)]
    while box.cli("status", out).returncode == 3 and len(procs) < 3:
        procs.append(box.mpi(3, "run", "--resume", out))
    if box.cli("status", out).returncode != 0:
        problems.append(f"not finished after {len(procs)} invocations")
    return problems


@case("runtime faults", "two masters on one directory")
def _(box):
    study = box.study(trainer={"name": "table", "params": {"table": TABLE, "sleep": 0.03}})
    out = box.root / "out"
    first = box.start(3, "run", study, "--out", out)
    try:
        wait_for(lambda: _journal_has(out, '"type":"result"'), first)
        second = box.mpi(2, "run", "--resume", out)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    problems = refused(second, "in use by another master")
    if first.returncode != 0 or records(out)[-1].get("status") != "finished":
        problems.append("the first master did not finish intact")
    return problems


@case("runtime faults", "a changed table on resume")
def _(box):
    table = box.root / "table.csv.gz"
    shutil.copy(TABLE, table)
    study = box.study(trainer={"name": "table", "params": {"table": str(table), "sleep": 0.02}})
    out = box.root / "out"
    _stop_at(box, out, study, signal.SIGTERM, 2)
    lines = gzip.decompress(table.read_bytes()).decode().splitlines()
    table.write_bytes(gzip.compress(("\n".join([lines[0]] + lines[:0:-1]) + "\n").encode()))
    run = lambda: box.mpi(3, "run", "--resume", out)  # noqa: E731
    problems = refused_writing_nothing(box, run, "changed", watch=[out], ignore=(".hpoq.lock",))
    problems += no_problems(box.mpi(3, "run", "--resume", out, "--allow-changed-inputs"))
    return problems


@case("runtime faults", "the disk fills mid-run, then space is freed")
def _(box):
    param, above = early_threshold(
        box.study(name="probe.yaml", trainer={"name": FAULTY, "params": {"table": TABLE, "fault": "fill"}})
    )
    study = box.study(
        trainer={"name": FAULTY, "params": {"table": TABLE, "fault": "fill", "param": param, "above": above}}
    )
    disk = box.tmpfs("disk", "4m")
    out = disk / "out"
    full = box.mpi(4, "run", study, "--out", out)
    problems = refused(full, "disk full", logged=True)
    (out / "filler.bin").unlink()
    (out / "filler.bin").mkdir()
    problems += no_problems(box.mpi(4, "run", "--resume", out))
    if records(out)[-1].get("epochs") != REFERENCE_EPOCHS:
        problems.append(f"epochs {records(out)[-1].get('epochs')} != {REFERENCE_EPOCHS}")
    return problems


@case("runtime faults", "a start on a full disk, then space is freed")
def _(box):
    disk = box.tmpfs("disk", "512k")
    study = box.study()
    problems = refused_writing_nothing(box, lambda: box.mpi(3, "run", study, "--out", disk / "out"), "No space left")
    subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
    problems += no_problems(box.mpi(3, "run", study, "--out", disk / "out"))
    return problems


@case("runtime faults", "SIGKILL of the master before its journal header, then rerun")
def _(box):
    strace = shutil.which("strace")
    if strace is None:
        raise Skip("no strace")
    study = box.study()
    out = box.root / "out"
    python = [sys.executable, "-m", "hpoq.main", "run", study, "--out", str(out)]
    kill = [strace, "-qq", "-f", "-o", "/dev/null", "-e", "trace=fallocate", "-e", "inject=fallocate:signal=KILL"]
    subprocess.run(
        [mpiexec_path(), "-n", "1", *kill, *python, ":", "-n", "2", *python],
        capture_output=True,
        env=box.env,
        timeout=60,
    )
    problems = refused(box.mpi(3, "run", "--resume", out), "never started")
    problems += no_problems(box.mpi(3, "run", study, "--out", out))
    return problems


@case("runtime faults", "a torn journal line, then resume")
def _(box):
    params = {"name": "table", "params": {"table": TABLE, "sleep": 0.02}}
    reference = reference_end(box, trainer=params)
    study = box.study(trainer=params)
    out = box.root / "out"
    _stop_at(box, out, study, signal.SIGKILL, 3)
    with open(out / "journal.jsonl", "ab") as fh:
        fh.write(b'{"type":"result","t":1,"unit_id":9')  # the master died mid-write
    return no_problems(box.mpi(3, "run", "--resume", out)) + same_answer(out, reference)


@case("runtime faults", "resume on a read-only disk")
def _(box):
    study = box.study()
    disk = box.tmpfs("disk", "8m")
    out = disk / "out"
    proc = _stop_at(box, out, study, signal.SIGTERM, 2)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    del proc
    return refused_writing_nothing(box, lambda: box.mpi(3, "run", "--resume", out), "Read-only", watch=[disk])


@case("runtime faults", "resume of a finished study")
def _(box):
    study = box.study()
    out = box.root / "out"
    box.mpi(3, "run", study, "--out", out)
    before = (out / "journal.jsonl").read_bytes()
    proc = box.mpi(3, "run", "--resume", out)
    problems = no_problems(proc)
    if "already finished" not in proc.stderr:
        problems.append("does not say the study already finished")
    if (out / "journal.jsonl").read_bytes() != before:
        problems.append("the journal changed")
    return problems


@case("runtime faults", "trials.csv reasons after SIGKILL and resume")
def _(box):
    study = box.study(trainer={"name": "table", "params": {"table": TABLE, "sleep": 0.05}})
    out = box.root / "out"
    _stop_at(box, out, study, signal.SIGKILL, 2)
    problems = no_problems(box.mpi(3, "run", "--resume", out))
    import csv

    with open(out / "trials.csv") as fh:
        stale = [
            r["trial_id"]
            for r in csv.DictReader(fh)
            if r["status"] in ("done", "pruned") and r["reason"].startswith("lost")
        ]
    return problems + ([f"trials {stale} completed but keep a 'lost' reason"] if stale else [])


@case("runtime faults", "status after SIGKILL when the master's pid is reused")
def _(box):
    study = box.study(trainer={"name": "table", "params": {"table": TABLE, "sleep": 0.1}})
    out = box.root / "out"
    _stop_at(box, out, study, signal.SIGKILL, 2)
    pid = records(out)[0]["pid"]
    impostor = None
    for _ in range(200):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
                fh.write(str(pid - 1))
        except OSError:
            raise Skip("cannot choose a pid here") from None
        child = subprocess.Popen(["sleep", "60"])
        if child.pid == pid:
            impostor = child
            break
        child.kill()
        child.wait()
    if impostor is None:
        raise Skip("the pid did not land")
    try:
        facts = json.loads(box.cli("status", out, "--json").stdout)
    finally:
        impostor.kill()
        impostor.wait()
    return [] if facts["status"] != "running" else ["status reads 'running' for a killed study"]


# == secrets ========================================================================================================
ENV_SECRET, CONF_SECRET, STUDY_SECRET = "env-secret-value-0451", "conf-secret-plain-7741", "study-secret-key-2208"
SECRETS = (ENV_SECRET, CONF_SECRET, STUDY_SECRET)


def _secret_env(box: Box, endpoint: str) -> dict:
    conf = box.root / "dwave.conf"
    conf.write_text(f"[defaults]\ntoken = {CONF_SECRET}\nendpoint = {endpoint}\n")
    return dict(box.env, HPOQ_TEST_API_KEY=ENV_SECRET, DWAVE_CONFIG_FILE=str(conf))


def leaks(*texts: str) -> list[str]:
    return [f"{s} printed" for s in SECRETS if any(s in t for t in texts)]


def _secret_cli_case(argv_of):
    def run(box: Box) -> list[str]:
        with echoing_endpoint() as endpoint:
            env = _secret_env(box, endpoint)
            proc = box.cli(*argv_of(box), env=env)
        return leaks(proc.stdout, proc.stderr)

    return run


QSVR_EVAL = "predict-eval --table mlpf --known 0.5 --seeds 0 --predictor qsvr".split()
DEBUG_ALL = ["--log-level", "DEBUG", "--log-level-all"]
SECRET_CLI = {
    "env secret echoed by a --param error": lambda b: [*QSVR_EVAL, "--param", f"num_reads={ENV_SECRET}"],
    "D-Wave style token echoed by a --param error": lambda b: [
        *QSVR_EVAL,
        "--param",
        "num_reads=DEV-" + "a" * 16 + "3333",
    ],
    "dwave.conf token echoed by a 401 at DEBUG (--log-level-all)": lambda b: [
        *DEBUG_ALL,
        *QSVR_EVAL,
        "--param",
        "sampler=dwave",
    ],
    "dwave.conf token at DEBUG (hpoq loggers only)": lambda b: [
        "--log-level",
        "DEBUG",
        *QSVR_EVAL,
        "--param",
        "sampler=dwave",
    ],
    "study secret in validate's output": lambda b: ["validate", b.study(trainer=_keyed())],
    "study secret in a bad trainer parameter": lambda b: ["validate", b.study(trainer=_keyed(name="table"))],
    "study secret as a bad value": lambda b: ["validate", b.study(trainer=_keyed(sleep=STUDY_SECRET))],
}


def _keyed(name: str = KEYED, **params) -> dict:
    return {"name": name, "params": {"table": TABLE, "api_key": STUDY_SECRET, **params}}


for _name, _argv in SECRET_CLI.items():
    case("secrets", _name)(_secret_cli_case(_argv))


@case("secrets", "D-Wave token of the environment at DEBUG")
def _(box):
    token = "DEV-0123456789abcdef0123456789abcdef01234567"
    env = dict(box.env, DWAVE_API_TOKEN=token, DWAVE_API_ENDPOINT="file:///nonexistent/sapi/v2/")
    proc = box.cli(*DEBUG_ALL, *QSVR_EVAL, "--param", "sampler=dwave", env=env)
    return ["token printed"] if "0123456789abcdef" in proc.stdout + proc.stderr else []


@case("secrets", "a plugin that echoes its api_key and the env secret when it fails: run, status, report")
def _(box):
    with echoing_endpoint() as endpoint:
        env = _secret_env(box, endpoint)
        study = box.study(
            trainer={"name": KEYED, "params": {"table": TABLE, "api_key": STUDY_SECRET, "refuse_above": 0.45}}
        )
        out = box.root / "out"
        procs = [box.mpi(3, "run", study, "--out", out, env=env)]
        procs += [box.cli(c, out, env=env) for c in ("status", "report")] + [box.cli("status", out, "--json", env=env)]
    problems = leaks(*[p.stdout + p.stderr for p in procs])
    if not [r for r in records(out) if r["type"] == "failure"]:
        problems.append("the plugin never failed: the case tested nothing")
    header, *rest = (out / "journal.jsonl").read_text().splitlines()
    problems += [f"journal (not the header): {p}" for p in leaks(*rest)]
    for path in out.rglob("*"):
        if path.is_file() and path.name != "journal.jsonl":
            problems += [f"{path.name}: {p}" for p in leaks(path.read_bytes().decode("latin-1"))]
    return problems


@case("secrets", "a plugin's api_key under mpiexec bad input")
def _(box):
    study = box.study(
        trainer={"name": KEYED, "params": {"table": TABLE, "api_key": STUDY_SECRET, "refuse_above": "x" + STUDY_SECRET}}
    )
    proc = box.mpi(3, "run", study, env=dict(box.env, HPOQ_TEST_API_KEY=ENV_SECRET))
    return leaks(proc.stdout, proc.stderr) + ([] if proc.returncode == 2 else [f"exit {proc.returncode}"])


# == running the battery =============================================================================================
CATEGORIES = [
    "study files",
    "study files under mpiexec",
    "command line",
    "curve tables",
    "output places",
    "broken study directories",
    "runtime faults",
    "secrets",
]


def run_case(c: Case) -> tuple[Case, str, list[str]]:
    root = Path(tempfile.mkdtemp(prefix="hpoq-battery-"))
    box = Box(root)
    try:
        problems = c.run(box)
        outcome = "defect" if problems else "held"
    except Skip as exc:
        problems, outcome = [str(exc)], "skipped"
    except Exception as exc:  # noqa: BLE001 -- a case that crashes is a defect of the case or of hpoq: shown
        problems, outcome = [f"the case itself failed: {type(exc).__name__}: {str(exc)[:300]}"], "defect"
    finally:
        box.close()
        subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return c, outcome, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=CATEGORIES, help="run only this category (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1; each MPI case uses 3 ranks)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    chosen = [c for c in CASES if not args.only or c.category in args.only]
    if args.list:
        for c in chosen:
            print(f"{c.category}: {c.name}")
        return 0
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_case, chosen))
    rows = []
    for cat in CATEGORIES:
        mine = [r for r in results if r[0].category == cat]
        if mine:
            rows.append(
                (
                    cat,
                    len(mine),
                    sum(o == "held" for _, o, _ in mine),
                    sum(o == "defect" for _, o, _ in mine),
                    sum(o == "skipped" for _, o, _ in mine),
                )
            )
    print(f"Bad-input and fault battery: {len(results)} cases, {time.monotonic() - t0:.0f} s\n")
    print("| category | tried | held | defects | skipped |")
    print("|---|---:|---:|---:|---:|")
    for cat, tried, held, bad, skipped in rows:
        print(f"| {cat} | {tried} | {held} | {bad} | {skipped} |")
    total = [sum(r[i] for r in rows) for i in range(1, 5)]
    print(f"| **all** | {total[0]} | {total[1]} | {total[2]} | {total[3]} |")
    defects = [(c, p) for c, o, p in results if o == "defect"]
    if defects:
        print("\nDefects:")
        for c, problems in defects:
            print(f"- {c.category} / {c.name}: {'; '.join(problems)[:400]}")
    skipped = [(c, p) for c, o, p in results if o == "skipped"]
    if skipped:
        print("\nSkipped: " + "; ".join(f"{c.name} ({p[0]})" for c, p in skipped))
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
