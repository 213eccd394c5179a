"""``hpoq run``: run a study under MPI (rank 0 master, trial groups of worker ranks)."""

from __future__ import annotations

COMMAND = "run"
HELP = "run a study file under MPI: mpiexec -n N python -m hpoq.main run STUDY.yaml (or srun ...)"


def add_arguments(parser) -> None:
    parser.add_argument("study", nargs="?", help="study file (YAML); see 'hpoq validate' and examples/")
    parser.add_argument("--out", help="output directory (default: the study's 'out', else runs/<name>)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="OUTDIR",
        help="continue the study whose journal is in OUTDIR (or in --out / the study's out)",
    )
    parser.add_argument(
        "--allow-changed-inputs",
        action="store_true",
        help="resume even though a curve table, dataset or warm-curve file changed since the start",
    )
    parser.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress bar on stderr: auto = only when stderr is a terminal (default auto)",
    )


def run(args) -> int:
    from hpoq.runtime.launch import run_on_all_ranks

    progress = {"auto": None, "on": True, "off": False}[args.progress]
    return run_on_all_ranks(args.study, args.out, args.resume, progress, args.allow_changed_inputs)
