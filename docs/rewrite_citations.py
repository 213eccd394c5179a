"""Rewrite citations of the old design notes (method.md, platform.md, mlpf.md, architecture.md,
peers.md) in hpoq's docstrings and comments to the repository's own docs/ pages.

    python docs/rewrite_citations.py            # rewrite every .py file under hpoq/
    python docs/rewrite_citations.py --check    # list what would change; exit 1 if anything would
    python docs/rewrite_citations.py --table    # print the mapping as a markdown table (CITATIONS.md)
    python docs/rewrite_citations.py PATH ...   # only these files or directories

A citation is ``[docs/]NAME.md`` optionally followed, on the same line, by a section (``5.5``,
``§5.5``, ``section 5``), a range (``3.2-3.6``) or a list (``4.4, 5.8, 8.3``, ``1.3 and 2``).
Each section maps to a page and anchor; a section without its own entry uses its parent's
(5.5 -> 5 -> the whole file). A range or list becomes the distinct targets of its sections, joined
by ", ". Text after the citation is kept. Lines that the rewrite pushes past 120 characters are
listed for rewrapping by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ALG, PRED, RUN, DATA, INST = (
    "docs/algorithms.md",
    "docs/predictors.md",
    "docs/runtime.md",
    "docs/mlpf-data.md",
    "docs/install.md",
)

#: (note, section) -> replacement; section "" is the whole note
MAPPING: dict[tuple[str, str], str] = {
    ("method", ""): ALG,
    ("method", "1"): f"{ALG}#conventions",
    ("method", "2"): f"{ALG}#hyperband",
    ("method", "3"): f"{ALG}#swift-hyperband",
    ("method", "3.7"): f"{ALG}#where-the-savings-come-from",
    ("method", "3.8"): f"{ALG}#wall-clock",
    ("method", "4"): PRED,
    ("method", "4.1"): f"{PRED}#interface",
    ("method", "4.2"): f"{PRED}#features",
    ("method", "4.3"): f"{PRED}#targets-and-scaling",
    ("method", "4.4"): f"{PRED}#targets-and-scaling",
    ("method", "4.5"): f"{PRED}#classical-svr",
    ("method", "5"): f"{PRED}#qsvr-dual-and-encoding",
    ("method", "5.2"): f"{PRED}#qsvr-energy-and-q",
    ("method", "5.3"): f"{PRED}#qsvr-energy-and-q",
    ("method", "5.4"): f"{PRED}#qsvr-decoding-and-bias",
    ("method", "5.5"): f"{PRED}#samplers",
    ("method", "5.6"): f"{PRED}#qsvr-top-k-and-combination",
    ("method", "5.7"): f"{PRED}#qsvr-top-k-and-combination",
    ("method", "5.8"): f"{PRED}#qsvr-subset-ensemble",
    ("method", "5.9"): f"{PRED}#bugs-of-the-original-code-not-repeated",
    ("method", "6"): f"{PRED}#learning-curve-data",
    ("method", "7"): ALG,
    ("method", "8"): "README.md#benchmarks",
    ("platform", ""): INST,
    ("platform", "1"): f"{INST}#laptop-and-ci-no-gpu-no-site-mpi",
    ("platform", "2"): RUN,
    ("platform", "2.2"): f"{RUN}#launch",
    ("platform", "2.3"): f"{RUN}#the-master-loop",
    ("platform", "2.4"): f"{RUN}#testing-mpi-on-a-laptop",
    ("platform", "2.5"): f"{INST}#cluster-site-mpi-gpus",
    ("platform", "3"): f"{RUN}#data-parallelism-inside-a-trial",
    ("platform", "4"): f"{PRED}#samplers",
    ("platform", "5"): f"{DATA}#hdf5-layout",
    ("platform", "6"): f"{INST}#tests-on-few-cores",
    ("mlpf", ""): DATA,
    ("mlpf", "1"): f"{DATA}#inputs",
    ("mlpf", "1.2"): f"{DATA}#targets",
    ("mlpf", "1.3"): f"{DATA}#outputs-loss-and-the-hpo-metric",
    ("mlpf", "1.4"): f"{DATA}#outputs-loss-and-the-hpo-metric",
    ("mlpf", "1.5"): f"{DATA}#outputs-loss-and-the-hpo-metric",
    ("mlpf", "2"): f"{DATA}#model-and-training",
    ("mlpf", "3"): f"{DATA}#synthetic-events",
    ("mlpf", "4"): f"{DATA}#hdf5-layout",
    ("mlpf", "5"): f"{DATA}#sampler",
    ("mlpf", "6"): f"{DATA}#search-spaces",
    ("mlpf", "7"): f"{DATA}#pitfalls",
    ("architecture", ""): "README.md#code-layout",
    ("peers", ""): ALG,
    ("peers", "2.10"): f"{ALG}#hpoqs-default",
}

#: the project's line length: a rewritten line that grows past it is flagged for rewrapping
MAX_LINE = 120
_SECTION = r"\d+(?:\.\d+)*"
CITATION = re.compile(
    r"(?:docs/)?(?P<note>method|platform|mlpf|architecture|peers)\.md"
    rf"(?:(?:[ \t]+section)?[ \t]*§?[ \t]*(?P<sections>{_SECTION}(?:[ \t]*[-–][ \t]*{_SECTION})?"
    rf"(?:(?:,| and)[ \t]*{_SECTION}(?:[ \t]*[-–][ \t]*{_SECTION})?(?![\w.-]))*))?"
)


def target(note: str, section: str) -> str:
    """The replacement of ``note`` ``section``: its own entry, else the nearest parent's."""
    while True:
        if (note, section) in MAPPING:
            return MAPPING[(note, section)]
        if not section:
            raise KeyError(f"{note}.md has no mapping")
        section = section.rpartition(".")[0]


