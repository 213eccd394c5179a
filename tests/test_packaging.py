"""Package boundaries: MLPF (torch, fastjet) is the extra ``hpoq[mlpf]``; the core imports and works without it;
``python_requires`` says what the code needs.

"Without torch" is checked in a child interpreter whose import system refuses ``torch`` and ``fastjet``
(:data:`BLOCK`), as on an install without the extra. ``HPOQ_WITHOUT_TORCH=1 pytest tests`` runs the whole
suite that way (conftest.py): the MLPF tests skip, every other test must pass.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: imports of these raise ImportError in the child interpreter, as on an install without hpoq[mlpf]
BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "fastjet"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""
#: standard-library features newer than 3.10, by the version that brought them (what python_requires must cover)
NEWER_FEATURES = {
    (3, 11): [r"\bStrEnum\b", r"\bimport tomllib\b", r"\btyping\.Self\b", r"\bExceptionGroup\b", r"\bexcept\*"],
    (3, 12): [r"\bitertools\.batched\b", r"\bfrom itertools import .*\bbatched\b", r"\btyping\.override\b"],
    (3, 13): [r"\bcopy\.replace\b", r"\bwarnings\.deprecated\b"],
}


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def requirement_names(block: str) -> set[str]:
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    return {re.split(r"[<>=!~\[ ;]", line)[0].lower() for line in lines if line}


def python_floor() -> tuple[int, int]:
    spec = setup_cfg()["options"]["python_requires"].strip()
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups()
    return int(major), int(minor)


def sources() -> list[Path]:
    return sorted((REPO / "hpoq").rglob("*.py"))


def test_torch_and_fastjet_are_the_mlpf_extra_and_nothing_else_requires_them():
    cfg = setup_cfg()
    core = requirement_names(cfg["options"]["install_requires"])
    assert not core & {"torch", "fastjet"}
    extras = {name: requirement_names(block) for name, block in cfg["options.extras_require"].items()}
    assert {"torch", "fastjet"} <= extras["mlpf"]
    assert all(not reqs & {"torch", "fastjet"} for name, reqs in extras.items() if name != "mlpf")


def test_python_requires_is_what_the_code_needs():
    """The floor of python_requires is the newest feature the code uses: it parses with that grammar, every
    newer standard-library feature it imports appears in NEWER_FEATURES at or below the floor, and ruff checks
    against the same version."""
    floor = python_floor()
    needed = (3, 10)
    for path in sources():
        text = path.read_text(encoding="utf-8")
        ast.parse(text, filename=str(path), feature_version=floor)  # a SyntaxError: syntax newer than the floor
        for version, patterns in NEWER_FEATURES.items():
            if any(re.search(p, text) for p in patterns):
                needed = max(needed, version)
    assert needed == floor, f"the code needs Python {needed}, python_requires says >={floor}"
    assert sys.version_info[:2] >= floor
    target = re.search(r'target-version\s*=\s*"py(\d)(\d+)"', (REPO / "pyproject.toml").read_text()).groups()
    assert (int(target[0]), int(target[1])) == floor


def run_without_torch(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def test_the_core_imports_without_torch():
    proc = run_without_torch(
        """
import importlib, pkgutil, sys, json
import hpoq
skipped, imported = [], []
for info in pkgutil.walk_packages(hpoq.__path__, "hpoq."):
    if info.name.startswith("hpoq.mlpf") or info.name == "hpoq.__main__":
        skipped.append(info.name)
        continue
    importlib.import_module(info.name)
    imported.append(info.name)
assert "torch" not in sys.modules and "fastjet" not in sys.modules
print(json.dumps(imported))
"""
    )
    assert proc.returncode == 0, proc.stderr
    imported = set(json.loads(proc.stdout))
    assert {"hpoq.schedulers", "hpoq.runtime.master", "hpoq.predict.qsvr", "hpoq.simulate", "hpoq.trainers.mlpf"} <= (
        imported
    )


def test_simulate_and_validate_run_without_torch(tmp_path, mlpf_table):
    study = tmp_path / "s.yaml"
    study.write_text(
        f"algorithm: {{name: hyperband, R: 9, eta: 3}}\ntrainer: {{name: table, params: {{table: {mlpf_table}}}}}\n"
    )
    proc = run_without_torch(
        f"""
from hpoq.main import main
assert main(["simulate", "--table", "mlpf", "--algorithm", "default", "--R", "9", "--eta", "3", "--json"]) == 0
assert main(["validate", {str(study)!r}, "--build"]) == 0
import sys
assert "torch" not in sys.modules
"""
    )
    assert proc.returncode == 0, proc.stderr
    assert '"valid": true' in proc.stdout


def test_the_mlpf_trainer_without_torch_is_one_line_naming_the_extra(tmp_path):
    proc = run_without_torch(
        f"""
from hpoq.errors import ConfigError
from hpoq.trainers import make_trainer
try:
    make_trainer("mlpf", {{"data": {str(tmp_path)!r}}})
except ConfigError as exc:
    print(exc)
else:
    raise SystemExit("built without torch")
"""
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "trainer 'mlpf' needs the missing package 'torch': pip install 'hpoq[mlpf]'"


@pytest.mark.skipif(sys.platform != "linux", reason="the import blocker is tested on Linux CI")
def test_the_blocker_blocks():
    proc = run_without_torch("import torch")
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr
