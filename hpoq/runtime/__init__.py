"""The MPI runtime (``hpoq run``): rank 0 is the master, the other ranks form trial groups.

Launch: ``mpiexec -n N python -m hpoq.main run STUDY.yaml`` (or ``srun python -m hpoq.main run
...``); :mod:`~hpoq.runtime.mpi_guard` (like ``-m mpi4py``) makes an uncaught exception on any rank abort the
whole job. The scheduler is driven by :mod:`hpoq.dispatch`; records are :mod:`hpoq.journal.records`, the
study's state :mod:`hpoq.journal.state`. Modules: :mod:`~hpoq.runtime.launch` (start-up, validation, shut-down),
:mod:`~hpoq.runtime.master` (dispatch loop, failures, checkpoints), :mod:`~hpoq.runtime.worker`
(group leaders and members), :mod:`~hpoq.runtime.groups` (rank layout, message tags),
:mod:`~hpoq.runtime.journal` (the JSON-lines journal file, the one reader of it),
:mod:`~hpoq.runtime.resume` (replay for ``--resume``), :mod:`~hpoq.runtime.signals` (SIGTERM/SIGUSR1),
:mod:`~hpoq.runtime.progress`,
:mod:`~hpoq.runtime.outputs` (trials.csv, best.yaml, curves.h5).

Output directory: ``journal.jsonl``, ``curves.h5``, ``trials.csv``, ``best.yaml`` and
``checkpoints/trial-NNNNN`` (only the best trial's is left when the study finishes).
"""
