"""``asha``: asynchronous successive halving (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020, Algorithm 2), promotion variant with checkpoint resume.

Rungs sit at ``r_k = grace * eta**k`` epochs for every ``r_k < R``, plus a last rung at ``R``
(grace 1, eta 2, R 100: 1, 2, 4, 8, 16, 32, 64, 100). Whenever a worker asks for work
(:meth:`ASHA.suggest`), the highest rung with a *promotable* trial wins: a trial is promotable
from rung ``k`` when it ranks in the top ``floor(|rung k| / eta)`` of the results recorded at
rung ``k`` so far (ties by (value, trial id), docs/algorithms.md#conventions) and was not promoted yet. A promotion
resumes from the checkpoint and trains only ``r_{k+1} - r_k`` more epochs. Otherwise a new
configuration starts at the bottom rung, until ``n`` configurations were sampled (default: as
many as Hyperband samples at the same R and eta, so that both see the same configurations).

ASHA never waits for a rung to fill: no barrier. When every configuration is sampled, nothing
is in flight and nothing is promotable, the search ends; if no trial reached ``R`` by then (tiny
``n``), the best trial of the highest occupied rung is promoted one rung at a time until one
does, so that the answer is always a fully trained configuration.
"""

from __future__ import annotations

from typing import Sequence

from hpoq.errors import ConfigError
from hpoq.registry import Interval, check_int
from hpoq.schedulers.base import CONTINUE, DONE, FAILED, PAUSE, STOP, Decision, Scheduler, WorkUnit
from hpoq.schedulers.brackets import budget_of, check_r_eta, hyperband_budget, schedule_of
from hpoq.schedulers.rungs import Rungs
from hpoq.schedulers.sampling import draw_config
from hpoq.schedulers.trials import check_metrics, take_inflight


