"""Synthetic CLIC-like particle-flow events, vectorised numpy over blocks of events.

The pipeline (docs/mlpf-data.md): generator level (:mod:`.process`), tracker (:mod:`.tracker`),
calorimeter (:mod:`.calorimeter`), clustering (:mod:`.clustering`), truth ``ytarget``
(:mod:`.truth`), rule-based PF baseline ``ycand`` (:mod:`.pf`) and jets / genMET (:mod:`.genjets`).
Each stage has its own settings dataclass; :class:`GeneratorConfig` flattens them into one record
with the presets ``easy``, ``clic`` and ``dense``. Event ``j`` of seed ``s`` depends only on
``SeedSequence([s, j])``, whatever block, shard or process generates it.

Units: energies and momenta in GeV, lengths in mm, field in T, time in ns.

Deviations from a full simulation, chosen for speed (>= 2,000 events per CPU-second):
- clustering: a deposit joins the cluster of the most energetic deposit within its radius
  (pointer jumping over the energy-sorted Delta R matrix), which equals greedy clustering except
  for rare chains;
- truth: a particle without a track competes only for its *best* cluster (the one holding its
  main deposit); if a more energetic particle owns that cluster it is merged into it;
- fake tracks: Poisson(rate x charged particles in the tracker acceptance); cluster hit counts
  carry Gaussian (not Poisson) noise of width sqrt(mean).
"""

from hpoq.mlpf.generator.config import PRESETS, STAGE_SETTINGS, GeneratorConfig, make_config
from hpoq.mlpf.generator.pipeline import Block, Event, generate_event, generate_events, run_stages

__all__ = [
    "PRESETS",
    "STAGE_SETTINGS",
    "Block",
    "Event",
    "GeneratorConfig",
    "generate_event",
    "generate_events",
    "make_config",
    "run_stages",
]
