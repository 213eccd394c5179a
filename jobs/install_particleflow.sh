#!/usr/bin/env bash
# Install upstream MLPF (jpata/particleflow, PyPI `particleflow`) for hpoq's `model: particleflow`
# into the Python environment given as $1, without touching its torch.
#
# Why not `pip install particleflow`: the 3.1.0 wheel requires torch (resolving to another
# version), TensorFlow, apache_beam, ray, flash-attn, spconv and ~50 more packages. The model
# itself (mlpf.model.mlpf.MLPF, mlpf.conf.MLPFConfig) imports only pydantic, psutil, PyYAML and
# comet_ml (mlpf/utils.py imports comet_ml at module top); upstream's CLIC dataset reader
# (mlpf.heptfds.edm4hep_utils.utils_pf.prepare_data_clic) adds awkward + pyarrow. So: the wheel
# with --no-deps, then exactly those packages at pinned versions, with torch held at the
# installed version by a constraint file, and a check afterwards that torch did not change.
# The wheel lacks particleflow_spec.yaml; hpoq never reads it (it builds MLPFConfig directly).
#
# Usage: bash jobs/install_particleflow.sh [PYTHON]   (default: python3)
# Idempotent: exits 0 at once when the model imports already.
set -euo pipefail

PY="${1:-python3}"
PF_VERSION="3.1.0"
# the pinned packages that the model import and upstream's parquet reader need: setup.cfg's
# `particleflow` extra (one list for pip and this script). einops and pandas, named in the issue
# that asked for this recipe, are imported by neither mlpf.model.mlpf nor utils_pf (checked on 3.1.0)
SETUP_CFG="$(cd "$(dirname "$0")/.." && pwd)/setup.cfg"

if ! command -v "$PY" >/dev/null 2>&1 && [ ! -x "$PY" ]; then
    echo "install_particleflow: python interpreter '$PY' not found" >&2
    exit 2
fi

check='import mlpf.model.mlpf, mlpf.conf, mlpf.heptfds.edm4hep_utils.utils_pf'
if "$PY" -c "$check" >/dev/null 2>&1; then
    echo "install_particleflow: particleflow already importable with $PY; nothing to do"
    exit 0
fi

TORCH_BEFORE="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)" || {
    echo "install_particleflow: torch is not importable with $PY; install torch first" >&2
    exit 2
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "torch==$TORCH_BEFORE" > "$work/constraints.txt"

"$PY" -m pip install -q --no-deps "particleflow==$PF_VERSION"
mapfile -t DEPS < <("$PY" -c '
import configparser, sys
cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])
print("\n".join(line for line in cfg["options.extras_require"]["particleflow"].split("\n") if line.strip()))
' "$SETUP_CFG")
if [ "${#DEPS[@]}" -eq 0 ]; then
    echo "install_particleflow: no 'particleflow' extra in $SETUP_CFG" >&2
    exit 2
fi
"$PY" -m pip install -q -c "$work/constraints.txt" "${DEPS[@]}"

TORCH_AFTER="$("$PY" -c 'import torch; print(torch.__version__)')"
if [ "$TORCH_AFTER" != "$TORCH_BEFORE" ]; then
    echo "install_particleflow: torch changed from $TORCH_BEFORE to $TORCH_AFTER; reinstall torch==$TORCH_BEFORE" >&2
    exit 1
fi
"$PY" -c "$check" || {
    echo "install_particleflow: installed, but '$check' fails" >&2
    exit 1
}
echo "install_particleflow: particleflow $PF_VERSION installed (torch $TORCH_AFTER kept)"
