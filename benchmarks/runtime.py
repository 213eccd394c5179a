"""Benchmark of the MPI runtime (issue 4 targets); prints markdown tables, writes OUT/runtime.md.

1. **Master overhead and throughput**: the ``table`` trainer on the MLPF table, under ``mpiexec -n 4 /
   16 / 64`` (64 = oversubscribed on 2 cores); studies (``--overhead-studies``, see ``OVERHEAD_STUDIES``):
   ``hyperband`` R=81 eta=3 (206 work units, no sleep); ``default-qsvr``: ``default`` R=100 eta=2 with
   the ``qsvr`` predictor (simulated annealing, its defaults num_reads 100, num_sweeps 500) fitted on
   the master's background fit thread (no sleep; 4 and 16 ranks), with the runtime's ``models:
   when_fitted`` (a model is used once its fit is done, never waited for); ``default-qsvr-lag``: the same
   with ``models: after_lag`` (a model used ``fit_lag`` results after its data is complete, waited for if
   its fit is not done; 16 ranks); ``default-qsvr-sleep``: a tenth of the annealing and 0.2 s per epoch of
   sleep: units longer than fits, as in a real study.
   Overhead per unit = CPU seconds of the master loop's own thread, not sleeping (``end.master_cpu_s``)
   / units; fit CPU = CPU seconds of the fits on the fit thread (``end.fit_cpu_s``); waited = wall
   seconds the loop waited for a fit not done when its model was needed (``end.fit_wait_s``);
   dispatch gap = the longest pass of the master loop, wall clock (``end.max_dispatch_gap_s``): the
   most a result or a freed group waited for the master beyond the poll interval; units/s = units /
   wall time of the study loop (first unit record to end record). Target (issues 4 and 10):
   overhead <= 2 ms per unit at 16 ranks, with ``qsvr`` too.
2. **SIGKILL at a random moment, then resume**: the master is killed at a uniformly random time
   between the journal header and the uninterrupted run's duration (seeded), ``run --resume`` continues; the final best
   configuration must equal the uninterrupted run's, and every unit finished before the kill must be kept (not re-run).
3. **mpiexec vs simulate**: Swift-Hyperband on the MLPF table under ``mpiexec -n 2`` (one trial
   group) must use the same epochs and return the same configuration as ``simulate`` with the
   same seed and one worker.

Usage: ``python benchmarks/runtime.py --out benchmarks/results [--repeats 3] [--kills 5] [--quick]
[--parts overhead,kill,equivalence] [--overhead-studies hyperband,default-qsvr,...]``. A part not run keeps
its section of OUT/runtime.md as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO.parent / "shared" / "data" / "mlpf_perfpred" / "mlpf_delphes_trainings_processed.csv.gz"
sys.path.insert(0, str(REPO))


from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path  # noqa: E402 (after the path insert)


def cmd(n: int, *args) -> list[str]:
    return [mpiexec_path(), "-n", str(n), sys.executable, "-m", "mpi4py", "-m", "hpoq.main", *args]


def write_study(directory: Path, name: str, algorithm: dict, sleep: float = 0.0, seed: int = 0, **extra) -> str:
    doc = {
        "name": name,
        "seed": seed,
        "algorithm": algorithm,
        "space": "table",
        "poll_interval": 0.01,
        "trainer": {"name": "table", "params": {"table": str(TABLE), "sleep": sleep}},
        **extra,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def journal(out: Path) -> list[dict]:
    records = []
    for line in (out / "journal.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    return records


def run(n: int, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd(n, *args), capture_output=True, text=True, env=mpi_child_env(), cwd=REPO, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"mpiexec -n {n} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc


def results(records) -> list[tuple]:
    return [(r["trial_id"], r["start_epoch"], r["end_epoch"]) for r in records if r["type"] == "result"]


# -- 1. overhead and throughput ---------------------------------------------------------------
#: the qsvr predictor of the default-qsvr study: simulated annealing with qsvr's own defaults, spelled out
QSVR_PARAMS = {"sampler": {"name": "sa", "params": {"num_reads": 100, "num_sweeps": 500}}}
#: a tenth of the annealing, for the studies whose units sleep (fits ~10x shorter, units ~100x longer)
QSVR_SMALL = {"sampler": {"name": "sa", "params": {"num_reads": 10, "num_sweeps": 100}}}
SLEEP = 0.2  # seconds per epoch of the sleeping studies
#: --overhead-studies name -> table label, algorithm, predictor, trainer sleep per epoch, the most ranks it runs at
OVERHEAD_STUDIES = {
    "hyperband": {"label": "Hyperband R=81 eta=3", "algorithm": {"name": "hyperband", "R": 81, "eta": 3}},
    "default-qsvr": {
        "label": "default R=100 eta=2, qsvr (SA, defaults), models unset (when_fitted)",
        "algorithm": {"name": "default", "R": 100, "eta": 2},
        "predictor": {"name": "qsvr", "params": QSVR_PARAMS},
        "most": 16,
    },
    "default-qsvr-lag": {
        "label": "same, models: after_lag (fit_lag unset: max(4, trial groups))",
        "algorithm": {"name": "default", "R": 100, "eta": 2, "params": {"models": "after_lag"}},
        "predictor": {"name": "qsvr", "params": QSVR_PARAMS},
        "least": 16,
        "most": 16,
    },
    "default-qsvr-sleep": {
        "label": f"default R=100 eta=2, qsvr (SA, small), sleep {SLEEP:g} s/epoch, models unset (when_fitted)",
        "algorithm": {"name": "default", "R": 100, "eta": 2},
        "predictor": {"name": "qsvr", "params": QSVR_SMALL},
        "sleep": SLEEP,
        "least": 16,
        "most": 16,
    },
}


def bench_overhead(tmp: Path, ranks: list[int], repeats: int, name: str = "hyperband") -> list[dict]:
    what = OVERHEAD_STUDIES[name]
    label, predictor = what["label"], what.get("predictor")
    extra = {"predictor": predictor} if predictor else {}
    study = write_study(tmp, f"overhead-{name}", what["algorithm"], sleep=what.get("sleep", 0.0), **extra)
    least, most = what.get("least", 0), what.get("most", max(ranks))
    rows = []
    for n in [n for n in ranks if least <= n <= most]:
        per_unit, rates, walls, fit_cpu, fit_jobs, fit_wait, gaps, models, forecasts = ([] for _ in range(9))
        for k in range(repeats):
            out = tmp / f"ovh-{name}-{n}-{k}"
            t0 = time.perf_counter()
            run(n, "run", study, "--out", str(out), timeout=900)
            walls.append(time.perf_counter() - t0)
            recs = journal(out)
            end = recs[-1]
            first = next(r["t"] for r in recs if r["type"] == "unit")
            per_unit.append(end["master_cpu_s"] / end["units"])
            rates.append(end["units"] / (end["t"] - first))
            fit_cpu.append(end["fit_cpu_s"])
            fit_jobs.append(end["fit_jobs"])
            fit_wait.append(end["fit_wait_s"])
            gaps.append(end["max_dispatch_gap_s"])
            models.append(sum(r["type"] == "model" for r in recs))
            decided = [d for r in recs if r["type"] == "decision" for d in r["decisions"]]
            forecasts.append(sum("model" in (d.get("info") or {}) for d in decided))
            units = end["units"]
        rows.append(
            {
                "study": label,
                "ranks": n,
                "groups": n - 1,
                "units": units,
                "overhead_ms": 1e3 * statistics.median(per_unit),
                "overhead_max_ms": 1e3 * max(per_unit),
                "fit_cpu_s": statistics.median(fit_cpu),
                "fit_jobs": statistics.median(fit_jobs),
                "fit_wait_s": statistics.median(fit_wait),
                "fit_wait_max_s": max(fit_wait),
                "models": statistics.median(models),
                "forecasts": statistics.median(forecasts),
                "gap_ms": 1e3 * statistics.median(gaps),
                "gap_max_ms": 1e3 * max(gaps),
                "units_per_s": statistics.median(rates),
                "wall_s": statistics.median(walls),
            }
        )
    return rows


def overhead_section(rows: list[dict], repeats: int) -> list[str]:
    lines = [
        "## Master overhead and throughput",
        "",
        f"median of {repeats} run(s) (max: over the runs); table trainer (no sleep unless the study says so); "
        "target: master overhead <= 2 ms per unit at 16 ranks, with Hyperband and with `default` + `qsvr` "
        "fitting on the master's background thread. qsvr (SA, defaults): "
        f"`{json.dumps(QSVR_PARAMS)}`; qsvr (SA, small): `{json.dumps(QSVR_SMALL)}`; `default` otherwise with its "
        "defaults (`models` unset: the runtime's `when_fitted`, a model is used once its fit is done; `min_train` "
        "12). Models reported fitted: `model` records in the journal; decisions on a forecast: rung decisions "
        "whose info names the model they used.",
        "",
        "| study | ranks | trial groups | units | master-thread CPU per unit (ms) | max (ms) | fit-thread CPU (s) "
        "| fits on the thread | loop waited for fits (s) | models reported fitted | decisions on a forecast "
        "| max dispatch gap (ms) | max over runs (ms) | units/s | wall incl. start-up (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['study']} | {r['ranks']} | {r['groups']} | {r['units']} | {r['overhead_ms']:.3f} | "
        f"{r['overhead_max_ms']:.3f} | {r['fit_cpu_s']:.2f} | {r['fit_jobs']:g} | {r['fit_wait_s']:.2f} | "
        f"{r['models']:g} | {r['forecasts']:g} | "
        f"{r['gap_ms']:.1f} | {r['gap_max_ms']:.1f} | {r['units_per_s']:.1f} | {r['wall_s']:.1f} |"
        for r in rows
    ]
    at16 = [r for r in rows if r["ranks"] == 16]
    if at16:
        met = all(r["overhead_max_ms"] <= 2.0 for r in at16)
        lines += [
            "",
            f"**Target** (every run at 16 ranks <= 2 ms of master-thread CPU per unit): {'met' if met else 'NOT met'}; "
            + "; ".join(f"{r['study']}: {r['overhead_ms']:.3f} ms (max {r['overhead_max_ms']:.3f})" for r in at16)
            + ".",
        ]
    waited = [r for r in rows if r["fit_jobs"]]
    if waited:
        lines += [
            "",
            "**Fits and dispatch**: "
            + "; ".join(
                f"{r['study']} at {r['ranks']} ranks: "
                + (
                    "the loop waited for no fit in any run"
                    if r["fit_wait_max_s"] == 0
                    else f"the loop waited {r['fit_wait_s']:.2f} s (median) for fits of {r['wall_s']:.1f} s"
                )
                for r in waited
            )
            + ".",
        ]
    lines += [
        "",
        "Master-thread CPU is `time.thread_time()` of the loop's thread (the fit thread's CPU is not in it); a "
        "dispatch gap is one pass of the loop from its probe to its last send (fsync of the journal, "
        "`on_result`, `suggest`, and any wait for a fit still running when its model is needed); with "
        "`models: after_lag` the loop waits for a fit when `fit_lag` results arrive before the fit is done "
        "(`end.fit_wait_s`), with `when_fitted` (the runtime's default) it never waits.",
        "",
    ]
    return lines


# -- 2. SIGKILL + resume ----------------------------------------------------------------------
def _kill_and_resume(study: str, out: Path, n: int, at: float) -> dict:
    proc = subprocess.Popen(
        cmd(n, "run", study, "--out", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=mpi_child_env(),
        cwd=REPO,
    )
    pid, t0 = None, None  # the clock starts when the master has written the journal header
    while proc.poll() is None and (t0 is None or time.monotonic() - t0 < at):
        time.sleep(0.005)
        if pid is None and (out / "journal.jsonl").exists():
            try:
                pid = journal(out)[0]["pid"]
                t0 = time.monotonic()
            except (IndexError, KeyError, ValueError):
                pid = None
    killed = proc.poll() is None and pid is not None
    if killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # the study ended a moment ago
            killed = False
    proc.wait(timeout=120)
    if not (out / "journal.jsonl").exists():  # killed before the study started: start again
        run(n, "run", study, "--out", str(out))
        after = journal(out)
        return {
            "at": at,
            "killed": False,
            "before": 0,
            "lost": 0,
            "kept": True,
            "units": results(after),
            "failures": sum(r["type"] == "failure" for r in after),
            "lost_attempts": 0,
            "failed_trials": 0,
            "best": after[-1]["best"]["trial_id"],
            "epochs": after[-1]["epochs"],
        }
    before = journal(out)
    done_before = results(before)
    if before[-1]["type"] != "end":
        run(n, "run", "--resume", str(out))
    after = journal(out)
    resume = next((r for r in after if r["type"] == "resume"), None)
    final = results(after)
    return {
        "at": at,
        "killed": killed and before[-1]["type"] != "end",
        "before": len(done_before),
        "lost": len(resume["lost_units"]) if resume else 0,
        "units": final,
        "failures": sum(r["type"] == "failure" and r.get("kind") != "lost" for r in after),
        "lost_attempts": sum(r["type"] == "failure" and r.get("kind") == "lost" for r in after),
        "failed_trials": sum(r["type"] == "failure" and bool(r.get("final")) for r in after),
        "kept": final[: len(done_before)] == done_before and len(final) == len(set(final)),
        "best": after[-1]["best"]["trial_id"] if after[-1].get("best") else None,
        "epochs": after[-1]["epochs"],
    }


def bench_kill(tmp: Path, kills: int, seed: int, n: int = 4) -> tuple[dict, list[dict]]:
    study = write_study(tmp, "kill", {"name": "swift", "R": 27, "eta": 3}, sleep=0.004, seed=1)
    ref_out = tmp / "kill-ref"
    run(n, "run", study, "--out", str(ref_out))
    ref_records = journal(ref_out)
    ref = ref_records[-1]
    wall = ref["t"] - ref_records[0]["t"]  # the study itself, header to end record
    gaps = [(b["t"] - a["t"], a) for a, b in zip(ref_records, ref_records[1:])]
    gap, before_gap = max(gaps, key=lambda g: g[0])
    ref_units = sorted(results(journal(ref_out)))
    rng = random.Random(seed)
    rows = []
    for k in range(kills):
        at = rng.uniform(0.0, wall)
        row = _kill_and_resume(study, tmp / f"kill-{k}", n, at)
        row["same_best"] = row.get("best") == ref["best"]["trial_id"]
        row["same_units"] = sorted(row.pop("units")) == ref_units
        rows.append(row)
    return {
        "best": ref["best"]["trial_id"],
        "epochs": ref["epochs"],
        "wall_s": wall,
        "gap_s": gap,
        "gap_after": sum(r["type"] == "result" for r in ref_records[: ref_records.index(before_gap) + 1]),
    }, rows


# -- 3. mpiexec vs simulate -------------------------------------------------------------------
def bench_equivalence(tmp: Path, seeds: list[int], R: int, eta: int, ranks: list[int]) -> list[dict]:
    from hpoq.curves.table import load_table
    from hpoq.simulate import simulate_run

    table = load_table(str(TABLE), "loss", "min")
    rows = []
    for seed in seeds:
        sim = simulate_run(table, "swift", seed=seed, R=R, eta=eta, workers=1)
        study = write_study(tmp, f"eq-{seed}", {"name": "swift", "R": R, "eta": eta}, seed=seed)
        for n in ranks:
            out = tmp / f"eq-{seed}-{n}"
            run(n, "run", study, "--out", str(out), timeout=900)
            end = journal(out)[-1]
            best_row = end["best"]["config"]["_row"] if end.get("best") else None
            rows.append(
                {
                    "seed": seed,
                    "ranks": n,
                    "groups": n - 1,
                    "sim_epochs": sim["epochs"],
                    "mpi_epochs": end["epochs"],
                    "sim_best_row": sim["best_row"],
                    "mpi_best_row": best_row,
                    "same": sim["epochs"] == end["epochs"] and sim["best_row"] == best_row,
                }
            )
    return rows


#: the heading each part's section of runtime.md starts with
SECTION_HEADINGS = {
    "overhead": "## Master overhead",  # also the heading of earlier versions
    "kill": "## SIGKILL",
    "equivalence": "## Swift under mpiexec",
}


def old_sections(path: Path) -> dict[str, list[str]]:
    """The sections of an earlier runtime.md by part (its lines, up to the next ``## `` heading), to keep
    the parts not run this time."""
    if not path.exists():
        return {}
    sections, part = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            part = next((p for p, head in SECTION_HEADINGS.items() if line.startswith(head)), None)
        if part is not None:
            sections.setdefault(part, []).append(line)
    return {part: lines if lines[-1] == "" else lines + [""] for part, lines in sections.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="1 repeat, 4 and 16 ranks, 2 kills, one seed")
    ap.add_argument("--parts", default="overhead,kill,equivalence")
    ap.add_argument("--overhead-studies", default=",".join(OVERHEAD_STUDIES), help=f"of {', '.join(OVERHEAD_STUDIES)}")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    studies = [s for s in args.overhead_studies.split(",") if s]
    unknown = set(studies) - set(OVERHEAD_STUDIES)
    if unknown:
        ap.error(f"--overhead-studies: unknown {sorted(unknown)}; known: {', '.join(OVERHEAD_STUDIES)}")
    ranks = [4, 16] if args.quick else [4, 16, 64]
    repeats = 1 if args.quick else args.repeats
    kills = 2 if args.quick else args.kills
    lines = [
        "# MPI runtime benchmark",
        "",
        f"`python benchmarks/runtime.py` on {os.cpu_count()} CPU(s); table trainer, MLPF table; "
        f"mpiexec from the mpich wheel; times are wall-clock.",
        "",
    ]
    kept = old_sections(Path(args.out, "runtime.md"))
    with tempfile.TemporaryDirectory(prefix="hpoq-bench-runtime-") as tmpdir:
        tmp = Path(tmpdir)
        if "overhead" in parts:
            rows = []
            for name in studies:
                rows += bench_overhead(tmp, ranks, repeats, name)
            sec = overhead_section(rows, repeats)
            print("\n".join(lines + sec), flush=True)
            lines += sec
        else:
            lines += kept.get("overhead", [])
        if "kill" in parts:
            ref, rows = bench_kill(tmp, kills, args.seed)
            sec = [
                "## SIGKILL of the master at a random moment, then `run --resume`",
                "",
                f"Swift R=27 eta=3, seed 1, 4 ranks, sleep 4 ms/epoch; uninterrupted: best trial {ref['best']}, "
                f"{ref['epochs']} epochs, {ref['wall_s']:.1f} s from journal header to end record; the kill time "
                "is uniform over that span, counted from the header of the killed run",
                "",
                "| kill | at (s) | killed mid-study | units finished before | units lost (in flight) | finished "
                "units kept | "
                "lost units counted as failed attempts | other failed units | trials FAILED | same best | "
                "same units as uninterrupted | epochs |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            sec += [
                f"| {i} | {r['at']:.2f} | {r['killed']} | {r['before']} | {r['lost']} | {r['kept']} | "
                f"{r['lost_attempts']} | {r['failures']} | {r['failed_trials']} | "
                f"{r['same_best']} | {r['same_units']} | {r.get('epochs')} |"
                for i, r in enumerate(rows)
            ]
            sec += [
                "",
                f"Longest pause between two journal records of the uninterrupted run: {ref['gap_s']:.2f} s, after "
                f"{ref['gap_after']} results (one scheduler call on the master, e.g. a predictor fit); kills at a "
                "uniformly random time land there in proportion.",
                "",
            ]
            print("\n".join(sec), flush=True)
            lines += sec
        else:
            lines += kept.get("kill", [])
        if "equivalence" in parts:
            seeds = [0] if args.quick else [0, 1, 2]
            rows = bench_equivalence(tmp, seeds, 81, 3, [2] if args.quick else [2, 4])
            sec = [
                "## Swift under mpiexec vs `simulate` (same seed, one worker group), R=81 eta=3",
                "",
                "| seed | ranks | trial groups | simulate epochs | mpiexec epochs | simulate best row | mpiexec "
                "best row | same |",
                "|---|---|---|---|---|---|---|---|",
            ]
            sec += [
                f"| {r['seed']} | {r['ranks']} | {r['groups']} | {r['sim_epochs']} | {r['mpi_epochs']} | "
                f"{r['sim_best_row']} | "
                f"{r['mpi_best_row']} | {r['same']} |"
                for r in rows
            ]
            sec += [
                "",
                "With one trial group the dispatch order equals the simulator's; with more groups Swift sees "
                "results in arrival order, so the rows for 4 ranks are informative, not a target.",
                "",
            ]
            print("\n".join(sec), flush=True)
            lines += sec
        else:
            lines += kept.get("equivalence", [])
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "runtime.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
