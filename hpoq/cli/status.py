"""``status OUTDIR``: one look at a study's output directory (running, finished, interrupted).

Exit code 0 when the study finished, 3 when it can be resumed (interrupted, killed, still
running elsewhere), 2 for bad input. Job scripts use it to decide whether to requeue.
"""

from __future__ import annotations

COMMAND = "status"
HELP = "show a study's state from its output directory (exit 0 finished, 3 resumable)"


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", metavar="OUTDIR", help="the study's output directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args) -> int:
    from hpoq.cli._common import print_json
    from hpoq.errors import ConfigError
    from hpoq.report.decisions import audit_line, audit_summary
    from hpoq.report.study import load_study_output

    try:
        study = load_study_output(args.out_dir)
    except ConfigError as exc:  # the loader is the report's; the user ran 'status'
        message = str(exc)
        message = message[len("report: ") :] if message.startswith("report: ") else message
        raise ConfigError(f"status: {message}") from None
    fates = {fate: n for fate, n in study.fate_counts().items() if n}
    epochs = study.epochs_used
    best = (study.end or {}).get("best") or study.best_file
    facts = {
        "study": study.name,
        "status": study.status,
        "detail": study.status_detail,
        "algorithm": study.algorithm,
        "R": study.R,
        "eta": study.eta,
        "metric": study.metric,
        "mode": study.mode,
        "trials": len(study.trials),
        "fates": fates,
        "epochs": epochs,
        "hyperband_budget": study.budget,
        "resumes": study.resumes,
        "best": best,
    }
    audit = audit_summary(study)
    if audit is not None:  # default: the false-prune estimate of its audited stops
        facts["audit"] = audit
    if args.json:
        print_json(facts)
    else:
        budget = f" of plain Hyperband's {study.budget}" if study.budget else ""
        print(f"study {study.name!r}: {study.status} ({study.status_detail})")
        print(
            f"  {study.algorithm} R={study.R} eta={study.eta}; {len(study.trials)} trials: "
            + ", ".join(f"{n} {fate}" for fate, n in sorted(fates.items()))
        )
        print(f"  epochs trained: {epochs}{budget}; resumed {study.resumes} time(s)")
        if best:
            print(
                f"  best {study.metric}: {best.get('value')} (trial {best.get('trial_id')}, epoch {best.get('epoch')})"
            )
        if audit is not None:
            print(f"  {audit_line(audit)}")
    return 0 if study.status == "finished" else 3
