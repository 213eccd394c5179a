"""Samplers for the QSVR QUBO: ``sa`` (default; ``neal`` is an alias), ``exact`` and ``dwave``.

docs/predictors.md#samplers:

- ``sa``: ``dwave.samplers.SimulatedAnnealingSampler`` (the class ``neal`` re-exports), seeded,
  ``num_reads`` and ``num_sweeps`` configurable.
- ``exact``: ``dimod.ExactSolver``; refuses problems above ``max_variables`` (20) variables.
- ``dwave``: ``DWaveSampler`` behind a ``FixedEmbeddingComposite`` with a clique embedding of K_V
  on the solver's working graph, computed once per (solver, V) and cached on disk as JSON
  {solver, V, graph_hash, embedding}; validated against the current working graph on load.
  Chain strength 10 x ceil(max |Q|) (``chain_strength="mult"``) or
  ``uniform_torque_compensation`` (``"utc"``) or a number. ``make_sampler("dwave")`` wraps it in a
  :class:`FallbackComposite`: if the QPU cannot be used (no token, network error, solver missing,
  timeout, no embedding) sampling continues with ``sa`` after a logged WARNING, recording
  ``fallback_from`` / ``reason`` (or a ConfigError with ``fallback=False``).
  Credentials are left to dwave-cloud-client (config file or DWAVE_API_TOKEN); hpoq never reads,
  logs, prints or writes them.

Every sampler is a ``dimod.Sampler`` whose ``sample(bqm, seed=...)`` returns the *logical* (unembedded)
sampleset, with hpoq's facts about the call in ``sampleset.info["hpoq"]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from pathlib import Path

import dimod
import numpy as np

from hpoq.atomic import write_atomic
from hpoq.errors import ConfigError, InternalError
from hpoq.registry import Anything, Boolean, Interval, Options, Text, build, check, check_value, validate

log = logging.getLogger(__name__)

SAMPLERS = ("sa", "neal", "exact", "dwave")
_POSITIVE = Interval(float, 0, None, closed="neither")
ALIASES = {"neal": "sa"}


def _with_facts(sampleset, facts: dict):
    """``sampleset`` with hpoq's facts about how it was obtained in ``sampleset.info["hpoq"]``."""
    sampleset.info["hpoq"] = facts
    return sampleset


class SASampler(dimod.Sampler):
    """Simulated annealing (dwave-samplers), seeded per call; single-threaded."""

    name = "sa"
    title = "simulated annealing"
    parameter_constraints = {
        "num_reads": [Interval(int, 1, None)],
        "num_sweeps": [Interval(int, 1, None)],
        "beta_range": [Anything(), None],
    }

    def __init__(self, num_reads: int = 100, num_sweeps: int = 1000, beta_range=None):
        validate(type(self), {"num_reads": num_reads, "num_sweeps": num_sweeps}, "sampler")
        self.num_reads, self.num_sweeps = int(num_reads), int(num_sweeps)
        self.beta_range = None if beta_range is None else tuple(float(b) for b in beta_range)
        from dwave.samplers import SimulatedAnnealingSampler

        self._sampler = SimulatedAnnealingSampler()

    @property
    def parameters(self) -> dict:
        return {"seed": []}

    @property
    def properties(self) -> dict:
        return self.describe()

    def sample(self, bqm, seed: int = 0, **parameters):
        t0 = time.perf_counter()
        # dwave-samplers accepts seeds in [0, 2**31)
        kwargs = dict(num_reads=self.num_reads, num_sweeps=self.num_sweeps, seed=int(seed) % (2**31))
        if self.beta_range is not None:
            kwargs["beta_range"] = self.beta_range
        ss = self._sampler.sample(bqm, **kwargs)
        return _with_facts(
            ss,
            {
                "sampler": "sa",
                "num_reads": self.num_reads,
                "num_sweeps": self.num_sweeps,
                "seconds": time.perf_counter() - t0,
            },
        )

    def describe(self) -> dict:
        return {"sampler": "sa", "num_reads": self.num_reads, "num_sweeps": self.num_sweeps}


