"""The stress family of generated curve tables (hpoq.curves.stress): one knob for how misleading early epochs
are, and the replay on it (hpoq.simulate)."""

from __future__ import annotations

import numpy as np
import pytest

from hpoq.curves.stress import CEILING, STRESS_LEVELS, crossing_profile, load_stress, stress_name, stress_table
from hpoq.errors import ConfigError
from hpoq.main import main
from hpoq.simulate import simulate_run


def test_the_knob_turns_reliable_early_ranks_into_inverted_ones():
    early = {}
    for level in STRESS_LEVELS:
        table = stress_table(level, n_rows=600, R=50, seed=3)
        profile = crossing_profile(table, [2, 5, 10, 40])
        early[level] = profile[5]
        assert profile[40] > 0.8  # every level ends ranked by its final quality
    assert early[0.0] > 0.9  # curves that never cross
    assert early[1.0] < -0.3  # late bloomers: the good ones trail until a fifth of training
    assert early[0.0] > early[0.25] > early[0.5] and early[1.0] < early[0.25]


def test_a_table_is_a_pure_function_of_its_arguments():
    a, b = stress_table(0.5, n_rows=50, R=12, seed=7), stress_table(0.5, n_rows=50, R=12, seed=7)
    np.testing.assert_array_equal(a.curves, b.curves)
    assert a.configs == b.configs and a.hp_names == ["learning_rate", "width", "dropout", "weight_decay"]
    assert not np.array_equal(a.curves, stress_table(0.5, n_rows=50, R=12, seed=8).curves)


def test_some_runs_diverge_and_are_clipped_like_real_tables():
    table = stress_table(0.0, n_rows=1000, R=30, seed=0)
    blown = np.isclose(table.curves[:, -1], CEILING)
    assert 0.005 < blown.mean() < 0.08 and np.all(table.curves <= CEILING) and np.isfinite(table.curves).all()


def test_bad_knobs_and_names_are_one_line_errors():
    with pytest.raises(ConfigError, match="crossing must lie in"):
        stress_table(1.5)
    with pytest.raises(ConfigError, match="not a stress table name"):
        load_stress("stress-high")
    assert load_stress(stress_name(0.25), n_rows=20, R=8).provenance["shared_table"] == "stress0.25"


def test_convert_writes_a_stress_table_that_simulate_can_read(tmp_path, capsys):
    out = tmp_path / "stress.csv.gz"
    assert main(["convert", "stress0.75", "--out", str(out)]) == 0
    assert "1000 rows x 50 epochs of loss" in capsys.readouterr().out


def test_on_late_bloomers_default_keeps_hyperbands_answer_and_saves_where_ranks_hold():
    """A fast replay of the family's two ends with a store: on curves that never cross default saves, on late
    bloomers it saves less and its answers are never worse than Hyperband's."""
    saved = {}
    for level in (0.0, 1.0):
        table = stress_table(level, n_rows=400, R=16, seed=2)
        for seed in range(3):
            hb = simulate_run(table, "hyperband", seed, 16, 2, warm_fraction=0.5)
            d = simulate_run(table, "default", seed, 16, 2, warm_fraction=0.5, predictor="none")
            assert d["epochs"] <= hb["epochs"]
            if level == 1.0:
                assert d["best_final"] <= hb["best_final"] + 1e-12
            saved.setdefault(level, []).append(1 - d["epochs"] / hb["epochs"])
    assert np.mean(saved[0.0]) > 0.1 and np.mean(saved[1.0]) < np.mean(saved[0.0])
