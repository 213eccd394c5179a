"""The scheduler seam: pure decision logic driven by events (cf. Syne Tune's TrialScheduler).

A scheduler decides which configuration is trained for how many epochs. It never launches
anything: a backend (the MPI runtime or the replay simulator) asks :meth:`Scheduler.suggest`
for work whenever a worker (trial group) is free, runs the :class:`WorkUnit`, and reports the
per-epoch metrics with :meth:`Scheduler.on_result`. All metric values handed to a scheduler are
*minimised* (accuracy-type metrics negated, docs/algorithms.md#conventions).

Resources are epochs. A work unit ``(trial_id, start_epoch, end_epoch)`` trains the trial from
its checkpoint at ``start_epoch`` (0 = from scratch) through ``end_epoch`` and costs
``end_epoch - start_epoch`` epochs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Protocol, Sequence

from hpoq.errors import InternalError
from hpoq.registry import Anything, Interval


class ConfigSampler(Protocol):
    """Where new configurations come from (a search space, or the rows of a curve table).

    Deterministic for a given seed; its state is the number of configurations drawn, so that a
    scheduler restored from :meth:`Scheduler.state_dict` continues the same sequence.
    """

    def sample(self) -> dict: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class WorkUnit:
    """Train ``trial_id`` (hyperparameters ``config``) from ``start_epoch`` through ``end_epoch``."""

    trial_id: int
    config: dict
    start_epoch: int
    end_epoch: int

    @property
    def epochs(self) -> int:
        return self.end_epoch - self.start_epoch

    def to_dict(self) -> dict:
        return asdict(self)


class Action(StrEnum):
    """What happens to a trial after a result (explicit, as in Syne Tune / Ray). A ``StrEnum``: its
    members are the strings written to journals and state files ("continue", ...)."""

    CONTINUE = "continue"  # more epochs will follow: keep the checkpoint
    PAUSE = "pause"  # waits for a promotion decision: keep the checkpoint
    STOP = "stop"  # pruned or not promotable: the checkpoint may be deleted
    DONE = "done"  # reached the maximum epochs R: final value known
    FAILED = "failed"  # the trainer failed (exception, NaN/inf, out of memory)


class Status(StrEnum):
    """Where a trial stands: the one status vocabulary of the schedulers' trials and the runtime's
    state of a study read from its journal (:mod:`hpoq.journal.state`)."""

    RUNNING = "running"  # a unit is in flight or about to be dispatched
    PAUSED = "paused"  # waits at a rung for a promotion decision
    PROMOTED = "promoted"  # promoted past a rung; its next unit follows
    PRUNED = "pruned"  # stopped before R
    DONE = "done"  # reached R
    FAILED = "failed"  # its trainer failed

    @classmethod
    def after(cls, action: str) -> "Status":
        """The status a decision with ``action`` leaves its trial in."""
        return ACTION_STATUS[Action(action)]


CONTINUE, PAUSE, STOP, DONE, FAILED = Action.CONTINUE, Action.PAUSE, Action.STOP, Action.DONE, Action.FAILED
ACTIONS = tuple(Action)
ACTION_STATUS = {
    Action.CONTINUE: Status.PROMOTED,
    Action.PAUSE: Status.PAUSED,
    Action.STOP: Status.PRUNED,
    Action.DONE: Status.DONE,
    Action.FAILED: Status.FAILED,
}


@dataclass(frozen=True)
class Forecast:
    """A predictor's forecast behind a decision, in one shape for every algorithm (the report reads it): the
    value at ``target_epoch`` predicted from the first ``from_epoch`` epochs (minimised,
    docs/algorithms.md#conventions), the predictor's own ``error`` estimate (None: none), the ``threshold``
    the forecast was compared with (None: none) and the ``model`` that made it."""

    value: float
    from_epoch: int
    target_epoch: int
    error: float | None = None
    threshold: float | None = None
    model: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "Forecast":
        def number(key):
            return None if d.get(key) is None else float(d[key])

        return cls(
            float(d["value"]),
            int(d["from_epoch"]),
            int(d["target_epoch"]),
            number("error"),
            number("threshold"),
            str(d.get("model", "")),
        )


@dataclass
class Decision:
    """One decision about one trial, with the inputs it used (logged to the journal).

    ``reason`` names the rule, e.g. ``"rung"`` (ranked out at a rung), ``"predicted"`` (the
    predictor said it cannot win), ``"quota"`` (continued to collect predictor data),
    ``"completed"``. ``info`` holds the inputs: prediction, threshold, predictor key, |D|, ...;
    ``forecast`` the predictor's forecast the decision used, if any.
    """

    trial_id: int
    action: str
    epoch: int
    reason: str = ""
    info: dict = field(default_factory=dict)
    forecast: Forecast | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.forecast is None:
            del d["forecast"]  # a decision without one reads as before
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        """A decision from :meth:`to_dict` (e.g. read back from a journal)."""
        forecast = d.get("forecast")
        return cls(
            int(d["trial_id"]),
            str(d["action"]),
            int(d["epoch"]),
            str(d.get("reason", "")),
            dict(d.get("info") or {}),
            None if forecast is None else Forecast.from_dict(forecast),
        )


class Scheduler(ABC):
    """Base class of every search algorithm (one module per algorithm, registered by name).

    Contract with backends:

    * :meth:`suggest` returns the next runnable work unit or ``None`` (nothing runnable *now*;
      ask again after the next result). It never returns a unit of a trial already running.
    * Every suggested unit is answered exactly once, by :meth:`on_result` (metrics for epochs
      ``start_epoch + 1 .. end_epoch``) or :meth:`on_failure`.
    * While :attr:`finished` is False and no unit is in flight, :meth:`suggest` returns a unit
      (a scheduler never deadlocks a backend).
    * :meth:`state_dict` / :meth:`load_state_dict` round-trip through JSON; a restored
      scheduler continues exactly as the original would (units in flight at the time of the
      snapshot are lost work and are suggested again).

    The base owns the trial ledger (:attr:`ledger`, :class:`hpoq.schedulers.trials.Ledger`: configurations,
    curves, units in flight, requeue, draws, statuses) and saves it with one generic :meth:`state_dict`;
    an algorithm adds what it decides (:meth:`decision_state`) and what the state must have been made
    with (:meth:`settings`).
    """

    #: registry name used in study files and ``--algorithm``
    name: str = ""
    #: what every scheduler takes (hpoq.registry); subclasses add their own parameters
    parameter_constraints = {
        "R": [Interval(int, 1, None)],
        "eta": [Interval(int, 2, None)],
        "sampler": [Anything()],
        "seed": [Interval(int, 0, None)],
    }
    #: draws through :func:`hpoq.schedulers.sampling.draw_config`, so a deduplicating sampler's
    #: skipped repeats count as draws (``--dedupe`` is refused for schedulers that do not)
    supports_dedupe: bool = False

    @classmethod
    def worker_defaults(cls, workers: int) -> dict:
        """Parameters this algorithm sets from the number of parallel workers (trial groups) when the
        study does not: the MPI runtime resolves them once and records them in the journal header (a
        resumed study keeps them, whatever its new size), the simulator with ``workers``."""
        return {}

    @classmethod
    def runtime_defaults(cls) -> dict:
        """Parameters the MPI runtime sets when the study does not (recorded in the journal header like
        :meth:`worker_defaults`); the simulator keeps the class defaults."""
        return {}

    def __init__(self, sampler=None) -> None:
        """``sampler``: the :class:`ConfigSampler` the ledger draws new configurations from."""
        from hpoq.schedulers.trials import Ledger

        self.ledger = Ledger(sampler)

    @abstractmethod
    def suggest(self) -> WorkUnit | None:
        """Next work unit to run, or None if nothing is runnable until another result arrives."""

    @abstractmethod
    def on_result(self, trial_id: int, metrics: Sequence[float]) -> list[Decision]:
        """Per-epoch minimised metrics of the unit just finished; returns decisions (any trials)."""

    @abstractmethod
    def on_failure(self, trial_id: int, reason: str) -> list[Decision]:
        """The unit of ``trial_id`` failed (exception, NaN/inf, OOM); returns decisions."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True when the search is over (no more units will be suggested)."""

    @abstractmethod
    def best(self) -> dict | None:
        """The answer so far: ``{"trial_id", "config", "value", "epoch"}`` or None."""

    def settings(self) -> dict:
        """What a saved state must have been made with to be loaded (R, eta, n, ...): compared on load."""
        return {}

    def decision_state(self) -> dict:
        """What the algorithm decided beyond the ledger (rungs, brackets, phases), JSON-serialisable."""
        return {}

    def load_decision_state(self, state: dict) -> None:
        """Restore :meth:`decision_state` (the ledger is loaded first)."""
        return None

    def state_dict(self) -> dict:
        """JSON-serialisable state: the settings, the ledger (configs, curves so far, sampler position) and
        the algorithm's decision state."""
        return {
            "algorithm": self.name,
            "settings": self.settings(),
            "ledger": self.ledger.state_dict(),
            "decisions": self.decision_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; in-flight units at snapshot time are re-suggested. ConfigError for
        the state of another algorithm or of other settings."""
        from hpoq.errors import ConfigError

        if state.get("algorithm") != self.name or "ledger" not in state:
            raise ConfigError(f"{self.name}: the saved state is not one of {self.name!r} in this format")
        theirs, mine = state.get("settings"), self.settings()
        if theirs != mine:
            diff = ", ".join(f"{k}={theirs.get(k)!r}" for k in mine if theirs.get(k) != mine[k])
            raise ConfigError(f"{self.name}: the saved state was made with {diff}; this scheduler has {mine}")
        self.ledger.load_state_dict(state["ledger"])
        self.load_decision_state(state["decisions"])

    def epochs_budget_reference(self) -> int | None:
        """Epochs plain Hyperband would use at the same R and eta (for progress displays)."""
        return None

    # -- background fits: the protocol of a scheduler that fits models off the backend's loop ------------
    #: predictor fits so far by the scheduler's own count (the end record's ``predictor_fits``); None: not counted
    fits: int | None = None
    #: True when the scheduler fits models in the background: the MPI master then gives it a fit thread
    #: (:meth:`attach_fit_executor`) and reports finished fits (:meth:`fitted_models`, :meth:`on_model_ready`)
    background_fits: bool = False

    def attach_fit_executor(self, executor) -> None:
        """Fit models on ``executor`` (``submit(fn, *args) -> future``) instead of inline; a resume attaches
        one that runs each job at once. The default scheduler fits nothing."""
        return None

    def fitted_models(self) -> list:
        """Keys of the background fits done and not yet reported with :meth:`on_model_ready`, in the order
        they were started (polled by the MPI master; none by default)."""
        return []

    def on_model_ready(self, key) -> list[Decision]:
        """The model ``key`` of :meth:`fitted_models` may be used from now on (journaled as a ``model``
        record, replayed by a resume); returns decisions."""
        raise InternalError(f"{self.name}: on_model_ready({key}), but it fits no models in the background")
