"""The study report: ``hpoq report OUTDIR`` -> one self-contained HTML file plus its PNG figures.

:func:`build_report` reads the output directory (:mod:`hpoq.report.study`), classifies each
trial's fate (:mod:`hpoq.report.fates`), extracts predictions (:mod:`hpoq.report.predictions`),
the best-so-far timeline (:mod:`hpoq.report.timeline`) and the per-bracket table
(:mod:`hpoq.report.brackets`), draws the figures (:mod:`hpoq.report.plots`) and renders the page
(:mod:`hpoq.report.html`). Everything is computed in memory first; files are written only at the
end (each to a temp name, then renamed), so a failed report leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
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


#: what ``run`` keeps in a study directory; a report never writes there (written later or not hpoq's to replace)
_BOOKKEEPING = (
    "journal.jsonl",
    "trials.csv",
    "best.yaml",
    "curves.h5",
    ".hpoq.lock",
    ".hpoq.reserve",
    "checkpoints",
)


def _study_places(study) -> list[tuple[str, str]]:
    """(path, what it is) of the study's bookkeeping and inputs: places a report must not write."""
    places = [(os.path.join(study.out_dir, name), f"the study's {name}") for name in _BOOKKEEPING]
    spec = study.header.get("study") if isinstance(study.header.get("study"), dict) else {}
    if isinstance(spec.get("source"), str) and spec["source"]:
        places.append((spec["source"], "the study file"))
    inputs = study.header.get("inputs") if isinstance(study.header.get("inputs"), dict) else {}
    for key, entry in inputs.items():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            places.append((entry["path"], f"an input of the study ({key})"))
    return places


def _check_targets(study, html_path: str, stem: str) -> None:
    """Refuse (one line) a report that would write over the study's inputs or bookkeeping, or over
    a file that is not a report: the page must be new or an hpoq report, and so must each figure."""
    from hpoq.report.html import is_report_page
    from hpoq.report.plots import is_report_png
    from hpoq.writable import inside

    for target, role in ((html_path, "--out"), (stem, "the figures' folder of --out")):
        for place, what in _study_places(study):
            if inside(target, place):
                raise ConfigError(
                    f"report: {role} {target!r} is (or is inside) {what}; a report never writes there: "
                    "choose another --out"
                )
    if os.path.exists(html_path) and not is_report_page(html_path):
        raise ConfigError(
            f"report: {html_path!r} exists and is not an hpoq report; hpoq will not replace it: choose another --out"
        )
    page_is_ours = os.path.exists(html_path)  # then the figures beside it are its own (reports before the PNG mark)
    for name in FIGURES:
        png = os.path.join(stem, name)
        if os.path.lexists(png) and not (os.path.isfile(png) and (is_report_png(png) or page_is_ours)):
            raise ConfigError(
                f"report: {png!r} exists and is not a figure of an hpoq report; hpoq will not replace it: "
                "choose another --out"
            )


#: the figures a report may write into its folder
FIGURES = ("curves.png", "best_so_far.png", "predictions.png")


def build_report(out_dir: str, html_path: str | None = None) -> Report:
    """Write the report of study directory ``out_dir``.

    ``html_path`` defaults to ``OUTDIR/report.html``; the PNGs go to the folder of the same name
    without ``.html`` (``OUTDIR/report/``). The HTML embeds them, so it works alone when copied.
    """
    from hpoq.logsetup import redact
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
    _check_targets(study, html_path, stem)

    points, omitted = extract_predictions(study)
    figures = {
        "curves.png": (curves_png(study), "learning curves coloured by fate"),
        "best_so_far.png": (best_so_far_png(best_so_far(study), study), "best value so far versus epochs"),
    }
    if points:
        figures["predictions.png"] = (predictions_png(points, omitted, study), "predicted versus actual")
    page = render(study, figures, summarize_points(points), omitted, len(points), bracket_rows(study))
    page = redact(page)  # failure reasons and errors shown may echo a secret of the study

    pngs = []
    made_stem = not os.path.isdir(stem)
    try:
        os.makedirs(stem, exist_ok=True)
        for name, (png, _) in figures.items():
            path = os.path.join(stem, name)
            write_atomic(path, png)
            pngs.append(path)
        write_atomic(html_path, page.encode("utf-8"))
    except OSError as exc:
        if made_stem:  # a full disk: the figures of this report go again, and the folder made for them
            for path in pngs:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            with contextlib.suppress(OSError):
                os.rmdir(stem)
        raise ConfigError(f"report: cannot write {exc.filename or html_path!r}: {exc.strerror or exc}") from None
    return Report(html_path, pngs, study, len(points))
