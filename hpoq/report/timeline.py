"""Best value so far against cumulative epochs trained, in journal order (the cost view of a study).

Every ``result`` record adds its epochs to the running total. Two curves: the best value at R
among trials that reached R (what a study returns) and the best value observed at any epoch
(an optimistic lower envelope). Values in the metric's own direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hpoq.report.study import StudyOutput


@dataclass
class Timeline:
    epochs: list  # cumulative epochs after each result
    best_at_R: list  # NaN until a trial reached R
    best_any: list


def best_so_far(study: StudyOutput) -> Timeline:
    sign, R = study.sign, study.R
    total, best_r, best_any = 0, math.inf, math.inf
    out = Timeline([], [], [])
    for _, start, end, values in study.results:
        total += end - start
        for epoch, v in enumerate(values, start=start + 1):
            if not math.isfinite(v):
                continue
            best_any = min(best_any, sign * v)
            if R is not None and epoch == R:
                best_r = min(best_r, sign * v)
        out.epochs.append(total)
        out.best_at_R.append(sign * best_r if math.isfinite(best_r) else math.nan)
        out.best_any.append(sign * best_any if math.isfinite(best_any) else math.nan)
    return out
