#!/usr/bin/env bash
# `make run`: the default study on 4 MPI ranks (master + 3 trial groups) on this machine.
#  1. generates a small synthetic MLPF dataset in data/mlpf-synth if it is missing;
#  2. runs examples/default.yaml under mpiexec (resumes runs/default if an earlier run of it
#     was interrupted; a finished one is moved aside to runs/default.<time>);
#  3. prints the best configuration, the report, the epochs against Hyperband's for the same
#     configurations and R, and what the predictor (qsvr, simulated annealing) decided at each rung.
# Environment: HPOQ_RANKS (default 4), HPOQ_STUDY (default examples/default.yaml),
#              HPOQ_OUT (default runs/default).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${HPOQ_PYTHON:-.venv/bin/python}
RANKS=${HPOQ_RANKS:-4}
STUDY=${HPOQ_STUDY:-examples/default.yaml}
OUT=${HPOQ_OUT:-runs/default}
DATA=data/mlpf-synth
export PATH="$(dirname "$PY"):$PATH" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MPIR_CVAR_ENABLE_HEAVY_YIELD=1

if [ ! -f "$DATA/dataset.json" ]; then
  echo "hpoq: generating synthetic MLPF events in $DATA"
  "$PY" -m hpoq.main generate-data --out "$DATA" --events 2000 --seed 0 >/dev/null
fi

ARGS=("$STUDY" --out "$OUT")
if [ -f "$OUT/journal.jsonl" ]; then
  if "$PY" -m hpoq.main status "$OUT" >/dev/null 2>&1; then
    old="$OUT.$(date +%Y%m%d-%H%M%S)"
    echo "hpoq: moving the finished study in $OUT to $old"
    mv "$OUT" "$old"
  else
    echo "hpoq: resuming the interrupted study in $OUT"
    ARGS=(--resume "$OUT")
  fi
fi

mpiexec -n "$RANKS" "$PY" -m mpi4py -m hpoq.main run "${ARGS[@]}"
echo
"$PY" -m hpoq.main status "$OUT" || true
echo "best configuration ($OUT/best.yaml):"
sed 's/^/  /' "$OUT/best.yaml"
"$PY" -m hpoq.main report "$OUT"
"$PY" -c 'import sys; from hpoq.report.decisions import summary_lines; print("\n".join(summary_lines(sys.argv[1])))' "$OUT"
