"""``hpoq report OUTDIR``: a self-contained HTML report (PNG plots embedded) of a study directory."""

from __future__ import annotations

COMMAND = "report"
HELP = "write an HTML report with plots of a study output directory (also while it runs or after it stopped)"


def add_arguments(parser) -> None:
    parser.add_argument("outdir", metavar="OUTDIR", help="study output directory (holds journal.jsonl)")
    parser.add_argument(
        "--out",
        metavar="FILE.html",
        default=None,
        help="report file (default OUTDIR/report.html; PNGs go to the folder FILE without .html)",
    )


def run(args) -> int:
    import os

    from hpoq.report import build_report

    report = build_report(args.outdir, args.out)
    study = report.study
    fates = ", ".join(f"{k} {v}" for k, v in study.fate_counts().items() if v) or "none yet"
    budget = f" of plain Hyperband's {study.budget}" if study.budget else ""
    folder = os.path.dirname(report.png_paths[0]) if report.png_paths else "-"
    print(f"report: {report.html_path} (PNGs in {folder})")
    print(
        f"  {len(study.trials)} trial(s), status {study.status}, {study.epochs_used} epochs{budget}, "
        f"{report.n_predictions} prediction(s); fates: {fates}"
    )
    return 0
