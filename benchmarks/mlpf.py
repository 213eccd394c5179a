"""MLPF benchmark: generator speed, HDF5 reads, training throughput (1 and 2 ranks, both backends),
and "hyperparameters matter" (20 random configurations, epoch-3 vs epoch-10 ranking).

Usage: python benchmarks/mlpf.py [--out benchmarks/results] [--quick] [--sections gen,hdf5,train,dp,hpo,pf]

Section ``pf`` (issue 14): upstream's MLPF (``model: particleflow``) beside MiniMLPF at the same
width (parameters, epoch time, events/s at 1 and 2 ranks); written to OUT/mlpf_particleflow.md.

Targets (issue 5): generator >= 2,000 events/s on one core; random single-event HDF5 read <= 100 us;
tiny preset, one epoch of 2,000 events on one core <= 10 s; 20 configs: epoch-10 val_loss spread
>= 10 % of its median and Spearman(epoch-3, epoch-10) >= 0.5. Prints markdown tables (medians of
repeats) and writes them to OUT/mlpf.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# this script is benchmarks/mlpf.py: drop its folder from the path, or it would shadow upstream's
# top-level package `mlpf` (PyPI particleflow) that section pf imports
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def bench_generator(tmp: Path, quick: bool) -> str:
    from hpoq.mlpf.generator import generate_events, make_config
    from hpoq.mlpf.writer import generate_dataset

    n = 500 if quick else 2000
    rows = []
    for preset in ("easy", "clic", "dense"):
        cfg = make_config(preset)
        rates, cpu_rates = [], []
        for rep in range(3):
            t, c = time.perf_counter(), time.process_time()
            for b in range(0, n, 64):
                generate_events(cfg, rep, range(b, min(b + 64, n)))
            rates.append(n / (time.perf_counter() - t))
            cpu_rates.append(n / (time.process_time() - c))
        rows.append(
            (preset, "events only", n, f"{statistics.median(rates):.0f}", f"{statistics.median(cpu_rates):.0f}")
        )
    rates, cpu_rates = [], []
    for rep in range(3):
        t, c = time.perf_counter(), time.process_time()
        generate_dataset(tmp / f"gen{rep}", n, seed=rep, shards=2)
        rates.append(n / (time.perf_counter() - t))
        cpu_rates.append(n / (time.process_time() - c))
    rows.append(
        (
            "clic",
            "generate-data (events + HDF5 + stats + manifest)",
            n,
            f"{statistics.median(rates):.0f}",
            f"{statistics.median(cpu_rates):.0f}",
        )
    )
    return "### Generator (one process, one thread; blocks of 64 events)\n\n" + _table(
        ["preset", "what", "events", "events/s wall (median of 3)", "events/s per CPU-second (median of 3)"], rows
    )


def bench_hdf5(tmp: Path, quick: bool) -> str:
    from hpoq.mlpf import events as ev
    from hpoq.mlpf.writer import generate_dataset

    n = 2000 if quick else 10000
    rows = []
    for comp in ("lzf", "none"):
        d = tmp / f"h5-{comp}"
        generate_dataset(d, n, seed=1, shards=1, val_fraction=0.01, compression=comp)
        m = ev.read_manifest(d)
        path = d / m["splits"]["train"]["shards"][0]["path"]
        rng = np.random.default_rng(0)
        for cache, label in ((0, "no chunk cache"), (64 << 20, "64 MB chunk cache (ShardReader default)")):
            reader = ev.ShardReader(path, cache_bytes=cache)
            nev = len(reader)
            for i in rng.integers(0, nev, 200):
                reader.event(int(i))  # warm-up
            idx = rng.integers(0, nev, 2000)
            t, c = time.perf_counter(), time.process_time()
            for i in idx:
                reader.event(int(i))
            us = (time.perf_counter() - t) / idx.size * 1e6
            us_cpu = (time.process_time() - c) / idx.size * 1e6
            reader.close()
            rows.append((comp, label, nev, f"{os.path.getsize(path) / 1e6:.1f}", f"{us:.0f}", f"{us_cpu:.0f}"))
        t = time.perf_counter()
        ev.load_split(d, "train")
        rows.append(
            (
                comp,
                "load whole split in memory (incl. sha256)",
                nev,
                f"{os.path.getsize(path) / 1e6:.1f}",
                f"{(time.perf_counter() - t) * 1e3:.0f} ms total",
                "",
            )
        )
    return (
        f"### HDF5 random single-event read (X and ytarget of one event, {ev.CHUNK_ROWS}-row chunks; file in "
        f"the page cache)\n\n"
        + _table(["compression", "mode", "events", "MB", "us per event (wall)", "us per event (CPU)"], rows)
    )


def _train_epoch_rate(
    data: Path, preset: str, events: int, backend="none", reps=2, conv_type="attention", extra=None, config=None
):
    """Median (train events/s, epoch s wall, epoch CPU s) of one-epoch runs; ``extra``: more
    TrainSettings fields, ``config``: the trial config (default: lr 1e-3, budget 4096, conv_type)."""
    from hpoq.mlpf.training import TrainSettings, train_unit

    rates, secs, cpus = [], [], []
    config = {"lr": 1e-3, "token_budget": 4096, "conv_type": conv_type} if config is None else config
    for rep in range(reps):
        settings = TrainSettings(
            data=str(data),
            preset=preset,
            R=1,
            backend=backend,
            device="cpu",
            seed=rep,
            max_train_events=events,
            max_val_events=200,
            num_threads=1,
            log_metrics=True,
            **(extra or {}),
        )
        with tempfile.TemporaryDirectory() as ck:
            train_unit(settings, config, 0, 1, ck)
            rec = json.loads(Path(ck, "mlpf-metrics.jsonl").read_text().splitlines()[-1])
        rates.append(rec["train_events_per_s"])
        secs.append(rec["seconds"])
        cpus.append(rec["cpu_seconds_rank0"])
    return statistics.median(rates), statistics.median(secs), statistics.median(cpus)


def bench_train(data: Path, quick: bool) -> str:
    rows = []
    combos = [("tiny", "attention"), ("tiny", "knn"), ("tiny", "lsh"), ("small", "attention")]
    if not quick:
        combos.append(("base", "attention"))
    for preset, conv in combos:
        events = 2000 if preset != "base" else 500
        rate, sec, cpu = _train_epoch_rate(data, preset, events, conv_type=conv)
        rows.append((preset, conv, events, f"{sec:.2f}", f"{cpu:.2f}", f"{rate:.0f}", f"{events / cpu:.0f}"))
    return (
        "### Training throughput, one rank, one CPU thread (token budget 4096; an epoch includes validating 200 "
        "events)\n\n"
        + _table(
            [
                "preset",
                "backbone",
                "train events",
                "epoch s wall",
                "epoch CPU s",
                "train events/s wall",
                "train events per CPU-s",
            ],
            rows,
        )
    )


DP_SCRIPT = textwrap.dedent("""
    import json, sys, tempfile, time
    import torch
    torch.set_num_threads(1)
    from mpi4py import MPI
    from hpoq.mlpf.training import TrainSettings, train_unit
    data, backend, preset, events, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    extra = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    config = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {"lr": 1e-3, "token_budget": 4096}
    comm = MPI.COMM_WORLD
    ck = comm.bcast(tempfile.mkdtemp() if comm.Get_rank() == 0 else None, root=0)
    rates = []
    for rep in range(2):
        s = TrainSettings(data=data, preset=preset, R=1, backend=backend, device="cpu", seed=rep,
                          max_train_events=events, max_val_events=200, num_threads=1, **extra)
        train_unit(s, config, 0, 1, ck + f"/{rep}", comm)
        if comm.Get_rank() == 0:
            rec = json.loads(open(ck + f"/{rep}/mlpf-metrics.jsonl").read().splitlines()[-1])
            rates.append(rec["train_events_per_s"])
    if comm.Get_rank() == 0:
        json.dump({"rate": sorted(rates)[len(rates) // 2]}, open(out, "w"))
""")


def bench_dp(data: Path, tmp: Path, quick: bool) -> str:
    from hpoq.mlpf.distributed import horovod_available

    script = tmp / "dp.py"
    script.write_text(DP_SCRIPT)
    from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path

    env, mpiexec = mpi_child_env(), mpiexec_path()
    rows = []
    for preset in ("tiny", "small"):
        single, _, _ = _train_epoch_rate(data, preset, 2000)
        rows.append((preset, "none", 1, f"{single:.0f}", "1.00"))
        for backend in ("torch", "horovod"):
            if backend == "horovod" and not horovod_available():
                rows.append((preset, backend, 2, "not installed", ""))
                continue
            out = tmp / f"dp-{preset}-{backend}.json"
            proc = subprocess.run(
                [
                    mpiexec,
                    "-n",
                    "2",
                    sys.executable,
                    "-m",
                    "mpi4py",
                    str(script),
                    str(data),
                    backend,
                    preset,
                    "2000",
                    str(out),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if proc.returncode != 0:
                rows.append((preset, backend, 2, "failed: " + proc.stderr.strip().splitlines()[-1][:80], ""))
                continue
            rate = json.loads(out.read_text())["rate"]
            rows.append((preset, backend, 2, f"{rate:.0f}", f"{rate / single:.2f}"))
    return (
        "### Data-parallel training, 2 ranks x 1 thread on this 2-core machine (global events/s, 2,000 events, "
        "one epoch; median of 2)\n\n"
        + _table(["preset", "backend", "ranks", "train events/s", "speed-up vs 1 rank (same run)"], rows)
    )


#: (model, backbone, TrainSettings extras, trial config): MiniMLPF tiny and upstream's MLPF at the same
#: width 32 (attention: 2 heads x 16, 2 layers; LSH: width = embedding 32, 2 layers, bins of 64)
PF_ROWS = [
    ("MiniMLPF tiny", "attention", {}, {"conv_type": "attention"}),
    (
        "particleflow",
        "attention",
        {
            "model": "particleflow",
            "model_params": {
                "model.attention.num_heads": 2,
                "model.attention.head_dim": 16,
                "model.attention.num_convs": 2,
            },
        },
        {},
    ),
    ("MiniMLPF tiny", "lsh", {}, {"conv_type": "lsh"}),
    (
        "particleflow",
        "gnn_lsh",
        {
            "model": "particleflow",
            "model_params": {
                "conv_type": "gnn_lsh",
                "model.gnn_lsh.width": 32,
                "model.gnn_lsh.embedding_dim": 32,
                "model.gnn_lsh.num_convs": 2,
                "model.gnn_lsh.bin_size": 64,
            },
        },
        {},
    ),
]


def _n_params(data: Path, extra: dict, config: dict) -> int:
    from hpoq.mlpf.events import read_manifest
    from hpoq.mlpf.training import MODEL_FACTORIES, TrainSettings, split_config

    settings = TrainSettings(data=str(data), **extra)
    model_over, _ = split_config(config, settings.model)
    model = MODEL_FACTORIES[settings.model](settings, model_over, read_manifest(data)).build()
    return sum(p.numel() for p in model.parameters())


def bench_particleflow(data: Path, tmp: Path, quick: bool) -> str:
    """Upstream's MLPF beside MiniMLPF at the same width: parameters, epoch time, events/s at 1 and 2 ranks."""
    from hpoq.mlpf.distributed import horovod_available
    from hpoq.mlpf.upstream import unavailable_reason
    from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path

    if unavailable_reason():
        return f"### particleflow vs MiniMLPF\n\nnot run: {unavailable_reason()}"
    script = tmp / "dp.py"
    script.write_text(DP_SCRIPT)
    env, mpiexec = mpi_child_env(), mpiexec_path()
    events = 500 if quick else 2000
    backends = ["torch"] + (["horovod"] if horovod_available() else [])
    rows = []
    for model, conv, extra, cfg in PF_ROWS:
        config = {"lr": 1e-3, "token_budget": 4096, **cfg}
        rate, sec, cpu = _train_epoch_rate(data, "tiny", events, extra=extra, config=config)
        dp = []
        for backend in backends:
            out = tmp / f"pf-{model}-{conv}-{backend}.json".replace(" ", "_")
            proc = subprocess.run(
                [
                    mpiexec,
                    "-n",
                    "2",
                    sys.executable,
                    "-m",
                    "mpi4py",
                    str(script),
                    str(data),
                    backend,
                    "tiny",
                    str(events),
                    str(out),
                    json.dumps(extra),
                    json.dumps(config),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            dp.append(
                f"{json.loads(out.read_text())['rate']:.0f}"
                if proc.returncode == 0
                else "failed: " + proc.stderr.strip().splitlines()[-1][:60]
            )
        n_params = _n_params(data, extra, config)
        rows.append((model, conv, f"{n_params:,}", f"{sec:.2f}", f"{cpu:.2f}", f"{rate:.0f}", *dp))
    return (
        f"### particleflow (upstream MLPF 3.1.0) vs MiniMLPF at width 32, CPU, 1 thread per rank ({events:,} train "
        "events, token budget 4096; an epoch includes validating 200 events; median of 2)\n\n"
        + _table(
            [
                "model",
                "backbone",
                "parameters",
                "epoch s wall (1 rank)",
                "epoch CPU s (1 rank)",
                "train events/s, 1 rank",
            ]
            + [f"train events/s, 2 ranks ({b})" for b in backends],
            rows,
        )
        + "\n\nGPU rows (bf16 autocast on CUDA): not measured, no GPU was lent to this session."
    )


def _hpo_trial(args):
    data, config, epochs, seed = args
    torch.set_num_threads(1)
    from hpoq.mlpf.training import TrainingFailed, TrainSettings, train_unit

    settings = TrainSettings(
        data=data, preset="tiny", R=epochs, backend="none", device="cpu", seed=seed, num_threads=1, log_metrics=False
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as ck:
        try:
            curve = train_unit(settings, config, 0, epochs, ck)
        except TrainingFailed as exc:
            return config, None, str(exc), time.perf_counter() - t
    return config, curve, "", time.perf_counter() - t


def bench_hpo(data: Path, quick: bool, jobs: int) -> str:
    from scipy.stats import spearmanr

    from hpoq.mlpf.search_space import SEARCH_SPACE_CPU
    from hpoq.study.space import SearchSpace

    n_configs, epochs = (6, 4) if quick else (20, 10)
    space = SearchSpace.from_spec(SEARCH_SPACE_CPU, seed=2024)
    configs = [space.sample() for _ in range(n_configs)]
    args = [(str(data), c, epochs, 0) for c in configs]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_hpo_trial, args))
    else:
        results = [_hpo_trial(a) for a in args]
    rows, finals, early = [], [], []
    e_early = 3 if not quick else 2
    for i, (cfg, curve, _err, sec) in enumerate(results):
        short = {
            k: (f"{v:.2g}" if isinstance(v, float) else v)
            for k, v in cfg.items()
            if k
            in (
                "conv_type",
                "num_convs",
                "lr",
                "optimizer",
                "schedule",
                "token_budget",
                "width",
                "num_heads",
                "k",
                "bin_size",
            )
        }
        if curve is None:
            rows.append((i, json.dumps(short), "diverged", "", f"{sec:.0f}"))
            continue
        finals.append(curve[-1])
        early.append(curve[e_early - 1])
        rows.append((i, json.dumps(short), f"{curve[e_early - 1]:.3f}", f"{curve[-1]:.3f}", f"{sec:.0f}"))
    finals_a = np.asarray(finals)
    med = float(np.median(finals_a))
    p10, p90 = np.percentile(finals_a, [10, 90])
    rho = float(spearmanr(early, finals).statistic) if len(finals) > 2 else float("nan")
    summary = [
        ("configs (finished / total)", f"{len(finals)} / {n_configs}", ""),
        (f"epoch-{epochs} val_loss median", f"{med:.3f}", ""),
        ("(max - min) / median", f"{(finals_a.max() - finals_a.min()) / med:.2f}", ""),
        ("(p90 - p10) / median", f"{(p90 - p10) / med:.2f}", ">= 0.10"),
        ("std / median", f"{finals_a.std() / med:.2f}", ""),
        (f"Spearman(epoch-{e_early} ranking, epoch-{epochs} ranking)", f"{rho:.2f}", ">= 0.5"),
    ]
    return (
        f"### Hyperparameters matter: {n_configs} random configs of SEARCH_SPACE_CPU (tiny preset base), "
        f"{epochs} epochs, one core each\n\n"
        + _table(["#", "config (main keys)", f"val_loss ep {e_early}", f"val_loss ep {epochs}", "s"], rows)
        + "\n\n"
        + _table(["statistic", "value", "target"], summary)
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--sections", default="gen,hdf5,train,dp,hpo,pf")
    ap.add_argument("--jobs", type=int, default=1, help="processes for the 20-config check (default 1)")
    ap.add_argument("--hpo-events", type=int, default=600, help="training events for the 20-config check")
    args = ap.parse_args(argv)
    from hpoq.mlpf.writer import generate_dataset

    sections = set(args.sections.split(","))
    out_parts = [
        f"## MLPF benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, CUDA {'yes' if torch.cuda.is_available() else 'no'})"
    ]
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        if {"train", "dp", "pf"} & sections:
            data = tmp / "train-data"
            generate_dataset(data, 2250, seed=7, shards=2, val_fraction=0.1, workers=2)
        if "gen" in sections:
            out_parts.append(bench_generator(tmp, args.quick))
            print(out_parts[-1] + "\n", flush=True)
        if "hdf5" in sections:
            out_parts.append(bench_hdf5(tmp, args.quick))
            print(out_parts[-1] + "\n", flush=True)
        if "train" in sections:
            out_parts.append(bench_train(data, args.quick))
            print(out_parts[-1] + "\n", flush=True)
        if "dp" in sections:
            out_parts.append(bench_dp(data, tmp, args.quick))
            print(out_parts[-1] + "\n", flush=True)
        if "pf" in sections:
            pf = bench_particleflow(data, tmp, args.quick)
            print(pf + "\n", flush=True)
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "mlpf_particleflow.md").write_text(f"{out_parts[0]}\n\n{pf}\n")
        if "hpo" in sections:
            hdata = tmp / "hpo-data"
            n = args.hpo_events
            generate_dataset(hdata, int(n / 0.8), seed=11, shards=2, val_fraction=0.2, workers=2)
            out_parts.append(bench_hpo(hdata, args.quick, args.jobs))
            print(out_parts[-1] + "\n", flush=True)
    if len(out_parts) > 1:  # section pf alone leaves mlpf.md as it is
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "mlpf.md").write_text("\n\n".join(out_parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