class ASHA(Scheduler):
    """Asynchronous successive halving with promotions (registry name ``asha``).

    Parameters: ``R`` (max epochs per configuration), ``eta`` (reduction factor, >= 2),
    ``sampler`` (a :class:`~hpoq.schedulers.base.ConfigSampler`), ``seed`` (unused by the
    rule itself, recorded), ``n`` (configurations to sample; default Hyperband's count at the
    same R and eta, e.g. 163 for R = 100, eta = 2), ``grace`` (epochs of the first rung, default 1).
    ASHA compares observed rung values only: it takes no predictor and no warm curves (a study
    file's ``predictor:`` section is refused for it, as for ``hyperband``).
    """

    name = "asha"
    supports_dedupe = True
    parameter_constraints = {"n": [Interval(int, 1, None), None], "grace": [Interval(int, 1, None)]}

    def __init__(self, *, R: int, eta: int = 2, sampler, seed: int = 0, n: int | None = None, grace: int = 1):
        self.R, self.eta = check_r_eta(R, eta)
        grace = check_int(f"asha: grace (first-rung epochs, R = {self.R})", grace, 1, self.R)
        if n is None:
            n = budget_of(schedule_of(self.R, self.eta))[0]
        n = check_int("asha: n (configurations to sample)", n, 1)
        self.sampler = sampler
        self.seed = int(seed)
        self.n = n
        self.grace = grace
        self.ladder = Rungs(self.R, self.eta, grace)
        self.rungs = self.ladder.epochs
        self.ignored: list[str] = []  # kept in the state for journals written when asha ignored a predictor
        self.configs: list[dict] = []  # trial id -> config
        self.draws = 0  # draws from the sampler (repeats skipped by dedupe included)
        self.curves: list[list[float]] = []  # trial id -> minimised values of epochs 1..len
        self.running: dict[int, tuple[int, int]] = {}  # trial id -> (start, end) of its unit in flight
        self.failed: set[int] = set()
        self.stopped: set[int] = set()
        self.requeue: list[tuple[int, int, int]] = []  # units lost at a snapshot, suggested again first
        self.pending: list[Decision] = []  # promotion decisions made in suggest()
        self.units = 0

    # ---------------------------------------------------------------- rule
    def _promotable(self, k: int) -> tuple[int, dict] | None:
        """The best not-yet-promoted trial of rung ``k`` inside its top floor(|rung|/eta), if any."""
        found = self.ladder.promotable(k, self.failed)
        if found is None:
            return None
        rank, value, tid = found
        return tid, {
            "rung": k,
            "rung_epoch": self.rungs[k],
            "value": value,
            "rank": rank,
            "rung_size": len(self.ladder.results[k]),
            "quota": self.ladder.quota(k),
        }

    def _best_of_highest_rung(self) -> tuple[int, int] | None:
        """(rung, trial) of the best unpromoted trial in the highest occupied rung below R."""
        for k in range(len(self.rungs) - 2, -1, -1):
            first = self.ladder.first_unpromoted(k, self.failed)
            if first is not None:
                return k, first[1]
        return None

    def _reached_R(self) -> bool:
        return self.ladder.reached_top()

    def _unit(self, tid: int, start: int, end: int) -> WorkUnit:
        self.running[tid] = (start, end)
        self.units += 1
        return WorkUnit(trial_id=tid, config=dict(self.configs[tid]), start_epoch=start, end_epoch=end)

    def _promote(self, k: int, tid: int, info: dict, reason: str) -> WorkUnit:
        self.ladder.promote(k, tid)
        self.pending.append(Decision(tid, CONTINUE, self.rungs[k], reason, info))
        return self._unit(tid, self.rungs[k], self.rungs[k + 1])

    def suggest(self) -> WorkUnit | None:
        if self.requeue:
            tid, start, end = self.requeue.pop(0)
            return self._unit(tid, start, end)
        for k in range(len(self.rungs) - 2, -1, -1):
            found = self._promotable(k)
            if found is not None:
                return self._promote(k, found[0], found[1], "rung")
        while self.draws < self.n:
            config = draw_config(self.sampler)
            self.draws += 1
            if config is None:  # a repeat, skipped by the study's dedupe option: the draw counts
                continue
            self.configs.append(config)
            self.curves.append([])
            return self._unit(len(self.configs) - 1, 0, self.rungs[0])
        if not self.running and not self._reached_R():
            # tiny n: nothing reached R; train the best of the highest rung on so that one does
            found = self._best_of_highest_rung()
            if found is not None:
                k, tid = found
                value = min(v for v, t in self.ladder.results[k] if t == tid)
                return self._promote(
                    k,
                    tid,
                    {"rung": k, "rung_epoch": self.rungs[k], "value": value, "rung_size": len(self.ladder.results[k])},
                    "finish",
                )
        return None

    def _flush(self, decisions: list[Decision]) -> list[Decision]:
        out, self.pending = self.pending + decisions, []
        if self.finished:
            paused = [
                t
                for t, curve in enumerate(self.curves)
                if curve
                and len(curve) < self.R
                and t not in self.failed
                and t not in self.stopped
                and t not in self.ladder.promoted[self.ladder.index(len(curve))]
            ]
            for tid in paused:
                self.stopped.add(tid)
                epoch = len(self.curves[tid])
                out.append(Decision(tid, STOP, epoch, "rung", {"final_rung_epoch": epoch}))
        return out

    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        start, end = take_inflight(self.running, trial_id, self.name, "result for")
        values = check_metrics(trial_id, metrics, start, end)
        self.curves[trial_id] = self.curves[trial_id][:start] + values
        info = self.ladder.record(self.ladder.index(end), trial_id, values[-1])  # NaN/inf rank last
        if end == self.R:
            return self._flush([Decision(trial_id, DONE, end, "completed", info)])
        return self._flush([Decision(trial_id, PAUSE, end, "rung", info)])

    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        start, _ = take_inflight(self.running, trial_id, self.name, "failure of")
        self.failed.add(trial_id)
        return self._flush([Decision(trial_id, FAILED, start, "failed", {"error": str(reason)})])

    @property
    def finished(self) -> bool:
        if self.requeue or self.running or self.draws < self.n:
            return False
        if any(self._promotable(k) is not None for k in range(len(self.rungs) - 1)):
            return False
        return self._reached_R() or self._best_of_highest_rung() is None

    def best(self) -> dict | None:
        for k in range(len(self.rungs) - 1, -1, -1):
            first = self.ladder.first(k, self.failed)
            if first is not None:
                value, tid = first
                return {"trial_id": tid, "config": dict(self.configs[tid]), "value": value, "epoch": self.rungs[k]}
        return None

    def epochs_budget_reference(self) -> int | None:
        return hyperband_budget(self.R, self.eta)[1]

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "algorithm": self.name,
            "settings": {
                "R": self.R,
                "eta": self.eta,
                "n": self.n,
                "grace": self.grace,
                "seed": self.seed,
                "rungs": list(self.rungs),
                "ignored": list(self.ignored),
            },
            "configs": [dict(c) for c in self.configs],
            "curves": [list(c) for c in self.curves],
            "rung_results": self.ladder.state_dict()["results"],
            "promoted": self.ladder.state_dict()["promoted"],
            "failed": sorted(self.failed),
            "stopped": sorted(self.stopped),
            # units in flight are lost at a snapshot and suggested again, in this order
            "requeue": [list(u) for u in self.requeue] + [[t, s, e] for t, (s, e) in self.running.items()],
            "pending": [d.to_dict() for d in self.pending],
            "units": self.units,
            "draws": self.draws,
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        settings = state["settings"]
        if (settings["R"], settings["eta"], settings["n"], settings["grace"]) != (self.R, self.eta, self.n, self.grace):
            raise ConfigError(
                f"asha: state was saved with R={settings['R']}, eta={settings['eta']}, n={settings['n']}, "
                f"grace={settings['grace']}; this scheduler has R={self.R}, eta={self.eta}, n={self.n}, "
                f"grace={self.grace}"
            )
        self.configs = [dict(c) for c in state["configs"]]
        self.curves = [[float(v) for v in c] for c in state["curves"]]
        self.ladder.load_state_dict(
            {"epochs": settings["rungs"], "results": state["rung_results"], "promoted": state["promoted"]}
        )
        self.failed = set(int(t) for t in state["failed"])
        self.stopped = set(int(t) for t in state["stopped"])
        self.requeue = [(int(t), int(s), int(e)) for t, s, e in state["requeue"]]
        self.pending = [Decision(**d) for d in state["pending"]]
        self.running = {}
        self.units = int(state["units"])
        self.draws = int(state.get("draws", len(self.configs)))
        self.sampler.load_state_dict(state["sampler"])
