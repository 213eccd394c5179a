"""The CLI frame: subcommand discovery, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from hpoq.cli._common import parse_seeds
from hpoq.errors import ConfigError
from hpoq.main import main


def test_unknown_subcommand_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3") == [3]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    with pytest.raises(ConfigError):
        parse_seeds("4-0")
    with pytest.raises(ConfigError):
        parse_seeds("a")


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "hpoq.main", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.startswith("hpoq ")
