#!/usr/bin/env bash
# Build and install Horovod 0.28.1 (PyTorch + MPI, no Gloo) into the Python environment given as $1.
#
# Recipe: docs/platform.md 3.2. Plain `pip install horovod` fails against torch >= 2.x because
# (1) the sdist has no pyproject.toml, so pip's isolated build cannot see torch, and
# (2) horovod/torch/CMakeLists.txt pins C++14 while torch's headers need C++17.
# So: download the PyPI sdist, patch the C++ standard, build with --no-build-isolation, MPI only
# (a Gloo build fails to link once patched). The built wheel is cached outside the repository,
# keyed by the torch and mpich versions, so a second install takes seconds.
#
# Usage: bash jobs/install_horovod.sh [PYTHON]   (default: python3)
# Idempotent: exits 0 at once when `import horovod.torch` already works.
set -euo pipefail

PY="${1:-python3}"
HVD_VERSION="0.28.1"

if ! command -v "$PY" >/dev/null 2>&1 && [ ! -x "$PY" ]; then
    echo "install_horovod: python interpreter '$PY' not found" >&2
    exit 2
fi

if "$PY" -c "import horovod.torch" >/dev/null 2>&1; then
    echo "install_horovod: horovod.torch already importable with $PY; nothing to do"
    exit 0
fi

# The venv's bin/ first: CMake's FindMPI must pick the same MPI (mpich wheel) that mpi4py uses,
# or hvd.init(comm=...) breaks.
PY_ABS="$(command -v "$PY" || echo "$PY")"
BIN_DIR="$(cd "$(dirname "$PY_ABS")" && pwd)"
export PATH="$BIN_DIR:$PATH"

TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)" || {
    echo "install_horovod: torch is not importable with $PY; install torch first" >&2
    exit 2
}
MPICH_VERSION="$("$PY" -c 'import importlib.metadata as m; print(m.version("mpich"))' 2>/dev/null || echo "system-mpi")"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
CACHE_ROOT="${HPOQ_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpoq/wheels}"
CACHE_DIR="$CACHE_ROOT/horovod-$HVD_VERSION-$PY_TAG-torch-${TORCH_VERSION//+/_}-mpich-$MPICH_VERSION"

"$PY" -m pip install -q packaging psutil pyyaml cloudpickle cffi

wheel="$(ls "$CACHE_DIR"/horovod-*.whl 2>/dev/null | head -n 1 || true)"
if [ -z "$wheel" ]; then
    if ! command -v mpicc >/dev/null 2>&1; then
        echo "install_horovod: no mpicc on PATH (install the mpich wheel or a site MPI)" >&2
        exit 2
    fi
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "install_horovod: building Horovod $HVD_VERSION against torch $TORCH_VERSION, mpich $MPICH_VERSION (about 2 min)"
    "$PY" -m pip download -q --no-deps --no-binary :all: "horovod==$HVD_VERSION" -d "$work"
    tar xzf "$work/horovod-$HVD_VERSION.tar.gz" -C "$work"
    src="$work/horovod-$HVD_VERSION"
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$src/horovod/torch/CMakeLists.txt"
    grep -q 'set(CMAKE_CXX_STANDARD 17)' "$src/horovod/torch/CMakeLists.txt" || {
        echo "install_horovod: C++17 patch did not apply to horovod/torch/CMakeLists.txt" >&2
        exit 1
    }
    mkdir -p "$work/wheel"
    HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_GLOO=1 \
    HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
    MAKEFLAGS="${MAKEFLAGS:--j2}" \
        "$PY" -m pip wheel -q --no-build-isolation --no-deps "$src" -w "$work/wheel"
    mkdir -p "$CACHE_DIR"
    cp "$work"/wheel/horovod-*.whl "$CACHE_DIR"/
    wheel="$(ls "$CACHE_DIR"/horovod-*.whl | head -n 1)"
    echo "install_horovod: cached wheel $wheel"
else
    echo "install_horovod: using cached wheel $wheel"
fi

"$PY" -m pip install -q --no-deps "$wheel"
"$PY" -c "import horovod.torch" || {
    echo "install_horovod: installed, but 'import horovod.torch' fails" >&2
    exit 1
}
echo "install_horovod: Horovod $HVD_VERSION installed. Check the build with:"
echo "    PATH=$BIN_DIR:\$PATH $BIN_DIR/horovodrun --check-build   # expect [X] PyTorch and [X] MPI"
