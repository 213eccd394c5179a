#!/usr/bin/env bash
# Bind each Slurm task to one GPU; the master (global rank 0) gets none.
# With block distribution the master shares node 0 with GPU ranks: there local ids 1..G map to
# GPUs 0..G-1, on every other node local ids 0..G-1 map to GPUs 0..G-1.
set -euo pipefail
if [ "${SLURM_PROCID:-0}" = "0" ]; then
  export CUDA_VISIBLE_DEVICES=""
elif [ "${SLURM_NODEID:-0}" = "0" ]; then
  export CUDA_VISIBLE_DEVICES=$(( ${SLURM_LOCALID:-1} - 1 ))
else
  export CUDA_VISIBLE_DEVICES=${SLURM_LOCALID:-0}
fi
exec "$@"
