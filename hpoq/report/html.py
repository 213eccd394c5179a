"""The report as one self-contained HTML page: tables, and the PNG figures embedded as base64."""

from __future__ import annotations

import base64
import html
import math
import time

from hpoq.report.fates import FATE_LABELS, FATES, UNFINISHED

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:72em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #ddd}
.note{color:#555;font-size:.9em}details{margin:.5em 0}
#trials td:nth-child(7),#trials td:last-child,#failures td:last-child{text-align:left}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value, digits: int = 6) -> str:
    """Numbers for tables: NaN as an em dash, floats with ``digits`` significant digits."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def table(headers: list[str] | None, rows: list[list], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned (names), the rest numbers."""
    head = ""
    if headers:
        cells = "".join(
            f'<th class="l">{esc(h)}</th>' if i < left else f"<th>{esc(h)}</th>" for i, h in enumerate(headers)
        )
        head = f"<thead><tr>{cells}</tr></thead>"
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="l">{esc(fmt(c))}</td>' if i < left else f"<td>{esc(fmt(c))}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _config_text(config: dict) -> str:
    return ", ".join(f"{k}={fmt(v, 4)}" for k, v in config.items() if not str(k).startswith("_"))


def _last_decision(trial) -> str:
    if not trial.decisions:
        return "in flight" if trial.in_flight else "none yet"
    last = trial.decisions[-1]
    return f"{last.action} ({last.reason}) at epoch {last.epoch}"


def trials_table(study) -> str:
    """One row per trial: fate, bracket, epochs, last decision, value at R (or last value), config."""
    rows = []
    for t in study.trials.values():
        at_r = t.value_at(study.R) if study.R else math.nan
        last = t.curve[-1] if t.curve else math.nan
        rows.append(
            [
                t.trial_id,
                FATE_LABELS[t.fate],
                "—" if t.bracket is None else t.bracket,
                len(t.curve),
                t.epochs_trained,
                t.failed_attempts,
                _last_decision(t),
                at_r,
                last,
                _config_text(t.config),
            ]
        )
    return table(
        [
            "trial",
            "fate",
            "bracket",
            "curve epochs",
            "epochs trained",
            "failures",
            "last decision",
            "value at R",
            "last value",
            "configuration",
        ],
        rows,
        left=2,
    )


def image(png: bytes, alt: str, name: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" data-file="{esc(name)}" src="data:image/png;base64,{data}">'


def section(sid: str, title: str, body: str, note: str = "") -> str:
    """One report section; ``note`` is plain text (escaped), ``body`` is HTML."""
    return (
        f"<section id='{sid}'><h2>{esc(title)}</h2>{body}"
        + (f"<p class='note'>{esc(note)}</p>" if note else "")
        + "</section>"
    )


def summary_section(study) -> str:
    used, best = study.epochs_used, study.best_trial()
    rows = [
        ["status", f"{study.status}: {study.status_detail}"],
        ["algorithm", f"{study.algorithm} (R = {fmt(study.R)}, eta = {fmt(study.eta)})"],
        ["metric", f"{study.metric} ({'lower' if study.mode == 'min' else 'higher'} is better)"],
        ["trials", len(study.trials)],
        [
            "epochs used",
            f"{used}"
            + (f" of plain Hyperband's {study.budget} ({100.0 * used / study.budget:.1f}%)" if study.budget else ""),
        ],
        ["resumes", study.resumes],
    ]
    header, launch = study.header, study.launch
    groups = launch.get("groups") if isinstance(launch.get("groups"), list) else []
    if launch.get("world_size"):
        rows.append(
            [
                "MPI ranks",
                f"{launch.get('world_size')} (master + {len(groups)} trial group(s) of "
                f"{', '.join(sorted({str(len(g)) for g in groups if isinstance(g, list)})) or '?'} rank(s))",
            ]
        )
    if isinstance(header.get("seeds"), dict):
        rows.append(["seeds", ", ".join(f"{k}={v}" for k, v in header["seeds"].items())])
    if isinstance(header.get("versions"), dict):
        rows.append(["versions", ", ".join(f"{k} {v}" for k, v in header["versions"].items())])
    if best is not None:
        t, v = best
        rows += [
            ["best trial (reached R)", f"trial {t.trial_id}: {fmt(v)}"],
            ["best configuration", _config_text(t.config)],
        ]
    else:
        rows.append(["best trial (reached R)", "none yet"])
    return section("summary", "Summary", table(None, rows, left=2))


def fates_section(study) -> str:
    counts = study.fate_counts()
    rows = [
        [FATE_LABELS[f], counts[f], sum(t.epochs_trained for t in study.trials.values() if t.fate == f)]
        for f in FATES
        if counts[f] or f in FATES[:4]
    ]
    running = sum(1 for t in study.trials.values() if t.in_flight)
    note = (
        f"From each trial's last decision in the journal. Epochs: of finished units (failed units are not "
        f"counted). {running} trial(s) have a unit in flight."
    )
    if counts[UNFINISHED] and study.status in ("finished", "error"):
        note += (
            f" The study ended, so the {counts[UNFINISHED]} trial(s) left running / paused stay as they are "
            "(their last decision was continue or pause)."
        )
    return section("fates", "Fates", table(["fate", "trials", "epochs"], rows), note)


def predictions_section(study, figures: dict, pred_rows: list[dict], omitted: dict, n_points: int) -> str:
    if not n_points:
        return section(
            "predictions",
            "Predicted versus actual",
            f"<p>No decision of this study holds a prediction (algorithm {esc(study.algorithm)}).</p>",
        )
    body = _figure(figures, "predictions.png") + table(
        ["decision point", "predictions", "with actual", "stopped", "MAE", "Pearson r"],
        [
            [
                f"epoch {r['from_epoch']} -> {r['target_epoch']}",
                r["predictions"],
                r["with_actual"],
                r["stopped"],
                r["mae"],
                r["pearson_r"],
            ]
            for r in pred_rows
        ],
    )
    note = (
        f"Each prediction a scheduler made at a decision point (epochs seen -> epoch predicted), compared with the "
        f"value the trial reached there. {n_points} predictions; {omitted.get('no_actual', 0)} have no actual value "
        "(the trial was not trained to the target epoch) and are left out of the scatter and of MAE / r"
        + (f"; {omitted['no_target']} more had no readable target epoch" if omitted.get("no_target") else "")
        + "."
    )
    return section("predictions", "Predicted versus actual", body, note)


def predictor_section(study) -> str:
    """``default``'s decisions by kind, the forecast models behind them and its audit (empty for other
    algorithms)."""
    if study.algorithm != "default":
        return ""
    from hpoq.report.decisions import audit_line, audit_summary, predictor_decisions

    kinds, models = predictor_decisions(study)
    body = table(["decision", "decisions", "trials"], kinds)
    if models:
        body += table(["forecast model (predictor:checkpoint epoch->R@training curves)", "decisions"], models)
    body += f"<p>{html.escape(audit_line(audit_summary(study)))}</p>"
    note = (
        "default runs Hyperband's brackets and tests a trial at each checkpoint between two round ends: it is "
        "stopped when the curves that scored at least as badly there all ended worse than what it had to beat "
        "(the study's best, or its round's cut), with p <= alpha; a random share of the stops is audited "
        "(trained to R anyway) to estimate how often a stop was wrong. Hyperband's own round ends keep or cut "
        "trials as in Hyperband."
    )
    return section("predictor", "What the predictor decided", body, note)


def brackets_section(brackets: list[dict]) -> str:
    body = table(
        [
            "bracket",
            "configs",
            "epochs",
            "plain Hyperband epochs",
            "completed",
            "pruned by rung",
            "pruned by prediction",
            "failed",
            "running / paused",
            "best at R",
        ],
        [
            [
                r["bracket"],
                r["configs"],
                r["epochs"],
                _int(r["hyperband_epochs"]),
                r["completed"],
                r["pruned_rung"],
                r["pruned_prediction"],
                r["failed"],
                r["unfinished"],
                r["best"],
            ]
            for r in brackets
        ],
    )
    return section(
        "brackets",
        "Per bracket",
        body,
        "Hyperband brackets s in the order they run (s = s_max first: most configurations, fewest epochs "
        "each); schedulers without brackets give one row.",
    )


#: how every report page begins: ``report`` replaces an existing file only when it begins so
REPORT_MARK = "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>hpoq report: "


def is_report_page(path: str) -> bool:
    """Is ``path`` a page that ``report`` wrote?"""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(REPORT_MARK)) == REPORT_MARK.encode()
    except OSError:
        return False


def render(study, figures: dict, pred_rows: list[dict], omitted: dict, n_points: int, brackets: list[dict]) -> str:
    """The page. ``figures``: file name -> (PNG bytes, alt text)."""
    head = (
        f"{REPORT_MARK}{esc(study.name)}</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>hpoq report: {esc(study.name)}</h1>\n"
        f"<p class='note'>Generated {esc(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))} from "
        f"{esc(study.out_dir)} ({study.records} journal records"
        + (f"; a torn last line of {study.torn_bytes} bytes was ignored" if study.torn_bytes else "")
        + ").</p>"
    )
    parts = [
        head,
        summary_section(study),
        fates_section(study),
        section(
            "curves",
            "Learning curves",
            _figure(figures, "curves.png"),
            f"{study.metric} after each epoch, as the trainer reported it; the dotted line marks R. A trial pruned "
            "after one epoch is a single dot.",
        ),
        predictor_section(study),
        predictions_section(study, figures, pred_rows, omitted, n_points),
        section(
            "best-so-far",
            "Best so far versus epochs",
            _figure(figures, "best_so_far.png"),
            "Epochs summed over all trials in the order results arrived; the solid line is what the study would "
            "return if stopped there (best value at R), the dashed line the best value seen at any epoch; the "
            "dotted line is plain Hyperband's budget at the same R and eta.",
        ),
        brackets_section(brackets),
        compute_section(study),
        failures_section(study),
        section(
            "trials", "Trials", f"<details><summary>{len(study.trials)} trials</summary>{trials_table(study)}</details>"
        ),
        section("files", "Output files", table(["file", "state"], [[k, v] for k, v in study.files.items()], left=2)),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def compute_section(study) -> str:
    """Epochs and training time per rung (units grouped by the epoch they trained to)."""
    from hpoq.report.compute import rung_rows

    body = table(
        ["trained to epoch", "units", "epochs", "training s (leader)", "rank-seconds"],
        [
            [r["to_epoch"], r["units"], r["epochs"], round(r["seconds"], 3), round(r["rank_seconds"], 3)]
            for r in rung_rows(study)
        ],
    )
    return section(
        "compute",
        "Compute per rung",
        body,
        "Training seconds as the group leaders measured them; rank-seconds multiply by the trial group's "
        f"size (GPU-seconds with one GPU per rank). Wall time of the master: {study.wall_seconds:.1f} s over "
        f"{study.resumes + 1} run(s). Failed units are not counted.",
    )


def failures_section(study, show: int = 10) -> str:
    """Failed units by kind (retried or final), and the last few reasons."""
    if not study.failures:
        return section("failures", "Failures", "<p>No unit failed.</p>")
    kinds: dict = {}
    for f in study.failures:
        k = kinds.setdefault(str(f.get("kind", "?")), [0, 0])
        k[1 if f.get("final") else 0] += 1
    rows = [
        [f.get("trial_id"), f.get("attempt"), "final" if f.get("final") else "retried", str(f.get("reason", ""))[:200]]
        for f in study.failures[-show:]
    ]
    body = (
        table(["kind", "retried", "final (trial failed)"], [[k, v[0], v[1]] for k, v in sorted(kinds.items())])
        + f"<p class='note'>The last {len(rows)} of {len(study.failures)} failures:</p>"
        + table(["trial", "attempt", "outcome", "reason"], rows, left=1)
    )
    return section("failures", "Failures", body)


def _int(value):
    return int(value) if isinstance(value, float) and math.isfinite(value) else value


def _figure(figures: dict, name: str) -> str:
    png, alt = figures[name]
    return image(png, alt, name)
