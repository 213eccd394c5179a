"""The report's figures as PNG bytes (matplotlib, Agg canvas; no pyplot global state).

* :func:`curves_png`: every trial's learning curve, coloured by fate (:mod:`hpoq.report.fates`).
* :func:`predictions_png`: predicted versus actual value at each decision point, and every
  prediction against the threshold it had to beat (also those whose actual value is unknown).
* :func:`best_so_far_png`: best value so far against cumulative epochs, with plain Hyperband's
  budget at the same R and eta.
Values are in the metric's own direction; epochs are training epochs of one configuration (x of
the curves) or summed over all configurations (x of best-so-far).
"""

from __future__ import annotations

import io
import math

import numpy as np

from hpoq.report.fates import (
    COMPLETED,
    FAILED,
    FATE_LABELS,
    FATES,
    PRUNED_PREDICTION,
    PRUNED_RUNG,
    STOPPED_OTHER,
    UNFINISHED,
)

FATE_COLORS = {
    COMPLETED: "#1a9850",
    PRUNED_RUNG: "#7f8fa6",
    PRUNED_PREDICTION: "#f46d43",
    FAILED: "#d73027",
    UNFINISHED: "#6a3d9a",
    STOPPED_OTHER: "#8c564b",
}
# drawn bottom to top: the many pruned curves first, the completed ones on top
_DRAW_ORDER = (PRUNED_RUNG, STOPPED_OTHER, PRUNED_PREDICTION, UNFINISHED, FAILED, COMPLETED)


#: the PNGs' Software text chunk: how ``report`` knows a figure it may replace is one it wrote
PNG_SOFTWARE = "hpoq report"


def is_report_png(path: str) -> bool:
    """Is ``path`` a PNG that ``report`` wrote (its Software text chunk says so)?"""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)  # text chunks come before the image data
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00" + PNG_SOFTWARE.encode() in head