class ExactQuboSampler(dimod.Sampler):
    """Brute force over all 2**V states (dimod.ExactSolver): tiny problems only."""

    name = "exact"
    title = "exact enumeration"
    parameter_constraints = {"max_variables": [Interval(int, 1, None)], "keep": [Interval(int, 1, None)]}

    def __init__(self, max_variables: int = 20, keep: int = 1000):
        validate(type(self), {"max_variables": max_variables, "keep": keep}, "sampler")
        self.max_variables, self.keep = int(max_variables), int(keep)

    @property
    def parameters(self) -> dict:
        return {"seed": []}

    @property
    def properties(self) -> dict:
        return self.describe()

    def sample(self, bqm, seed: int = 0, **parameters):
        if bqm.num_variables > self.max_variables:
            raise ConfigError(
                f"sampler 'exact' refuses {bqm.num_variables} variables (at most "
                f"{self.max_variables}); use 'sa' or fewer points per QUBO"
            )
        t0 = time.perf_counter()
        # every state is distinct; keep the lowest ones (aggregating 2**18 samples costs seconds)
        ss = dimod.ExactSolver().sample(bqm).truncate(self.keep)
        return _with_facts(ss, {"sampler": "exact", "seconds": time.perf_counter() - t0})

    def describe(self) -> dict:
        return {"sampler": "exact", "max_variables": self.max_variables}


# --------------------------------------------------------------------------------------------
# D-Wave QPU path


def default_cache_dir() -> Path:
    """``$HPOQ_CACHE_DIR/embeddings`` or ``~/.cache/hpoq/embeddings``."""
    base = os.environ.get("HPOQ_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hpoq")
    return Path(base) / "embeddings"


def graph_hash(graph) -> str:
    """sha256 of the working graph's sorted node and edge lists (qubits going offline change it)."""
    nodes = sorted(int(n) for n in graph.nodes)
    edges = sorted((min(int(u), int(v)), max(int(u), int(v))) for u, v in graph.edges)
    h = hashlib.sha256()
    h.update(json.dumps(nodes, separators=(",", ":")).encode())
    h.update(json.dumps(edges, separators=(",", ":")).encode())
    return h.hexdigest()


def clique_embedding_valid(embedding: dict, n_variables: int, graph) -> bool:
    """Is ``embedding`` a valid minor embedding of K_V (labels 0..V-1) into ``graph``?"""
    import networkx as nx
    from dwave.embedding import is_valid_embedding

    if sorted(embedding) != list(range(n_variables)):
        return False
    return bool(is_valid_embedding(embedding, nx.complete_graph(n_variables), graph))


