"""The study report: ``hpoq report OUTDIR`` -> one self-contained HTML file plus its PNG figures.

:func:`build_report` reads the output directory (:mod:`hpoq.report.study`), classifies each
trial's fate (:mod:`hpoq.report.fates`), extracts predictions (:mod:`hpoq.report.predictions`),
the best-so-far timeline (:mod:`hpoq.report.timeline`) and the per-bracket table
(:mod:`hpoq.report.brackets`), draws the figures (:mod:`hpoq.report.plots`) and renders the page
(:mod:`hpoq.report.html`). Everything is computed in memory first; files are written only at the
end (each to a temp name, then renamed), so a failed report leaves nothing half-written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hpoq.atomic import write_atomic
from hpoq.errors import ConfigError

REPORT_FILE = "report.html"


@dataclass
class Report:
    html_path: str
    png_paths: list
    study: object
    n_predictions: int


def build_report(out_dir: str, html_path: str | None = None) -> Report:
    """Write the report of study directory ``out_dir``.

    ``html_path`` defaults to ``OUTDIR/report.html``; the PNGs go to the folder of the same name
    without ``.html`` (``OUTDIR/report/``). The HTML embeds them, so it works alone when copied.
    """
    from hpoq.report.brackets import bracket_rows
    from hpoq.report.html import render
    from hpoq.report.plots import best_so_far_png, curves_png, predictions_png
    from hpoq.report.predictions import extract_predictions, summarize_points
    from hpoq.report.study import load_study_output
    from hpoq.report.timeline import best_so_far

    study = load_study_output(out_dir)
    html_path = html_path or os.path.join(out_dir, REPORT_FILE)
    parent = os.path.dirname(os.path.abspath(html_path))
    if not os.path.isdir(parent):
        raise ConfigError(f"report: folder {parent!r} for {html_path!r} does not exist")
    if os.path.isdir(html_path):
        raise ConfigError(f"report: {html_path!r} is a directory")
    stem = html_path[:-5] if html_path.endswith(".html") else html_path + "_files"
    if os.path.exists(stem) and not os.path.isdir(stem):
        raise ConfigError(f"report: {stem!r} exists and is not a folder (the PNGs go there)")

    points, omitted = extract_predictions(study)
    figures = {
        "curves.png": (curves_png(study), "learning curves coloured by fate"),
        "best_so_far.png": (best_so_far_png(best_so_far(study), study), "best value so far versus epochs"),
    }
    if points:
        figures["predictions.png"] = (predictions_png(points, omitted, study), "predicted versus actual")
    page = render(study, figures, summarize_points(points), omitted, len(points), bracket_rows(study))

    pngs = []
    try:
        os.makedirs(stem, exist_ok=True)
        for name, (png, _) in figures.items():
            path = os.path.join(stem, name)
            write_atomic(path, png)
            pngs.append(path)
        write_atomic(html_path, page.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"report: cannot write {exc.filename or html_path!r}: {exc.strerror or exc}") from None
    return Report(html_path, pngs, study, len(points))
