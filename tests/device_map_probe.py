"""The device map of hpoq's runtime for ranks_per_trial 1, 2 and 4, on whatever nodes the launcher
gave (run under tests/fake_cuda.py: ``mpiexec ... python -m mpi4py tests/fake_cuda.py --script
tests/device_map_probe.py OUT.json``). Per layout it makes the trial groups as ``hpoq run`` does
(:func:`split_groups` of the world), the GPU assignment (:func:`assign_gpus`, the collective the
runtime calls at start-up) and, on every worker rank, the MLPF trainer's device and backend choice on
its group's communicator. Rank 0 writes every rank's records to OUT.json."""

from __future__ import annotations

import json
import os
import sys

from mpi4py import MPI

from hpoq.errors import ConfigError
from hpoq.mlpf.distributed import TorchBackend, pick_device, resolve_backend
from hpoq.runtime import gpus
from hpoq.runtime.groups import GroupLayout, split_groups

world = MPI.COMM_WORLD
# hydra's fork launcher names each rank's (fake) host; under srun the real host name
node = os.environ.get("PMI_HOSTNAME") or MPI.Get_processor_name()
records = []
for rpt in (1, 2, 4):
    layout = GroupLayout(world.Get_size(), rpt)
    group = split_groups(world, layout)
    gpus.release()
    try:
        index = gpus.assign_gpus(world, group is not None)
    except ConfigError as exc:
        records.append({"rpt": rpt, "rank": world.Get_rank(), "error": str(exc)})
        continue
    rec = {"rpt": rpt, "rank": world.Get_rank(), "node": node, "group": layout.group_of(world.Get_rank())}
    rec["index"] = index
    if group is not None:
        device = pick_device("auto", group)
        rec.update(device=str(device), backend=resolve_backend("auto", group, device))
        rec["dist_backend"] = TorchBackend.dist_backend(device)
        group.Free()
    records.append(rec)
everything = world.gather(records, root=0)
if world.Get_rank() == 0:
    with open(sys.argv[1], "w") as fh:
        json.dump([r for part in everything for r in part], fh)