class EmbeddingCache:
    """Clique embeddings of K_V per (solver, V) as JSON files, validated on every load (docs/predictors.md#samplers)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def path(self, solver: str, n_variables: int) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(solver)) or "solver"
        return self.directory / f"clique_{safe}_V{int(n_variables)}.json"

    def load(self, solver: str, n_variables: int, graph) -> tuple[dict | None, str]:
        """(embedding or None, status) where status is 'hit', 'missing', or why the file was rejected."""
        path = self.path(solver, n_variables)
        if not path.exists():
            return None, "missing"
        try:
            data = json.loads(path.read_text())
            if data.get("solver") != solver or int(data.get("V", -1)) != int(n_variables):
                return None, "stale: solver or size differ"
            emb = {int(k): [int(q) for q in chain] for k, chain in data["embedding"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return None, f"unreadable ({type(exc).__name__})"
        # validate even on a matching hash (cheap, ~50 ms at V=120); a changed hash (some qubits
        # offline) only invalidates the file if the chains no longer fit the graph
        if clique_embedding_valid(emb, n_variables, graph):
            if data.get("graph_hash") != graph_hash(graph):
                self.store(solver, n_variables, graph, emb)  # still valid: record the current graph
            return emb, "hit"
        return None, "invalid on the current working graph"

    def store(self, solver: str, n_variables: int, graph, embedding: dict) -> Path:
        path = self.path(solver, n_variables)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "solver": solver,
            "V": int(n_variables),
            "graph_hash": graph_hash(graph),
            "embedding": {str(k): [int(q) for q in embedding[k]] for k in sorted(embedding)},
        }
        write_atomic(path, json.dumps(payload))
        return path

    def get(self, solver: str, n_variables: int, graph) -> tuple[dict, str]:
        """A valid clique embedding: from the cache, else computed with busclique and stored."""
        emb, status = self.load(solver, n_variables, graph)
        if emb is not None:
            return emb, "hit"
        from minorminer.busclique import find_clique_embedding

        emb = find_clique_embedding(int(n_variables), graph)
        emb = {int(k): [int(q) for q in chain] for k, chain in emb.items()}
        if not emb or not clique_embedding_valid(emb, n_variables, graph):
            raise RuntimeError(f"no clique embedding of {n_variables} variables on solver {solver}")
        self.store(solver, n_variables, graph, emb)
        return emb, "computed" if status == "missing" else f"recomputed ({status})"


def _solver_name(child) -> str:
    solver = getattr(child, "solver", None)
    name = getattr(solver, "name", None)
    if not name:
        props = getattr(child, "properties", {}) or {}
        name = props.get("chip_id") or type(child).__name__
    return str(name)


def _scrub(text: str) -> str:
    """Remove any configured token from an error message before it reaches a log or a result."""
    token = os.environ.get("DWAVE_API_TOKEN")
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    # tokens look like 'ABC-0123abcd...'; never let a long hex run through
    return re.sub(r"\b[A-Za-z]{2,4}-[0-9a-fA-F]{16,}\b", "***", text)


class DWaveQuboSampler(dimod.Sampler):
    """QPU sampling through a FixedEmbeddingComposite with a cached clique embedding.

    ``child``: a structured sampler to use instead of ``DWaveSampler(solver=solver)`` (tests pass
    ``MockDWaveSampler(topology_type="pegasus", topology_shape=[16], ...)``). ``annealing_time`` in
    microseconds (None = the solver default, 20 us). ``timeout_s``: seconds to wait for a result.
    Any failure (no token, network, no embedding, timeout) raises; :class:`FallbackComposite`
    decides what happens next.
    """

    name = "dwave"
    title = "D-Wave QPU"
    parameter_constraints = {
        "num_reads": [Interval(int, 1, None)],
        "child": [Anything(), None],
        "solver": [Text(), None],
        "cache_dir": [Text(), None],
        "chain_strength": [Options("mult", "utc"), _POSITIVE],
        "chain_mult": [_POSITIVE],
        "annealing_time": [_POSITIVE, None],
        "timeout_s": [_POSITIVE],
    }

    def __init__(
        self,
        num_reads: int = 1000,
        child=None,
        solver=None,
        cache_dir=None,
        chain_strength="mult",
        chain_mult: float = 10.0,
        annealing_time: float | None = None,
        timeout_s: float = 600.0,
    ):
        validate(type(self), {k: v for k, v in locals().items() if k not in ("self", "child")}, "sampler")
        self.num_reads = int(num_reads)
        self.chain_strength = chain_strength
        self.chain_mult = float(chain_mult)
        self.annealing_time = annealing_time
        self.timeout_s = float(timeout_s)
        self.cache = EmbeddingCache(cache_dir)
        self._composites: dict[int, object] = {}
        self.embedding_status: dict[int, str] = {}
        self.chain_break_fractions: list[float] = []
        if child is None:
            from dwave.system import DWaveSampler

            try:
                child = DWaveSampler(**({} if solver is None else {"solver": solver}))
            except Exception as exc:  # no token -> ValueError; network, missing solver -> others
                raise RuntimeError(f"cannot open the D-Wave solver: {type(exc).__name__}: {exc}") from exc
        self._child = child
        self.solver_name = _solver_name(child)

    @property
    def parameters(self) -> dict:
        return {"seed": []}

    @property
    def properties(self) -> dict:
        return {"solver": self.solver_name, "num_reads": self.num_reads}

    def _composite(self, n_variables: int):
        comp = self._composites.get(n_variables)
        if comp is None:
            from dwave.system import FixedEmbeddingComposite

            graph = self._child.to_networkx_graph()
            emb, status = self.cache.get(self.solver_name, n_variables, graph)
            self.embedding_status[n_variables] = status
            comp = self._composites[n_variables] = FixedEmbeddingComposite(self._child, emb)
        return comp

    def chain_strength_for(self, bqm):
        if self.chain_strength == "utc":
            from dwave.embedding.chain_strength import uniform_torque_compensation

            return uniform_torque_compensation
        if self.chain_strength == "mult":
            # 10 x ceil(max |Q_uv|) over all entries, diagonal included (docs/predictors.md#samplers)
            lin = np.abs(np.fromiter(bqm.linear.values(), float, bqm.num_variables))
            quad = np.abs(np.fromiter(bqm.quadratic.values(), float, bqm.num_interactions))
            qmax = max(lin.max(initial=0.0), quad.max(initial=0.0))
            return self.chain_mult * math.ceil(qmax)
        return float(self.chain_strength)

    def sample(self, bqm, seed: int = 0, **parameters):
        """Logical sampleset of ``bqm`` from the QPU; ``seed`` is accepted for the common interface and unused."""
        t0 = time.perf_counter()
        comp = self._composite(bqm.num_variables)
        cs = self.chain_strength_for(bqm)
        kwargs = dict(num_reads=self.num_reads, chain_strength=cs, return_embedding=False)
        if self.annealing_time is not None:
            kwargs["annealing_time"] = float(self.annealing_time)
        ss = comp.sample(bqm, **kwargs)
        deadline = time.monotonic() + self.timeout_s
        while not ss.done():  # the future-backed sampleset; poll so a hung job cannot block forever
            if time.monotonic() > deadline:
                raise TimeoutError(f"no QPU result within {self.timeout_s:g} s")
            time.sleep(0.05)
        ss.resolve()
        names = ss.record.dtype.names
        cbf = float(np.mean(ss.record.chain_break_fraction)) if "chain_break_fraction" in names else float("nan")
        self.chain_break_fractions.append(cbf)
        info = {
            "sampler": "dwave",
            "solver": self.solver_name,
            "num_reads": self.num_reads,
            "chain_strength": cs if isinstance(cs, float) else "uniform_torque_compensation",
            "chain_break_fraction": cbf,
            "embedding": self.embedding_status.get(bqm.num_variables),
            "seconds": time.perf_counter() - t0,
        }
        timing = ss.info.get("timing") if isinstance(ss.info, dict) else None
        if timing and "qpu_access_time" in timing:
            info["qpu_access_time_us"] = float(timing["qpu_access_time"])
        return _with_facts(ss, info)

    def describe(self) -> dict:
        d = {
            "sampler": "dwave",
            "num_reads": self.num_reads,
            "solver": self.solver_name,
            "chain_strength": self.chain_strength,
            "chain_mult": self.chain_mult,
            "embedding_cache": str(self.cache.directory),
        }
        if self.chain_break_fractions:
            d["chain_break_fraction"] = float(np.nanmean(self.chain_break_fractions))
        return d


class FallbackComposite(dimod.ComposedSampler):
    """Samples with its primary child until that fails once, then with the fallback child for good.

    The dwave-system composite pattern (a sampler wrapping child samplers) applied to availability:
    ``open_primary`` builds the primary (e.g. a :class:`DWaveQuboSampler`); if building or sampling
    raises anything but a :class:`ConfigError` / :class:`InternalError`, the reason (credentials
    scrubbed) is logged once as a WARNING and recorded as ``fallback_from`` / ``reason`` in every
    later sampleset's facts and in :meth:`describe`. With ``enabled=False`` the failure is a
    :class:`ConfigError` instead.
    """

    def __init__(
        self,
        open_primary,
        fallback,
        *,
        primary_name: str = "dwave",
        primary_title: str = "D-Wave QPU",
        enabled: bool = True,
    ):
        self.primary = None
        self.fallback = fallback
        self.primary_name, self.primary_title = primary_name, primary_title
        self.enabled = bool(enabled)
        self.fallback_reason: str | None = None
        reason = None
        try:
            self.primary = open_primary()
        except (ConfigError, InternalError):
            raise
        except Exception as exc:  # noqa: BLE001 -- no token, network, solver missing
            reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:  # outside the except block: a failing log handler cannot print the raw error
            self._fail(reason)

    @property
    def children(self) -> list:
        return [c for c in (self.primary, self.fallback) if c is not None]

    @property
    def parameters(self) -> dict:
        return {"seed": []}

    @property
    def properties(self) -> dict:
        return {"primary": self.primary_name, "fallback": self.fallback.name, "fallback_reason": self.fallback_reason}

    def _fail(self, reason: str) -> None:
        reason = _scrub(reason)
        if not self.enabled:
            raise ConfigError(
                f"{self.primary_name} sampler unusable ({reason}) and fallback to {self.fallback.name!r} is disabled"
            )
        if self.fallback_reason is None:
            log.warning(
                "%s unusable, falling back to %s (%r): %s",
                self.primary_title,
                self.fallback.title,
                self.fallback.name,
                reason,
            )
        self.fallback_reason = reason

    def sample(self, bqm, seed: int = 0, **parameters):
        """Logical sampleset of ``bqm`` from the primary child, or from the fallback once the primary failed."""
        if self.fallback_reason is None:
            reason = None
            try:
                return self.primary.sample(bqm, seed=seed)
            except (ConfigError, InternalError):
                raise
            except Exception as exc:  # noqa: BLE001 -- network error, timeout, solver gone, no embedding
                reason = f"{type(exc).__name__}: {exc}"
            self._fail(reason)  # outside the except block: a failing log handler cannot print the raw error
        ss = self.fallback.sample(bqm, seed=seed)
        ss.info["hpoq"].update(fallback_from=self.primary_name, reason=self.fallback_reason)
        return ss

    def describe(self) -> dict:
        d = self.primary.describe() if self.primary is not None else {"sampler": self.primary_name}
        if self.fallback_reason:
            d.update(self.fallback.describe(), fallback_from=self.primary_name, reason=self.fallback_reason)
        return d


#: sampler name -> class (``neal`` is an alias of ``sa``)
SAMPLER_CLASSES = {"sa": "SASampler", "exact": "ExactQuboSampler", "dwave": "DWaveQuboSampler"}


def sampler_class(name: str):
    """The QUBO sampler class registered as ``name`` (``neal``: ``sa``)."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SAMPLER_CLASSES:
        raise ConfigError(f"unknown QUBO sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return globals()[SAMPLER_CLASSES[key]]


def check_sampler(name: str, params: dict, path: str = "sampler") -> None:
    """Check ``params`` of the sampler ``name`` as :func:`make_sampler` would, building nothing (no QPU
    connection); errors name ``path.key``."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SAMPLER_CLASSES:
        raise ConfigError(f"unknown QUBO sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    params = dict(params)
    if key == "dwave":
        check_value(f"{path}.fallback", params.pop("fallback", True), [Boolean()])
        fallback = {k: params.pop(k) for k in ("num_sweeps",) if k in params}
        if "sa_num_reads" in params:
            fallback["num_reads"] = params.pop("sa_num_reads")
        check(sampler_class("sa"), fallback, f"{path}.fallback", f"sampler {name!r}")
    check(sampler_class(key), params, path, f"sampler {name!r}")


def make_sampler(
    name: str = "sa",
    *,
    num_reads: int | None = None,
    num_sweeps: int = 1000,
    child=None,
    path: str = "sampler",
    **options,
):
    """Build a sampler by name: ``sa`` / ``neal`` (alias), ``exact``, ``dwave``; parameters are checked
    against each class's ``parameter_constraints`` (:func:`hpoq.registry.build`; errors name ``path.key``).

    ``num_reads`` defaults to 100 for ``sa`` and 1000 for ``dwave`` (docs/predictors.md#samplers). ``child``
    injects the structured sampler under the D-Wave composite. ``dwave`` also takes ``fallback`` (True:
    wrap it in a :class:`FallbackComposite` over ``sa``) and ``sa_num_reads`` (the fallback's reads).
    """
    key = ALIASES.get(str(name).lower(), str(name).lower())
    what = f"sampler {name!r}"
    if key == "sa":
        return build(
            "sampler",
            key,
            dict(options, num_reads=100 if num_reads is None else num_reads, num_sweeps=num_sweeps),
            path=path,
            what=what,
        )
    if key == "exact":
        return build("sampler", key, options, path=path, what=what)
    if key != "dwave":
        raise ConfigError(f"unknown QUBO sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    enabled = options.pop("fallback", True)
    sa_reads = options.pop("sa_num_reads", 100)
    check_value(f"{path}.fallback", enabled, [Boolean()])
    fallback = build(
        "sampler", "sa", {"num_reads": sa_reads, "num_sweeps": num_sweeps}, path=f"{path}.fallback", what=what
    )
    params = dict(options, num_reads=1000 if num_reads is None else num_reads)
    # bad settings are the user's error, never a reason to fall back
    check(sampler_class("dwave"), params, path, what)
    composite = FallbackComposite(
        lambda: build("sampler", "dwave", params, path=path, what=what, context={"child": child}),
        fallback,
        primary_name="dwave",
        enabled=enabled,
    )
    composite.num_reads, composite.num_sweeps = params["num_reads"], num_sweeps  # as requested, also after a fallback
    return composite
