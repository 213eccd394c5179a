"""Drive one model-based peer on a curve table, inside the peer's own venv (benchmarks/.venvs/<venv>).

Started by :mod:`benchmarks.peers_model` (``run``) as
``<venv>/bin/python benchmarks/peers_driver.py --method M --table T.json --seeds 0,1 --workers W --budget B``;
prints one JSON line per seed (:meth:`benchmarks.peers_harness.Ledger.result`). Imports only numpy,
:mod:`benchmarks.peers_harness` and the peer library, each as its users run it:

- Syne Tune 0.13 (``hyper-tune``, ``mobster``, ``dyhpo``): ``BlackboxTabular`` over the table's distinct
  configurations (MLPF repeats some: its rows for one configuration are the blackbox's seeds, one drawn at
  random per trial as the simulator does), ``restrict_configurations`` = those configurations,
  ``UserBlackboxBackend`` with the cumulative time per epoch, ``Tuner`` with the simulator callback and
  ``n_workers`` workers, stopped after ``budget`` reported epochs (``max_num_evaluations``).
- Syne Tune 0.16 (``st-asha``, ``st-bohb``, ``st-asha-cqr``): the same blackbox wrapped by
  ``add_surrogate`` (1-nearest-neighbour), because 0.16's searchers sample the space, not the rows.
- NePS 0.17 (``neps-hyperband``, ``neps-asha``, ``neps-priorband``): ``neps.AskAndTell`` over the table's
  space with an integer ``epochs`` fidelity; a sampled configuration trains its nearest row; a trial that
  continues an earlier one (``previous_config_id``) resumes from its checkpoint and pays its new epochs.
- DEHB 0.1.2 (``dehb``): ask/tell over a ConfigSpace of the table's space, fidelity = epochs; every job
  trains from scratch (DEHB's design: a job carries no checkpoint to resume) and pays all its epochs.

Syne Tune measures time itself (simulated); for the ask/tell peers :class:`benchmarks.peers_harness.WorkerPool`
plays ``workers`` workers. Budget and accounting: :class:`benchmarks.peers_harness.Ledger`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peers_harness import Ledger, PeerTable, WorkerPool, units_to_ledger  # noqa: E402

METRIC, TIME, RESOURCE, MAX_RESOURCE = "objective", "elapsed_time", "epoch", "epochs"
#: Syne Tune's simulator adds the tuner's own real compute time and a sleep per loop to simulated time (by
#: design, for benchmarks whose epochs take real seconds); one table time unit (an epoch, or a second of the
#: table's time column) is TIME_SCALE simulated seconds, so that both are negligible, and the loop ticks
#: TICKS times per unit
TIME_SCALE, TICKS = 1000.0, 50


# --- Syne Tune -----------------------------------------------------------------------------------------


def syne_tune_space(table: PeerTable) -> dict:
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    space = {}
    for name, spec in table.space().items():
        if spec["type"] == "choice":
            space[name] = choice(spec["values"])
        elif spec["type"] == "int":
            space[name] = (lograndint if spec["log"] else randint)(spec["low"], spec["high"])
        else:
            space[name] = (loguniform if spec["log"] else uniform)(spec["low"], spec["high"])
    return space


def config_groups(table: PeerTable) -> tuple[list, list]:
    """(distinct configurations, rows of each) in first-seen order."""
    index: dict = {}
    for row, config in enumerate(table.configs):
        index.setdefault(tuple(config[k] for k in table.hp_names), []).append(row)
    return [dict(zip(table.hp_names, key)) for key in index], list(index.values())


def syne_tune_blackbox(table: PeerTable):
    """A ``BlackboxTabular``: distinct configurations x seeds (the rows repeating a configuration, cycled) x
    epochs x (metric, cumulative time); plus the rows of each configuration."""
    import pandas as pd
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular
    from syne_tune.config_space import randint

    configs, groups = config_groups(table)
    n_seeds = max(len(g) for g in groups)
    R = table.R
    evals = np.zeros((len(configs), n_seeds, R, 2))
    for i, rows in enumerate(groups):
        for s in range(n_seeds):
            row = rows[s % len(rows)]
            evals[i, s, :, 0] = table.curves[row, :R]
            evals[i, s, :, 1] = TIME_SCALE * table.seconds_per_epoch[row] * np.arange(1, R + 1)
    blackbox = BlackboxTabular(
        hyperparameters=pd.DataFrame(configs, columns=table.hp_names),
        configuration_space=syne_tune_space(table),
        fidelity_space={RESOURCE: randint(1, R)},
        objectives_evaluations=evals,
        fidelity_values=np.arange(1, R + 1),
        objectives_names=[METRIC, TIME],
    )
    return blackbox, configs, groups


def syne_tune_scheduler(method: str, table: PeerTable, space: dict, configs: list, seed: int):
    from syne_tune.optimizer import baselines

    common = dict(
        metric=METRIC,
        mode="min",
        resource_attr=RESOURCE,
        max_resource_attr=MAX_RESOURCE,
        random_seed=seed,
    )
    sh = dict(grace_period=1, reduction_factor=table.eta)
    restrict = {"restrict_configurations": configs}
    if method == "hyper-tune":
        return baselines.HyperTune(space, search_options=restrict, **sh, **common)
    if method == "mobster":
        return baselines.MOBSTER(space, search_options=restrict, **sh, **common)
    if method == "dyhpo":  # linearly spaced rungs, its own default (no reduction factor)
        return baselines.DyHPO(space, search_options=restrict, grace_period=1, **common)
    # Syne Tune 0.16: its own scheduler signature (metric, time_attr, max_t, do_minimize)
    new = dict(metric=METRIC, time_attr=RESOURCE, max_t=table.R, do_minimize=True, random_seed=seed, **sh)
    space = {k: v for k, v in space.items() if k != MAX_RESOURCE}
    if method == "st-asha":
        return baselines.ASHA(space, **new)
    if method == "st-bohb":
        return baselines.BOHB(space, **new)
    if method == "st-asha-cqr":
        return baselines.ASHACQR(space, **new)
    raise ValueError(f"unknown Syne Tune method {method!r}")


def run_syne_tune(table: PeerTable, method: str, seed: int, workers: int, budget: int) -> dict:
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
    from syne_tune.tuner_callback import TunerCallback

    np.random.seed(seed)  # the simulator draws each trial's blackbox seed from numpy's global generator
    blackbox, configs, groups = syne_tune_blackbox(table)
    surrogate = method.startswith("st-")
    if surrogate:
        from sklearn.neighbors import KNeighborsRegressor
        from syne_tune.blackbox_repository import add_surrogate

        blackbox = add_surrogate(blackbox, surrogate=KNeighborsRegressor(n_neighbors=1))
    space = {**syne_tune_space(table), MAX_RESOURCE: table.R}
    backend = UserBlackboxBackend(
        blackbox=blackbox,
        elapsed_time_attr=TIME,
        max_resource_attr=MAX_RESOURCE,
        simulator_config=SimulatorConfig(0.0, 0.0, 0.0, 0.0, 0.0),
        tuner_sleep_time=TIME_SCALE / TICKS,
    )
    records: list = []

    class Collect(TunerCallback):
        def on_trial_result(self, trial, status, result, decision):
            records.append(
                (trial.trial_id, dict(trial.config), int(result[RESOURCE]), float(result["st_tuner_time"]) / TIME_SCALE)
            )

    tuner = Tuner(
        trial_backend=backend,
        scheduler=syne_tune_scheduler(method, table, space, configs, seed),
        stop_criterion=StoppingCriterion(max_num_evaluations=budget),
        n_workers=workers,
        sleep_time=0,
        callbacks=[SimulatorCallback(), Collect()],
        tuner_name=f"hpoq-{method}-{seed}",
        save_tuner=False,
        print_update_interval=1e9,
        results_update_interval=1e9,
    )
    tuner.run()
    ledger = Ledger(table, budget=budget)
    group_of = {row: g for g in groups for row in g}
    rng = np.random.default_rng(seed)
    rows: dict = {}
    for trial_id, config, epoch, t in sorted(records, key=lambda r: r[3]):
        if trial_id not in rows:
            if surrogate:  # the 1-NN surrogate answers with the nearest row's curve
                rows[trial_id] = table.nearest_row(config, rng)
            else:
                # the proposed row (Syne Tune may round a float on the way), then the blackbox seed's row
                group = group_of[table.nearest_row(config)]
                rows[trial_id] = group[backend._seed_for_trial.get(trial_id, 0) % len(group)]
        if not ledger.epoch(trial_id, rows[trial_id], epoch, t):
            break
    return ledger.result(seed=seed, started=len(rows))


# --- NePS ------------------------------------------------------------------------------------------------


def neps_space(table: PeerTable, prior: bool = False) -> dict:
    """The table's space for NePS; ``prior``: the centre of every range (the middle choice) as the user's prior
    (PriorBand needs one; a table has no default configuration, and its best rows would be a cheat), at NePS's
    default "low" confidence."""
    import neps

    space = {}
    for name, spec in table.space().items():
        if spec["type"] == "choice":
            values = list(spec["values"])
            centre = values[len(values) // 2]
            space[name] = neps.Categorical(choices=values, **_prior(centre if prior else None))
            continue
        low, high = spec["low"], spec["high"]
        centre = math.sqrt(low * high) if spec["log"] else 0.5 * (low + high)
        if spec["type"] == "int":
            centre = int(round(centre))
            space[name] = neps.Integer(lower=low, upper=high, log=spec["log"], **_prior(centre if prior else None))
        else:
            space[name] = neps.Float(lower=low, upper=high, log=spec["log"], **_prior(centre if prior else None))
    space[MAX_RESOURCE] = neps.Integer(lower=1, upper=table.R, is_fidelity=True)
    return space


def _prior(value) -> dict:
    return {} if value is None else {"prior": value, "prior_confidence": "low"}


def run_neps(table: PeerTable, method: str, seed: int, workers: int, budget: int) -> dict:
    import random

    import neps
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    space = neps.SearchSpace(neps_space(table, prior=method == "neps-priorband"))
    algo = {"neps-hyperband": "hyperband", "neps-asha": "asha", "neps-priorband": "priorband"}[method]
    optimizer = getattr(neps.algorithms, algo)(space, eta=table.eta)
    ask_tell = neps.AskAndTell(optimizer)
    return ask_tell_loop(
        table,
        seed,
        workers,
        budget,
        ask=lambda: _neps_ask(ask_tell),
        tell=lambda job, value: ask_tell.tell(job["trial"], {"objective_to_minimize": value, "cost": job["paid"]}),
    )


def _neps_ask(ask_tell) -> dict:
    trial = ask_tell.ask()
    config = dict(trial.config)
    # NePS names a trial ``<config>_<rung>``; a promotion is the same config at a higher rung, and continues
    # from the checkpoint of its ``previous_trial_id``: the config's lineage
    lineage = str(trial.id).rsplit("_", 1)[0]
    return {"trial": trial, "config": config, "epochs": int(config[MAX_RESOURCE]), "lineage": lineage}


# --- DEHB ------------------------------------------------------------------------------------------------


def dehb_space(table: PeerTable, seed: int):
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    for name, spec in table.space().items():
        if spec["type"] == "choice":
            hp = CS.CategoricalHyperparameter(name, [str(v) for v in spec["values"]])
        elif spec["type"] == "int":
            hp = CS.UniformIntegerHyperparameter(name, spec["low"], spec["high"], log=spec["log"])
        else:
            hp = CS.UniformFloatHyperparameter(name, spec["low"], spec["high"], log=spec["log"])
        cs.add(hp) if hasattr(cs, "add") else cs.add_hyperparameter(hp)
    return cs


def run_dehb(table: PeerTable, method: str, seed: int, workers: int, budget: int) -> dict:
    from dehb import DEHB

    cs = dehb_space(table, seed)
    choices = {n: s["values"] for n, s in table.space().items() if s["type"] == "choice"}
    out = tempfile.TemporaryDirectory(prefix="hpoq-dehb-")
    dehb = DEHB(
        cs=cs,
        dimensions=len(cs.get_hyperparameters()) if hasattr(cs, "get_hyperparameters") else len(cs),
        min_fidelity=1,
        max_fidelity=table.R,
        eta=table.eta,
        n_workers=1,
        seed=seed,
        output_path=out.name,
    )
    counter = iter(range(10**9))

    def ask():
        job = dehb.ask()
        config = dict(job["config"])  # a ConfigSpace Configuration (DEHB converts its vector)
        for name, values in choices.items():  # ConfigSpace categoricals are strings
            config[name] = next(v for v in values if str(v) == config[name])
        epochs = max(1, min(table.R, int(round(float(job["fidelity"])))))
        return {"job": job, "config": config, "epochs": epochs, "lineage": f"dehb-{next(counter)}"}

    with out:
        return ask_tell_loop(
            table,
            seed,
            workers,
            budget,
            ask=ask,
            tell=lambda job, value: dehb.tell(job["job"], {"fitness": value, "cost": job["paid"]}),
        )


# --- the ask/tell loop ------------------------------------------------------------------------------------


def ask_tell_loop(table: PeerTable, seed: int, workers: int, budget: int, ask, tell) -> dict:
    """``workers`` simulated workers: ask while one is free and the budget is not spent (epochs dispatched);
    each job trains its configuration's nearest row from the lineage's checkpoint to its epochs (starting once
    a predecessor still training has finished); tell the value at its last epoch when it finishes. The ledger
    then counts epochs in the order they finish."""
    rng = np.random.default_rng(seed)
    pool = WorkerPool(table, workers)
    trained: dict = {}  # lineage -> (row, epochs trained)
    units: list = []
    dispatched = 0
    while True:
        while pool.free > 0 and dispatched < budget:
            job = ask()
            # NePS's ASHA may promote a trial still training (pending results count in its rungs): the
            # continuation waits on its worker for the predecessor's checkpoint
            before = max((end for end, _, _, j in pool.running if j["lineage"] == job["lineage"]), default=0.0)
            row, done = trained.get(job["lineage"], (None, 0))
            if row is None:
                row = table.nearest_row(job["config"], rng)
            start = min(done, job["epochs"])
            job.update(row=row, start=start, paid=job["epochs"] - start)
            trained[job["lineage"]] = (row, max(done, job["epochs"]))
            t0, t1 = pool.submit(job, row, max(job["paid"], 0), not_before=before)
            units.append((job["lineage"], row, start, job["epochs"], t0, t1))
            dispatched += job["paid"]
        if not pool.running:
            break
        job, _, _ = pool.next_free()
        tell(job, float(table.curves[job["row"], job["epochs"] - 1]))
    return units_to_ledger(Ledger(table, budget=budget), units).result(seed=seed, started=len(trained))


#: method -> the distribution whose installed version each run records
PACKAGES = {"dehb": "dehb", **{m: "neural-pipeline-search" for m in ("neps-hyperband", "neps-asha", "neps-priorband")}}


def library_version(method: str) -> str:
    from importlib.metadata import version

    package = PACKAGES.get(method, "syne-tune")
    return f"{package} {version(package)}"


RUNNERS = {
    "hyper-tune": run_syne_tune,
    "mobster": run_syne_tune,
    "dyhpo": run_syne_tune,
    "st-asha": run_syne_tune,
    "st-bohb": run_syne_tune,
    "st-asha-cqr": run_syne_tune,
    "neps-hyperband": run_neps,
    "neps-asha": run_neps,
    "neps-priorband": run_neps,
    "dehb": run_dehb,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--table", required=True, help="JSON written by benchmarks/peers_model.py")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--budget", type=int, required=True, help="epochs (Hyperband's on this table)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("SYNETUNE_FOLDER", tempfile.mkdtemp(prefix="hpoq-synetune-"))
    table = PeerTable.load(args.table)
    for seed in [int(s) for s in args.seeds.split(",")]:
        result = RUNNERS[args.method](table, args.method, seed, args.workers, args.budget)
        extra = {"method": args.method, "workers": args.workers, "library": library_version(args.method)}
        print(json.dumps({**result, **extra}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
