#!/usr/bin/env bash
# Optional: bind each Slurm task of an hpoq job to one GPU with CUDA_VISIBLE_DEVICES; the master (task 0)
# gets none. hpoq gives every worker rank of a node its own GPU by itself (hpoq/runtime/gpus.py), under
# srun and mpiexec alike; this wrapper only hides the other GPUs from each rank, for sites or libraries
# that want that.   srun --kill-on-bad-exit=1 [...] bash jobs/gpu_bind.sh python -m hpoq.main run STUDY.yaml
# (--kill-on-bad-exit: a task refused here ends the step, instead of leaving the others waiting in MPI).
#
# Task 0 (the master) is on the job's first node with local id 0 under Slurm's block and cyclic
# distributions; every other task of a node takes, in local-id order, the next of the GPUs Slurm gave
# the step on that node (CUDA_VISIBLE_DEVICES as Slurm set it, else 0..SLURM_GPUS_ON_NODE-1), so the
# rule holds on any number of nodes however many tasks each holds. A node with more worker tasks than
# GPUs is refused in one line (exit 2): set --ntasks-per-node (the JUWELS script shows how).
set -euo pipefail
if [ "${SLURM_PROCID:-0}" = "0" ]; then
  export CUDA_VISIBLE_DEVICES=""
  exec "$@"
fi
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  IFS=, read -r -a GPUS <<<"$CUDA_VISIBLE_DEVICES"
else
  GPUS=()
  for ((i = 0; i < ${SLURM_GPUS_ON_NODE:-0}; i++)); do GPUS+=("$i"); done
fi
SLOT=${SLURM_LOCALID:-0}
[ "${SLURM_NODEID:-0}" = "0" ] && SLOT=$((SLOT - 1))   # the master holds local id 0 of the first node
if [ "$SLOT" -ge "${#GPUS[@]}" ]; then
  echo "hpoq: error: gpu_bind.sh: task ${SLURM_PROCID} is worker $((SLOT + 1)) of node ${SLURMD_NODENAME:-${SLURM_NODEID:-?}}, which has ${#GPUS[@]} GPU(s); at most one worker task per GPU (sbatch --ntasks-per-node)" >&2
  exit 2
fi
export CUDA_VISIBLE_DEVICES=${GPUS[$SLOT]}
exec "$@"
