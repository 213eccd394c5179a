"""``hpoq report OUTDIR``: a self-contained HTML report (PNG plots embedded) of a study directory."""
from __future__ import annotations

COMMAND = "report"
HELP = "write an HTML report with plots of a study output directory (also while it runs or after it stopped)"


def add_arguments(parser) -> None:
    parser.add_argument("outdir", metavar="OUTDIR", help="study output directory (holds journal.jsonl)")
    parser.add_argument("--out", metavar="FILE.html", default=None,
                        help="report file (default OUTDIR/report.html; PNGs go to the folder FILE without .html)")


def run(args) -> int:
    from hpoq.report import build_report

    report = build_report(args.outdir, args.out)
    study = report.study
    counts = study.fate_counts()
    print(f"report: {report.html_path} ({len(study.trials)} trials, status {study.status}, "
          f"{study.epochs_used} epochs, {report.n_predictions} predictions; "
          + ", ".join(f"{k} {v}" for k, v in counts.items() if v) + ")")
    return 0
