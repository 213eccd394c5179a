"""GPU check (issue 21): one command that tells whether hpoq's GPU path works on this machine.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu.md]   # on a GPU machine: under 8 minutes
    python benchmarks/gpu_check.py --dry-run                           # CPU: the same steps at toy sizes

Steps, each a row of the markdown table with its numbers and PASS / FAIL (exit status 1 on any FAIL):

1. **device map**: real ``mpiexec`` with 1 + G ranks (G = GPUs of the node), the trial groups of
   ``hpoq run`` for ranks_per_trial 1, 2 and 4 (those that fit), :func:`hpoq.runtime.gpus.assign_gpus`:
   every worker rank has its own GPU, the master none; and the backend ``auto`` picks there.
2. **MiniMLPF** and 3. **upstream particleflow** (attention): 2 epochs in fp32 and 2 in bf16 on
   ``cuda:0``: train events/s (2nd epoch), peak GPU memory, val_loss after 2 epochs; PASS when both
   losses are finite and within 10 % of each other.
4. **2-rank data-parallel unit over NCCL** (G >= 2): torch.distributed + NCCL, and Horovod when it
   was built with NCCL: identical parameters on both ranks, events/s.
5. **exact resume on GPU**: with ``deterministic: true`` a unit resumed from its checkpoint equals the
   unit trained straight through bit for bit (curve and parameters); without, the largest difference
   is reported (atomics in scatter backward).
6. **4-rank study of the table trainer** (``examples/mlpf-table.yaml``, 1 master + 3 workers): finishes.

``--dry-run`` runs every step on the CPU (gloo instead of NCCL, bf16 through CPU autocast, 3 ranks
for the device map) at toy sizes: the test suite runs it so the script is known to work before a GPU
machine is lent. Internal modes (spawned under mpiexec): ``--probe-device-map OUT``,
``--dp-unit DATA BACKEND OUT``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# drop benchmarks/ from the path: benchmarks/mlpf.py would shadow upstream's package `mlpf`
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")

#: sizes: (events generated, MiniMLPF preset, token budget, upstream model params)
SIZES = {
    "gpu": dict(
        events=8000,
        preset="base",
        token_budget=32768,
        upstream={"model.attention.num_heads": 8, "model.attention.head_dim": 32, "model.attention.num_convs": 3},
    ),
    "dry": dict(
        events=160,
        preset="tiny",
        token_budget=1024,
        upstream={"model.attention.num_heads": 2, "model.attention.head_dim": 8, "model.attention.num_convs": 1},
    ),
}
BF16_TOLERANCE = 0.10  # |bf16 - fp32| / fp32 of the val_loss after 2 epochs
BUDGET_S = 450.0  # steps not started by then are reported as FAIL (not run); the whole check stays < 8 min


# ------------------------------------------------------------------ modes run under mpiexec


def probe_device_map(out: str) -> None:
    """Every rank: the groups of ``hpoq run`` for ranks_per_trial 1, 2, 4 (those that fit), its GPU and
    its backend; rank 0 writes all records to ``out`` (JSON)."""
    import torch
    from mpi4py import MPI

    from hpoq.errors import ConfigError
    from hpoq.mlpf.distributed import TorchBackend, pick_device, resolve_backend
    from hpoq.runtime import gpus
    from hpoq.runtime.groups import GroupLayout, split_groups

    world = MPI.COMM_WORLD
    node = os.environ.get("PMI_HOSTNAME") or MPI.Get_processor_name()  # hydra's (possibly fake) host name
    records = []
    for rpt in (1, 2, 4):
        if world.Get_size() - 1 < rpt:
            continue
        layout = GroupLayout(world.Get_size(), rpt)
        group = split_groups(world, layout)
        gpus.release()
        rec = {"rpt": rpt, "rank": world.Get_rank(), "node": node, "group": layout.group_of(world.Get_rank())}
        rec["visible"] = os.environ.get("CUDA_VISIBLE_DEVICES")  # a launcher's binding (jobs/gpu_bind.sh)
        try:
            rec["index"] = gpus.assign_gpus(world, group is not None and torch.cuda.is_available())
        except ConfigError as exc:
            rec["error"] = str(exc)
        if group is not None and "error" not in rec:
            device = pick_device("auto", group)
            rec.update(device=str(device), backend=resolve_backend("auto", group, device))
            rec["dist_backend"] = TorchBackend.dist_backend(device)
        if group is not None:
            group.Free()
        records.append(rec)
    everything = world.gather(records, root=0)
    if world.Get_rank() == 0:
        Path(out).write_text(json.dumps([r for part in everything for r in part]))


def dp_unit(data: str, backend: str, out: str) -> None:
    """Every rank: one 2-epoch unit of MiniMLPF data-parallel over COMM_WORLD; rank 0 writes the result."""
    import torch
    from mpi4py import MPI

    from hpoq.mlpf.training import METRICS_LOG, TrainSettings, train_unit

    comm = MPI.COMM_WORLD.Dup()
    sizes = json.loads(os.environ["HPOQ_GPU_CHECK_SIZES"])
    settings = TrainSettings(data=data, R=2, backend=backend, seed=3, preset=sizes["preset"], num_threads=1)
    ckpt = Path(out).parent / f"dp-{backend}"
    curve, state = train_unit(settings, {"token_budget": sizes["token_budget"]}, 0, 2, ckpt, comm, return_state=True)
    flat = torch.cat([v.reshape(-1).double() for _, v in sorted(state.items())])
    flats = comm.gather(flat, root=0)
    if comm.Get_rank() == 0:
        log = [json.loads(x) for x in (ckpt / METRICS_LOG).read_text().splitlines()]
        diff = max(float((f - flats[0]).abs().max()) for f in flats)
        Path(out).write_text(
            json.dumps({"curve": curve, "max_rank_diff": diff, "events_per_s": log[-1]["train_events_per_s"]})
        )


# ------------------------------------------------------------------ the steps


class Check:
    def __init__(self, dry: bool, tmp: Path, budget_s: float):
        import torch

        self.dry, self.tmp, self.budget_s = dry, tmp, budget_s
        self.sizes = SIZES["dry" if dry else "gpu"]
        self.gpus = 0 if dry else torch.cuda.device_count()
        self.device = "cpu" if dry else "cuda"
        self.rows: list[tuple] = []
        self.raw: dict = {}  # the numbers behind the rows (--json)
        self.t0 = time.perf_counter()
        self.data = tmp / "data"

    def settings(self, **kw):
        """One process's TrainSettings for a 2-epoch unit on this check's data and device."""
        from hpoq.mlpf.training import TrainSettings

        base = dict(data=str(self.data), R=2, backend="none", device=self.device, preset=self.sizes["preset"])
        return TrainSettings(**base, num_threads=1 if self.dry else None, **kw)

    def row(self, step: str, numbers: str, ok: bool | None) -> None:
        verdict = "skipped" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append((step, numbers, verdict))
        print(f"gpu_check: {step}: {verdict}: {numbers}", file=sys.stderr, flush=True)

    def run(self, name: str, fn) -> None:
        if time.perf_counter() - self.t0 > self.budget_s:
            self.row(name, f"not run: the {self.budget_s:.0f} s budget was spent", False)
            return
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 -- a step's failure is a FAIL row, the other steps still run
            self.row(name, f"{type(exc).__name__}: {str(exc)[:300]}", False)
        print(f"gpu_check: {name} took {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)

    def mpiexec(self, n: int, args: list[str], timeout: float, extra_env: dict | None = None):
        from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path

        env = mpi_child_env()
        env["HPOQ_GPU_CHECK_SIZES"] = json.dumps(self.sizes)
        env.update(extra_env or {})
        cmd = [mpiexec_path(), "-n", str(n), sys.executable, "-m", "mpi4py", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return proc

    # 1
    def device_map(self) -> None:
        n_workers = 2 if self.dry else self.gpus
        out = self.tmp / "device-map.json"
        self.mpiexec(1 + n_workers, [__file__, "--probe-device-map", str(out)], timeout=180)
        records = json.loads(out.read_text())
        parts, ok = [], True
        for rpt in sorted({r["rpt"] for r in records}):
            recs = [r for r in records if r["rpt"] == rpt]
            errors = [r["error"] for r in recs if "error" in r]
            workers = [r for r in recs if r["group"] is not None]
            devices = [r.get("device") for r in workers]
            master = next(r for r in recs if r["rank"] == 0)
            distinct = len(set(devices)) == len(devices) if not self.dry else set(devices) == {"cpu"}
            good = not errors and distinct and master.get("index") is None and bool(workers)
            ok &= good
            backends = sorted({r.get("backend") for r in workers})
            parts.append(f"{rpt}/trial: {','.join(map(str, devices))} ({'/'.join(map(str, backends))})")
            if errors:
                parts.append(errors[0])
        self.row(f"device map, {1 + n_workers} ranks", "; ".join(parts), ok)

    def _epochs(self, model: str, precision: str, tag: str) -> dict:
        import torch

        from hpoq.mlpf.training import METRICS_LOG, train_unit

        extra = {}
        if model == "particleflow":
            extra = dict(model="particleflow", model_params=self.sizes["upstream"])
        settings = self.settings(seed=1, precision=precision, **extra)
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        ckpt = self.tmp / f"{model}-{tag}"
        curve = train_unit(settings, {"token_budget": self.sizes["token_budget"]}, 0, 2, ckpt)
        log = [json.loads(x) for x in (ckpt / METRICS_LOG).read_text().splitlines()]
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.device == "cuda" else None
        return {"loss": curve[-1], "events_per_s": log[-1]["train_events_per_s"], "peak_mib": peak}

    def model_epochs(self, model: str) -> None:
        if model == "particleflow":
            from hpoq.mlpf import upstream

            reason = upstream.unavailable_reason()
            if reason:
                self.row("upstream particleflow, 2 epochs", f"not installed: {reason}", False)
                return
        fp32 = self._epochs(model, "fp32", "fp32")
        bf16 = self._epochs(model, "bf16", "bf16")
        self.raw[model] = {"fp32": fp32, "bf16": bf16}
        rel = abs(bf16["loss"] - fp32["loss"]) / abs(fp32["loss"])
        ok = math.isfinite(fp32["loss"]) and math.isfinite(bf16["loss"]) and rel < BF16_TOLERANCE
        name = "MiniMLPF" if model == "mini" else "upstream particleflow (attention)"
        numbers = "; ".join(
            f"{tag}: {r['events_per_s']:.0f} ev/s, peak "
            + ("n/a on CPU" if r["peak_mib"] is None else f"{r['peak_mib']:.0f} MiB")
            + f", loss {r['loss']:.4f}"
            for tag, r in (("fp32", fp32), ("bf16", bf16))
        )
        numbers += f"; |bf16-fp32|/fp32 {rel:.4f} (< {BF16_TOLERANCE})"
        self.row(f"{name}, 2 epochs on {self.device}", numbers, ok)

    # 4
    def data_parallel(self) -> None:
        if not self.dry and self.gpus < 2:
            self.row("2-rank unit over NCCL", f"{self.gpus} GPU: needs 2", None)
            return
        backends = ["torch"]
        try:
            from hpoq.mlpf.distributed import horovod_available, horovod_has_cuda

            if horovod_available() and not self.dry and horovod_has_cuda():  # dry: tests/test_mlpf_distributed
                backends.append("horovod")
        except Exception:  # noqa: BLE001 -- a broken Horovod is reported by the torch row's absence of it
            pass
        for backend in backends:
            out = self.tmp / f"dp-{backend}.json"
            self.mpiexec(2, [__file__, "--dp-unit", str(self.data), backend, str(out)], timeout=300)
            res = json.loads(out.read_text())
            wire = ("gloo" if self.dry else "NCCL") if backend == "torch" else "Horovod"
            numbers = (
                f"{res['events_per_s']:.0f} ev/s over 2 ranks, loss {res['curve'][-1]:.4f}, "
                f"max parameter difference between ranks {res['max_rank_diff']:.1e}"
            )
            self.row(f"2-rank unit, {backend} ({wire})", numbers, res["max_rank_diff"] == 0.0)

    # 5
    def resume(self) -> None:
        import torch

        from hpoq.mlpf.training import train_unit

        config = {"token_budget": self.sizes["token_budget"], "dropout": 0.1, "lr": 2e-3}
        parts, ok = [], True
        for deterministic in (True, False):
            settings = self.settings(seed=2, deterministic=deterministic)
            tag = "det" if deterministic else "nondet"
            straight, s_state = train_unit(settings, config, 0, 2, self.tmp / f"straight-{tag}", return_state=True)
            first = train_unit(settings, config, 0, 1, self.tmp / f"resumed-{tag}")
            rest, r_state = train_unit(settings, config, 1, 2, self.tmp / f"resumed-{tag}", return_state=True)
            diff = max(float((s_state[k].double() - r_state[k].double()).abs().max()) for k in s_state)
            equal = first + rest == straight and diff == 0.0
            flag = str(deterministic).lower()
            parts.append(f"deterministic {flag}: max |param diff| {diff:.1e}, curves equal {equal}")
            if deterministic:
                ok = equal
        if self.device == "cuda":
            torch.use_deterministic_algorithms(False)
        self.row(f"exact resume on {self.device}", "; ".join(parts), ok)

    # 6
    def table_study(self) -> None:
        import yaml

        from hpoq.runtime.mpienv import mpi_child_env, mpiexec_path

        out, study = self.tmp / "table-study", REPO / "examples" / "mlpf-table.yaml"
        if self.dry:  # the same study at R = 9: a third of the units
            doc = yaml.safe_load(study.read_text())
            doc["algorithm"]["R"] = 9
            doc["trainer"]["params"]["table"] = str((study.parent / doc["trainer"]["params"]["table"]).resolve())
            study = self.tmp / "mlpf-table-R9.yaml"
            study.write_text(yaml.safe_dump(doc))
        t = time.perf_counter()
        cmd = [mpiexec_path(), "-n", "4", sys.executable, "-m", "mpi4py", "-m", "hpoq.main", "run"]
        cmd += [str(study), "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=mpi_child_env(), cwd=REPO, timeout=300)
        wall = time.perf_counter() - t
        ok = proc.returncode == 0 and (out / "best.yaml").exists()
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1].split("; outputs in")[0]
        self.row("4-rank study of the table trainer", f"{wall:.1f} s, exit {proc.returncode}: {last[:200]}", ok)

    def environment(self) -> str:
        import torch

        lines = [f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}"]
        for i in range(self.gpus):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"cuda:{i}: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute {p.major}.{p.minor}")
        try:
            import horovod.torch as hvd

            lines.append(f"Horovod: nccl_built {hvd.nccl_built()}, mpi_built {hvd.mpi_built()}")
        except Exception as exc:  # noqa: BLE001 -- informative only
            lines.append(f"Horovod: not importable ({type(exc).__name__})")
        return "; ".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU only, toy sizes (the test suite runs this)")
    parser.add_argument("--out", help="also write the markdown to this file")
    parser.add_argument("--json", help="also write the rows and their numbers to this file")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S)
    parser.add_argument("--probe-device-map", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--dp-unit", nargs=3, metavar=("DATA", "BACKEND", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_device_map:
        probe_device_map(args.probe_device_map)
        return 0
    if args.dp_unit:
        dp_unit(*args.dp_unit)
        return 0

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device here; run with --dry-run for the CPU rehearsal", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpoq-gpu-check-") as tmp:
        check = Check(args.dry_run, Path(tmp), args.budget_s)
        from hpoq.mlpf.writer import generate_dataset

        generate_dataset(check.data, check.sizes["events"], seed=7, preset="clic", shards=2, val_fraction=0.2)
        env = check.environment()
        check.run("device map", check.device_map)
        check.run("MiniMLPF", lambda: check.model_epochs("mini"))
        check.run("upstream particleflow", lambda: check.model_epochs("particleflow"))
        check.run("2-rank unit", check.data_parallel)
        check.run("exact resume", check.resume)
        check.run("table study", check.table_study)
    wall = time.perf_counter() - t0
    failed = [r for r in check.rows if r[2] == "FAIL"]
    mode = "dry run on CPU" if args.dry_run else f"{check.gpus} GPU(s)"
    lines = [
        f"## gpu_check ({mode}, {check.sizes['events']} events, MiniMLPF preset {check.sizes['preset']})",
        "",
        env,
        "",
        "| step | numbers | result |",
        "|---|---|---|",
        *[f"| {a} | {b.replace('|', chr(92) + '|')} | {c} |" for a, b, c in check.rows],
        "",
        f"gpu_check: {'FAIL' if failed else 'PASS'} ({len(check.rows) - len(failed)} of {len(check.rows)} rows "
        f"not failed) in {wall:.0f} s",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": check.rows, "raw": check.raw, "wall_s": wall}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