def _figure(width=8.0, height=4.8, ncols=1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": PNG_SOFTWARE})
    return buf.getvalue()


def _robust_ylim(values, mode: str):
    """Limits that keep the interesting end in view: early epochs of bad runs can be 10x worse."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return None
    lo, hi = (np.min(v), np.percentile(v, 97)) if mode == "min" else (np.percentile(v, 3), np.max(v))
    if hi <= lo:
        return None
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def curves_png(study) -> bytes:
    fig, ax = _figure()
    counts = study.fate_counts()
    for fate in _DRAW_ORDER:
        trials = [t for t in study.trials.values() if t.fate == fate and t.curve]
        if not trials:
            continue
        color = FATE_COLORS[fate]
        strong = fate in (COMPLETED, FAILED, UNFINISHED)
        for i, t in enumerate(trials):
            x = np.arange(1, len(t.curve) + 1)
            ax.plot(
                x,
                t.curve,
                color=color,
                lw=1.4 if strong else 0.9,
                alpha=0.9 if strong else 0.55,
                marker="o" if len(t.curve) == 1 else None,
                ms=3,
                label=f"{FATE_LABELS[fate]} ({counts[fate]})" if i == 0 else None,
            )
            if fate == FAILED:
                ax.plot(x[-1], t.curve[-1], "x", color=color, ms=7)
    for fate in FATES:  # fates whose trials never finished an epoch still get a legend entry
        if counts[fate] and not any(t.curve for t in study.trials.values() if t.fate == fate):
            ax.plot([], [], color=FATE_COLORS[fate], label=f"{FATE_LABELS[fate]} ({counts[fate]}, no epoch finished)")
    if study.R:
        ax.axvline(study.R, color="k", ls=":", lw=0.8)
    longest = max((len(t.curve) for t in study.trials.values()), default=0)
    if max(longest, study.R or 0) >= 16:
        # rungs sit at geometric epochs (1, 3, 9, 27, ...): a log axis gives each its room
        from matplotlib.ticker import FixedLocator, NullLocator

        ax.set_xscale("log")
        ticks = sorted(
            {int(d.epoch or 0) for t in study.trials.values() for d in t.decisions} - {0}
            | ({study.R} if study.R else set())
        )
        if 0 < len(ticks) <= 12:
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(x) for x in ticks])
    lim = _robust_ylim([v for t in study.trials.values() for v in t.curve], study.mode)
    clipped = False
    if lim:
        ax.set_ylim(*lim)
        clipped = any(
            (v > lim[1]) if study.mode == "min" else (v < lim[0])
            for t in study.trials.values()
            for v in t.curve
            if math.isfinite(v)
        )
    no_curve = sum(1 for t in study.trials.values() if not t.curve)
    right = max(longest, study.R or 1)
    ax.set_xlim(0.9 if ax.get_xscale() == "log" else 0.5, right * (1.1 if ax.get_xscale() == "log" else 1.0) + 0.5)
    if not longest:
        ax.text(0.5, 0.5, "no epoch finished yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch" + ("\n(y axis clipped: the worst 3% of values lie outside)" if clipped else ""))
    ax.set_ylabel(f"{study.metric} ({study.mode})")
    ax.set_title(
        f"Learning curves by fate: {len(study.trials)} trial{'s' if len(study.trials) != 1 else ''}"
        + (f", {no_curve} without a finished epoch" if no_curve else "")
    )
    if any(t.curve for t in study.trials.values()):
        ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def predictions_png(points, omitted: dict, study) -> bytes:
    fig, (ax, ax2) = _figure(width=11.0, height=4.8, ncols=2)
    keys = sorted({(p.from_epoch, p.target_epoch) for p in points})
    cmap = [f"C{i % 10}" for i in range(len(keys))]
    paired = [p for p in points if math.isfinite(p.actual)]
    for key, color in zip(keys, cmap):
        grp = [p for p in paired if (p.from_epoch, p.target_epoch) == key]
        if grp:
            ax.scatter(
                [p.actual for p in grp],
                [p.predicted for p in grp],
                s=18,
                color=color,
                label=f"epoch {key[0]} -> {key[1]} ({len(grp)})",
            )
    if paired:
        vals = [p.actual for p in paired] + [p.predicted for p in paired]
        lo, hi = min(vals), max(vals)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="predicted = actual")
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no prediction has an actual value yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"actual {study.metric} at target epoch")
    ax.set_ylabel(f"predicted {study.metric}")
    ax.set_title(
        f"Predicted vs actual: {len(paired)} of {len(points)} "
        f"({omitted.get('no_actual', 0)} omitted: not trained to the target)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)

    # every prediction at its decision point, against the threshold it had to beat
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for i, key in enumerate(keys):
        grp = [p for p in points if (p.from_epoch, p.target_epoch) == key]
        for action, marker, color in (
            ("continue", "o", FATE_COLORS[COMPLETED]),
            ("stop", "x", FATE_COLORS[PRUNED_PREDICTION]),
        ):
            sel = [p for p in grp if p.action == action]
            if sel:
                ax2.scatter(
                    i + rng.uniform(-0.15, 0.15, len(sel)),
                    [p.predicted for p in sel],
                    marker=marker,
                    s=22,
                    color=color,
                    label=action,
                )
        other = [p for p in grp if p.action not in ("continue", "stop")]
        if other:
            ax2.scatter(
                i + rng.uniform(-0.15, 0.15, len(other)), [p.predicted for p in other], marker=".", color="grey"
            )
        thresholds = sorted({p.threshold for p in grp if math.isfinite(p.threshold)})
        for th in thresholds:
            ax2.plot([i - 0.3, i + 0.3], [th, th], color="k", lw=1.2)
    handles, labels = ax2.get_legend_handles_labels()
    if handles:
        uniq = dict(zip(labels, handles))
        ax2.legend(uniq.values(), uniq.keys(), fontsize=7, loc="best", title="black bar: threshold", title_fontsize=7)
    ax2.set_xticks(range(len(keys)), [f"{a}->{b}" for a, b in keys], fontsize=7, rotation=45 if len(keys) > 6 else 0)
    ax2.set_xlabel("decision point (epochs seen -> epoch predicted)")
    ax2.set_ylabel(f"predicted {study.metric}")
    ax2.set_title("Every prediction and the scheduler's action", fontsize=9)
    ax2.grid(alpha=0.3)
    return _png(fig)


def best_so_far_png(timeline, study) -> bytes:
    fig, ax = _figure()
    if timeline.epochs:
        ax.step(
            timeline.epochs,
            timeline.best_at_R,
            where="post",
            color=FATE_COLORS[COMPLETED],
            lw=1.8,
            label=f"best at R={study.R} (trials that reached R)",
        )
        ax.step(
            timeline.epochs,
            timeline.best_any,
            where="post",
            color="#4575b4",
            lw=1.0,
            ls="--",
            label="best at any epoch",
        )
    else:
        ax.text(0.5, 0.5, "no epoch finished yet", ha="center", va="center", transform=ax.transAxes)
    if study.budget:
        ax.axvline(study.budget, color="k", ls=":", lw=1.0, label=f"plain Hyperband budget ({study.budget} epochs)")
    ax.set_xlabel("epochs trained, cumulative over all trials")
    ax.set_ylabel(f"{study.metric} ({study.mode})")
    used = timeline.epochs[-1] if timeline.epochs else 0
    ax.set_title(f"Best so far: {used} epochs used" + (f" of plain Hyperband's {study.budget}" if study.budget else ""))
    ax.set_xlim(0, 1.03 * max(used, study.budget or 0, 1))
    lim = _robust_ylim([v for v in timeline.best_any + timeline.best_at_R], study.mode)
    if lim:
        ax.set_ylim(*lim)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _png(fig)
