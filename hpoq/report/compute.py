"""Compute accounting per rung: where a study's epochs and training time went.

Each finished unit (a ``result`` record) trained ``end_epoch - start_epoch`` epochs and took
``seconds`` on its group leader (training time, seconds); ``ranks`` is its trial group's size,
so ``seconds x ranks`` is the rank-seconds (GPU-seconds with one GPU per rank) it held. Units are
grouped by the epoch they trained to: Hyperband's rungs r_i and Swift's decision points e_d.
Failed units are not counted (their time is not journaled).
"""

from __future__ import annotations

from hpoq.report.study import StudyOutput


def rung_rows(study: StudyOutput) -> list[dict]:
    """One row per unit end epoch (ascending), then ``all``: units, epochs, seconds, rank-seconds."""
    rows: dict = {}
    for start, end, seconds, ranks in study.costs:
        row = rows.setdefault(end, {"to_epoch": str(end), "units": 0, "epochs": 0, "seconds": 0.0, "rank_seconds": 0.0})
        row["units"] += 1
        row["epochs"] += end - start
        row["seconds"] += seconds
        row["rank_seconds"] += seconds * ranks
    out = [rows[k] for k in sorted(rows)]
    total = {
        "to_epoch": "all",
        "units": sum(r["units"] for r in out),
        "epochs": sum(r["epochs"] for r in out),
        "seconds": sum(r["seconds"] for r in out),
        "rank_seconds": sum(r["rank_seconds"] for r in out),
    }
    return out + [total]
