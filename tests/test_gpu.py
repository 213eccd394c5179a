"""The GPU path without a GPU: CUDA mocked (tests/fake_cuda.py) where this machine lacks it, the rest real.

- the device map: real ``mpiexec`` ranks on one and on two "nodes" (hydra's fork launcher with two host
  names: MPICH's shared-memory split then sees two nodes), 1, 2 and 4 ranks per trial, a whole study,
  and the refusal of more worker ranks than GPUs;
- the backend choice against the real, CPU-only Horovod build of this machine;
- bf16 autocast selected on CUDA and run for real on the CPU (MiniMLPF and upstream's attention);
- exact resume (every RNG state restored) on the CPU, and on CUDA where there is one;
- CUDA out-of-memory fails the trial with kind ``oom``; ``jobs/gpu_bind.sh`` on two nodes;
- ``benchmarks/gpu_check.py --dry-run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import MLPF_TABLE, mpi_env, mpiexec

torch = pytest.importorskip("torch", reason="the GPU path needs torch (pip install 'hpoq[mlpf]')")

from hpoq.errors import ConfigError  # noqa: E402
from hpoq.mlpf import distributed  # noqa: E402
from hpoq.mlpf.training import ModelSpec, TrainSettings, pad_multiple, train_unit, uses_bf16  # noqa: E402
from hpoq.runtime import gpus  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAKE_CUDA = str(REPO / "tests" / "fake_cuda.py")
GPU_CHECK = str(REPO / "benchmarks" / "gpu_check.py")
PLUGINS = str(REPO / "tests" / "plugins")
HAS_CUDA = torch.cuda.is_available()

torch.set_num_threads(1)


def fake_env(n_gpus: int = 4, **extra) -> dict:
    env = mpi_env()
    env.update(HPOQ_FAKE_GPUS=str(n_gpus), **extra)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["PYTHONPATH"] = os.pathsep.join([PLUGINS, env["PYTHONPATH"]])
    return env


def hosts_args(layout: dict) -> list[str]:
    """hydra: ``-launcher fork -hosts nodeA:5,...``: every rank runs here, MPI sees these nodes."""
    return ["-launcher", "fork", "-hosts", ",".join(f"{h}:{n}" for h, n in layout.items())]


# ---------------------------------------------------------------- the plan of one node (pure)


def test_plan_node_gives_each_gpu_rank_its_own_gpu_and_refuses_more_ranks_than_gpus():
    four = [f"uuid:{i}" for i in range(4)]
    # master (None), 4 workers seeing all GPUs
    assert gpus.plan_node([None, four, four, four, four]) == [None, 0, 1, 2, 3]
    # a launcher bound each rank to one GPU: each takes its own cuda:0
    assert gpus.plan_node([None] + [[f"visible:{i}"] for i in (2, 0, 3, 1)]) == [None, 0, 0, 0, 0]
    # an idle rank between workers takes none and shifts nothing
    assert gpus.plan_node([four, None, four]) == [0, None, 1]
    with pytest.raises(ConfigError) as err:
        gpus.plan_node([None] + [four] * 5, "node n1")
    msg = str(err.value)
    assert "\n" not in msg and "node n1: 5 ranks" in msg and "4 GPU(s)" in msg and "device: cpu" in msg
    with pytest.raises(ConfigError, match="see 1 GPU"):
        gpus.plan_node([["visible:0"], ["visible:0"]])  # two ranks bound to the same GPU


# ---------------------------------------------------------------- the device map under real mpiexec


@pytest.mark.mpi
@pytest.mark.parametrize(
    "nodes",
    [{"nodeA": 5}, {"nodeA": 4, "nodeB": 4}],
    ids=["1 node, 5 ranks", "2 nodes, 4+4 ranks (groups span them)"],
)
def test_device_map_for_1_2_4_ranks_per_trial(nodes, tmp_path):
    """Every worker rank of a node its own GPU, the master none, for 1, 2 and 4 ranks per trial; the
    trial groups (hpoq run's) span the two nodes where they fall so, and idle ranks take no GPU."""
    out = tmp_path / "map.json"
    n = sum(nodes.values())
    cmd = [mpiexec(), *hosts_args(nodes), "-n", str(n), sys.executable, "-m", "mpi4py", FAKE_CUDA, "--script"]
    cmd += [GPU_CHECK, "--probe-device-map", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=fake_env(4), cwd=REPO, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    host_of = {}
    for name, count in nodes.items():
        for _ in range(count):
            host_of[len(host_of)] = name
    for rpt in (1, 2, 4):
        recs = [r for r in records if r["rpt"] == rpt]
        assert len(recs) == n and not [r for r in recs if "error" in r], recs
        workers = [r for r in recs if r["group"] is not None]
        assert len(workers) == (n - 1) // rpt * rpt
        assert all(r["node"] == host_of[r["rank"]] for r in recs)  # MPI saw the launcher's nodes
        placed = [(r["node"], r["device"]) for r in workers]
        assert len(set(placed)) == len(placed), f"{rpt} ranks per trial: two workers share a GPU: {placed}"
        for node in nodes:  # on each node the GPU ranks take cuda:0, 1, ... in rank order
            mine = [r["device"] for r in workers if r["node"] == node]
            assert mine == [f"cuda:{i}" for i in range(len(mine))]
        assert all(r["index"] is None for r in recs if r["group"] is None)  # master and idle ranks: none
        # torch.distributed over NCCL for groups; the CPU-only Horovod of this machine is never picked on CUDA
        assert {r["backend"] for r in workers} == ({"none"} if rpt == 1 else {"torch"})
        assert {r["dist_backend"] for r in workers} == {"nccl"}
    if len(nodes) == 2:  # rpt 4: ranks 1-3 on nodeA and 4 on nodeB form one group
        group0 = {r["node"] for r in records if r["rpt"] == 4 and r["group"] == 0}
        assert group0 == {"nodeA", "nodeB"}


def _probe_study(tmp_path, rpt: int, R: int = 3) -> tuple[str, Path]:
    record = tmp_path / "probe.jsonl"
    doc = {
        "name": "gpu-probe",
        "seed": 1,
        "algorithm": {"name": "hyperband", "R": R, "eta": 3},
        "trainer": {"name": "gpu_probe:GpuProbe", "params": {"table": str(MLPF_TABLE), "record": str(record)}},
        "space": "table",
        "poll_interval": 0.01,
        "ranks_per_trial": rpt,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path), record


def run_fake_study(launcher: list[str], study: str, out: Path, env: dict, timeout: float = 240):
    cmd = [*launcher, sys.executable, "-m", "mpi4py", FAKE_CUDA, "run", study, "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def check_probe_study(proc, record: Path, n_workers: int) -> list[dict]:
    """The study finished; every worker rank trained on its own GPU of its node, with NCCL and bf16."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    by_rank = {}
    for r in lines:
        by_rank.setdefault(r["rank"], set()).add((r["node"], r["device"]))
    assert sorted(by_rank) == list(range(1, n_workers + 1)), "every worker rank trained"
    assert all(len(v) == 1 for v in by_rank.values()), "a rank changed GPU between units"
    placed = [next(iter(v)) for v in by_rank.values()]
    assert len(set(placed)) == len(placed), placed
    assert {(r["bf16"], r["pad"], r["dist_backend"]) for r in lines} == {(True, 8, "nccl")}
    return lines


@pytest.mark.mpi
def test_a_study_on_two_nodes_gives_every_worker_its_own_gpu_and_says_once_why_not_horovod(tmp_path):
    study, record = _probe_study(tmp_path, rpt=2)
    log = tmp_path / "set_device.jsonl"
    env = fake_env(2, HPOQ_FAKE_CUDA_LOG=str(log))  # 2 GPUs per node: master + 2 workers, 2 workers
    nodes = {"nodeA": 3, "nodeB": 2}
    proc = run_fake_study([mpiexec(), *hosts_args(nodes), "-n", "5"], study, tmp_path / "out", env)
    lines = check_probe_study(proc, record, 4)
    assert {r["backend"] for r in lines} == {"torch"}  # groups of 2 on CUDA; this Horovod has no NCCL
    if distributed.horovod_available():
        assert proc.stderr.count("built without CUDA") == 1, proc.stderr  # one line for the study
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    assert 0 not in {c["rank"] for c in calls}, "the master touched a GPU"
    assert sorted({c["rank"] for c in calls}) == list(range(1, 5))
    assert {(r["node"], r["device"]) for r in lines} == {(n, f"cuda:{i}") for n in ("nodeA", "nodeB") for i in (0, 1)}


@pytest.mark.mpi
def test_more_worker_ranks_than_gpus_on_a_node_is_refused_in_one_line(tmp_path):
    study, record = _probe_study(tmp_path, rpt=1)
    out = tmp_path / "out"
    proc = run_fake_study([mpiexec(), "-n", "4"], study, out, fake_env(2))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith("hpoq: error:")]
    assert len(errors) == 1 and "3 ranks train on GPUs but they see 2 GPU(s)" in errors[0], proc.stderr
    assert not out.exists() and not record.exists()  # nothing written, nothing trained


# ---------------------------------------------------------------- backend choice (real Horovod, no CUDA)


class _Comm:
    def __init__(self, size: int, rank: int = 0):
        self.size, self.rank = size, rank

    def Get_size(self):
        return self.size

    def Get_rank(self):
        return self.rank


def test_backend_auto_never_gives_cuda_tensors_to_a_horovod_without_cuda(monkeypatch, caplog):
    hvd = pytest.importorskip("horovod.torch")
    assert not hvd.nccl_built(), "this machine's Horovod is the CPU build the suite expects"
    cuda, cpu, comm = torch.device("cuda", 1), torch.device("cpu"), _Comm(2)
    monkeypatch.setattr(distributed, "_FALLBACK_LOGGED", False)
    assert distributed.resolve_backend("auto", comm, cpu) == "horovod"
    with caplog.at_level("WARNING", logger="hpoq.mlpf.distributed"):
        assert distributed.resolve_backend("auto", comm, cuda) == "torch"
        assert distributed.resolve_backend("auto", comm, cuda) == "torch"
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "torch.distributed over NCCL" in caplog.records[0].getMessage()
    with pytest.raises(ConfigError, match="built without CUDA"):
        distributed.resolve_backend("horovod", comm, cuda)
    assert distributed.resolve_backend("torch", comm, cuda) == "torch"
    assert distributed.TorchBackend.dist_backend(cuda) == "nccl"
    assert distributed.TorchBackend.dist_backend(cpu) == "gloo"
    assert distributed.resolve_backend("auto", _Comm(1), cuda) == "none"
    # a Horovod built with NCCL (what this machine lacks) is used on CUDA
    monkeypatch.setattr(distributed, "horovod_has_cuda", lambda: True)
    assert distributed.resolve_backend("auto", comm, cuda) == "horovod"
    assert distributed.resolve_backend("horovod", comm, cuda) == "horovod"


def test_backend_auto_without_horovod_is_torch(monkeypatch):
    monkeypatch.setattr(distributed, "horovod_available", lambda: False)
    assert distributed.resolve_backend("auto", _Comm(2), torch.device("cuda", 0)) == "torch"
    assert distributed.resolve_backend("auto", _Comm(2), torch.device("cpu")) == "torch"


# ---------------------------------------------------------------- bf16, padding, device choice in-process


def test_bf16_and_padding_are_selected_on_cuda_only(monkeypatch):
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert uses_bf16("auto", cuda) and not uses_bf16("auto", cpu)
    assert uses_bf16("bf16", cpu) and not uses_bf16("fp32", cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a V100: fp32
    assert not uses_bf16("auto", cuda)
    settings = TrainSettings(data="-")
    assert pad_multiple(settings, ModelSpec({}, 1, None), cuda) == 8
    assert pad_multiple(settings, ModelSpec({}, 1, None), cpu) == 1
    assert pad_multiple(settings, ModelSpec({}, 32, None), cuda) == 32  # upstream's LSH bins
    assert pad_multiple(settings, ModelSpec({}, 12, None), cuda) == 24


def test_pick_device_and_the_mlpf_trainer_want_the_gpu_only_on_cuda(monkeypatch, tmp_path):
    from hpoq.mlpf.writer import generate_dataset
    from hpoq.trainers.mlpf import MLPFTrainer

    generate_dataset(tmp_path / "d", 40, seed=1, preset="easy", shards=1, val_fraction=0.25)
    trainer = MLPFTrainer(data=str(tmp_path / "d"))
    assert not trainer.wants_gpu()  # this machine: no CUDA
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert trainer.wants_gpu()
    assert not MLPFTrainer(data=str(tmp_path / "d"), device="cpu").wants_gpu()
    monkeypatch.setattr(gpus, "_ASSIGNED", None)
    assert distributed.pick_device("auto") == torch.device("cuda", 0) and chosen == [0]
    monkeypatch.setattr(gpus, "_ASSIGNED", 1)  # what the runtime gave this rank
    assert distributed.pick_device("cuda") == torch.device("cuda", 1)
    assert distributed.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        distributed.pick_device("cuda")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from hpoq.mlpf.writer import generate_dataset

    out = tmp_path_factory.mktemp("gpu-data")
    generate_dataset(out, 120, seed=3, preset="clic", shards=2, val_fraction=0.25)
    return out


# ---------------------------------------------------------------- exact resume, RNG states


ON_CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no GPU"))


@pytest.mark.parametrize("device", ["cpu", ON_CUDA])
def test_a_resumed_unit_equals_the_unit_trained_straight_through(device, small_data, tmp_path):
    settings = TrainSettings(
        data=str(small_data), R=3, backend="none", device=device, seed=5, deterministic=device == "cuda"
    )
    config = {"lr": 2e-3, "dropout": 0.2, "token_budget": 1024}
    straight, s_state = train_unit(settings, config, 0, 3, tmp_path / "s", return_state=True)
    first = train_unit(settings, config, 0, 2, tmp_path / "r")
    saved = torch.load(tmp_path / "r" / "mlpf-state.pt", weights_only=True)
    assert ("rng_cuda" in saved) == (device == "cuda")
    torch.manual_seed(12345)  # whatever this process drew since: the resumed unit restores the checkpoint's RNG
    rest, r_state = train_unit(settings, config, 2, 3, tmp_path / "r", return_state=True)
    assert first + rest == straight
    assert all(torch.equal(s_state[k], r_state[k]) for k in s_state)


def test_every_rng_state_is_saved_and_restored(monkeypatch):
    from hpoq.mlpf import training

    torch.manual_seed(7)
    state = training.rng_state("cpu")
    expected = torch.rand(3)
    torch.manual_seed(99)
    training.set_rng_state(state, "cpu")
    assert torch.equal(torch.rand(3), expected)
    # on CUDA the device's generator is saved and restored too (the calls, mocked: this machine has none)
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or torch.ones(4))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: calls.append(("set", device, int(s.sum()))))
    cuda = torch.device("cuda", 2)
    saved = training.rng_state(cuda)
    training.set_rng_state(saved, cuda)
    assert calls == [("get", cuda), ("set", cuda, 4)] and torch.equal(saved["rng_cuda"], torch.ones(4))


# ---------------------------------------------------------------- out of memory


def test_cuda_out_of_memory_fails_the_trial_with_kind_oom(small_data, tmp_path, monkeypatch):
    from hpoq.dispatch import Dispatch
    from hpoq.mlpf.model import MiniMLPF
    from hpoq.runtime.worker import run_unit
    from hpoq.trainers.mlpf import MLPFTrainer

    def forward(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(MiniMLPF, "forward", forward)
    trainer = MLPFTrainer(data=str(small_data), R=2, backend="none", device="cpu")
    unit = Dispatch(0, {"token_budget": 1024}, 0, 1, unit_id=1, checkpoint_dir=str(tmp_path / "c"))
    outcome = run_unit(trainer, unit, None)
    assert not outcome.ok and outcome.kind == "oom", (outcome.kind, outcome.reason)
    assert "out of memory at epoch 1" in outcome.reason


# ---------------------------------------------------------------- jobs/gpu_bind.sh


@pytest.mark.parametrize(
    "procid,nodeid,localid,visible,expected",
    [
        (0, 0, 0, "0,1,2,3", ""),  # the master: no GPU
        (1, 0, 1, "0,1,2,3", "0"),
        (4, 0, 4, "0,1,2,3", "3"),
        (5, 1, 0, "0,1,2,3", "0"),  # second node: local ids 0.. take GPUs 0..
        (8, 1, 3, "0,1,2,3", "3"),
        (6, 1, 1, "4,5,6,7", "5"),  # the GPUs Slurm gave this step on a shared node
        (9, 2, 2, "", "2"),  # no CUDA_VISIBLE_DEVICES: SLURM_GPUS_ON_NODE=4
    ],
)
def test_gpu_bind_maps_tasks_of_several_nodes(procid, nodeid, localid, visible, expected):
    env = {"PATH": os.environ["PATH"], "SLURM_PROCID": str(procid), "SLURM_NODEID": str(nodeid)}
    env.update(SLURM_LOCALID=str(localid), SLURM_GPUS_ON_NODE="4", CUDA_VISIBLE_DEVICES=visible)
    proc = subprocess.run(
        ["bash", str(REPO / "jobs" / "gpu_bind.sh"), "bash", "-c", 'printf "[%s]" "$CUDA_VISIBLE_DEVICES"'],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stdout == f"[{expected}]", proc.stderr


def test_gpu_bind_refuses_a_node_with_more_worker_tasks_than_gpus():
    env = {"PATH": os.environ["PATH"], "SLURM_PROCID": "5", "SLURM_NODEID": "0", "SLURM_LOCALID": "5"}
    env["CUDA_VISIBLE_DEVICES"] = "0,1,2,3"
    proc = subprocess.run(
        ["bash", str(REPO / "jobs" / "gpu_bind.sh"), "true"], capture_output=True, text=True, env=env, timeout=30
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "4 GPU(s)" in proc.stderr, proc.stderr


def test_install_horovod_plans_a_cpu_build_without_cuda_torch():
    proc = subprocess.run(
        ["bash", str(REPO / "jobs" / "install_horovod.sh"), sys.executable],
        capture_output=True,
        text=True,
        env={**os.environ, "HPOQ_HOROVOD_PLAN": "1", "HPOQ_HOROVOD_CUDA": "1"},
        timeout=120,
    )
    assert "plan: CPU-only build (torch 2.13.0+cpu has no CUDA)" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 2 and "HPOQ_HOROVOD_CUDA=1 but no CUDA build is possible" in proc.stderr


# ---------------------------------------------------------------- benchmarks/gpu_check.py


@pytest.mark.mpi
@pytest.mark.slow
def test_gpu_check_dry_run_passes_on_the_cpu(tmp_path):
    """The whole check on the CPU at toy sizes; its bf16 rows run the bf16 path for real (CPU autocast
    around MiniMLPF's and upstream's attention forward, fp32 loss and optimiser)."""
    out, raw = tmp_path / "gpu.md", tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, GPU_CHECK, "--dry-run", "--out", str(out), "--json", str(raw)],
        capture_output=True,
        text=True,
        env=mpi_env(),
        cwd=REPO,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    for step in ("device map", "MiniMLPF", "2-rank unit, torch (gloo)", "exact resume on cpu", "table trainer"):
        assert step in text, step
    assert "gpu_check: PASS" in text and "| FAIL |" not in text
    from hpoq.mlpf import upstream

    models = json.loads(raw.read_text())["raw"]
    assert sorted(models) == (["mini"] if upstream.unavailable_reason() else ["mini", "particleflow"])
    for name, m in models.items():
        assert m["bf16"]["loss"] != m["fp32"]["loss"], f"{name}: bf16 ran in fp32"  # autocast changed the numbers
        assert abs(m["bf16"]["loss"] - m["fp32"]["loss"]) < 0.05 * m["fp32"]["loss"], (name, m)
    # without a GPU and without --dry-run it refuses in one line
    proc = subprocess.run([sys.executable, GPU_CHECK], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "no CUDA device here" in proc.stderr