def _sections(text: str) -> list[str]:
    out = []
    for part in re.split(r",\s*|\s+and\s+", text):
        lo, _, hi = (
            (p.strip() for p in re.split(r"([-–])", part, maxsplit=1))
            if re.search(r"[-–]", part)
            else (part.strip(), "", "")
        )
        out.append(lo)
        if hi:
            out.append(hi)
    return out


def replacement(match: re.Match) -> str:
    note, sections = match.group("note"), match.group("sections")
    targets = [target(note, s) for s in _sections(sections)] if sections else [target(note, "")]
    return ", ".join(dict.fromkeys(targets))


def rewrite(text: str) -> str:
    return CITATION.sub(replacement, text)


def _files(args: list[str]) -> list[Path]:
    roots = [Path(a) for a in args] or [Path(__file__).resolve().parent.parent / "hpoq"]
    return sorted(f for r in roots for f in ([r] if r.is_file() else r.rglob("*.py")))


def main(argv: list[str]) -> int:
    check = "--check" in argv
    if "--table" in argv:
        print("| citation | now |\n|---|---|")
        for (note, section), where in MAPPING.items():
            link = where.removeprefix("docs/") if where.startswith("docs/") else "../" + where  # relative to docs/
            print(f"| `{note}.md{' ' + section if section else ''}` | [{where}]({link}) |")
        return 0
    changed = 0
    for path in _files([a for a in argv if not a.startswith("--")]):
        old = path.read_text()
        new = rewrite(old)
        if new != old:
            changed += 1
            for number, (a, b) in enumerate(zip(old.splitlines(), new.splitlines()), 1):
                if a != b:
                    long = f"  [now {len(b)} > {MAX_LINE} characters]" if len(b) > MAX_LINE >= len(a) else ""
                    print(f"{path}:{number}: {b.strip()}{long}")
            if not check:
                path.write_text(new)
    print(f"{changed} file(s) {'would change' if check else 'rewritten'}", file=sys.stderr)
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
