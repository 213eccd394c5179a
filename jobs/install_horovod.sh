#!/usr/bin/env bash
# Build and install Horovod 0.28.1 (PyTorch + MPI, no Gloo; + CUDA/NCCL where possible) into the Python
# environment given as $1.
#
# CUDA: when torch was built with CUDA (torch.version.cuda) and a CUDA toolkit is found (nvcc on PATH,
# or $CUDA_HOME/bin/nvcc), Horovod is built with HOROVOD_GPU_OPERATIONS=NCCL against the NCCL of
# $HOROVOD_NCCL_HOME, else the nvidia-nccl wheel that CUDA torch brings; `horovodrun --check-build`
# then ticks NCCL, and `hvd.nccl_built()` is checked after the install. Otherwise the build is CPU-only
# and says why; hpoq's `backend: auto` never gives CUDA tensors to such a build (it trains over
# torch.distributed + NCCL instead). HPOQ_HOROVOD_CUDA=0 forces the CPU build, =1 fails without CUDA.
# HPOQ_HOROVOD_PLAN=1 prints the plan (CPU or CUDA build, and why) and exits.
#
# Recipe: docs/platform.md 3.2. Plain `pip install horovod` fails against torch >= 2.x because
# (1) the sdist has no pyproject.toml, so pip's isolated build cannot see torch, and
# (2) horovod/torch/CMakeLists.txt pins C++14 while torch's headers need C++17.
# So: download the PyPI sdist, patch the C++ standard, build with --no-build-isolation, MPI only
# (a Gloo build fails to link once patched). The built wheel is cached outside the repository,
# keyed by the torch and mpich versions, so a second install takes seconds.
#
# Usage: bash jobs/install_horovod.sh [PYTHON]   (default: python3)
# Idempotent: exits 0 when `import horovod.torch` already works (and has NCCL where a CUDA build is planned;
# a CPU-only Horovod is rebuilt once CUDA torch and a toolkit are there).
set -euo pipefail

PY="${1:-python3}"
HVD_VERSION="0.28.1"

if ! command -v "$PY" >/dev/null 2>&1 && [ ! -x "$PY" ]; then
    echo "install_horovod: python interpreter '$PY' not found" >&2
    exit 2
fi

# The venv's bin/ first: CMake's FindMPI must pick the same MPI (mpich wheel) that mpi4py uses,
# or hvd.init(comm=...) breaks.
PY_ABS="$(command -v "$PY" || echo "$PY")"
BIN_DIR="$(cd "$(dirname "$PY_ABS")" && pwd)"
export PATH="$BIN_DIR:$PATH"

TORCH_INFO="$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "")' 2>/dev/null)" || {
    echo "install_horovod: torch is not importable with $PY; install torch first" >&2
    exit 2
}
# CUDA build? torch with CUDA, and a toolkit (nvcc) to compile Horovod's CUDA kernels
read -r TORCH_VERSION TORCH_CUDA <<<"$TORCH_INFO"
NVCC="$(command -v nvcc 2>/dev/null || true)"
[ -z "$NVCC" ] && [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ] && NVCC="$CUDA_HOME/bin/nvcc"
WANT_CUDA="${HPOQ_HOROVOD_CUDA:-auto}"
if [ "$WANT_CUDA" = 0 ]; then
    GPU_BUILD="" WHY="HPOQ_HOROVOD_CUDA=0"
elif [ -z "$TORCH_CUDA" ]; then
    GPU_BUILD="" WHY="torch $TORCH_VERSION has no CUDA"
elif [ -z "$NVCC" ]; then
    GPU_BUILD="" WHY="torch has CUDA $TORCH_CUDA but no CUDA toolkit was found (no nvcc on PATH or in \$CUDA_HOME/bin)"
else
    GPU_BUILD=nccl WHY="torch CUDA $TORCH_CUDA, toolkit $(dirname "$(dirname "$NVCC")")"
fi
if [ -n "$GPU_BUILD" ]; then
    echo "install_horovod: plan: CUDA build with NCCL ($WHY)"
else
    echo "install_horovod: plan: CPU-only build ($WHY)"
fi
if [ "$WANT_CUDA" = 1 ] && [ -z "$GPU_BUILD" ]; then
    echo "install_horovod: HPOQ_HOROVOD_CUDA=1 but no CUDA build is possible: $WHY" >&2
    exit 2
fi
[ "${HPOQ_HOROVOD_PLAN:-0}" = 1 ] && exit 0

if "$PY" -c "import horovod.torch as h, sys; sys.exit(0 if h.nccl_built() or not '$GPU_BUILD' else 1)" >/dev/null 2>&1; then
    echo "install_horovod: horovod.torch already importable with $PY${GPU_BUILD:+ (with NCCL)}; nothing to do"
    exit 0
fi

MPICH_VERSION="$("$PY" -c 'import importlib.metadata as m; print(m.version("mpich"))' 2>/dev/null || echo "system-mpi")"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
CACHE_ROOT="${HPOQ_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpoq/wheels}"
CACHE_DIR="$CACHE_ROOT/horovod-$HVD_VERSION-$PY_TAG-torch-${TORCH_VERSION//+/_}-mpich-$MPICH_VERSION${GPU_BUILD:+-$GPU_BUILD}"

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
    GPU_ENV=()
    if [ -n "$GPU_BUILD" ]; then
        nccl_home="${HOROVOD_NCCL_HOME:-}"
        if [ -z "$nccl_home" ]; then  # the nvidia-nccl wheel: headers and libnccl.so.2, no unversioned link
            nccl_pkg="$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__) if nvidia.nccl.__file__ else list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)"
            [ -n "$nccl_pkg" ] && [ -f "$nccl_pkg/include/nccl.h" ] || {
                echo "install_horovod: CUDA build, but no NCCL found: set HOROVOD_NCCL_HOME (a site NCCL module)" >&2
                exit 2
            }
            nccl_home="$work/nccl"
            mkdir -p "$nccl_home/lib"
            ln -s "$nccl_pkg/include" "$nccl_home/include"
            for lib in "$nccl_pkg"/lib/libnccl.so*; do ln -s "$lib" "$nccl_home/lib/"; done
            [ -e "$nccl_home/lib/libnccl.so" ] || ln -s "$nccl_pkg/lib/libnccl.so.2" "$nccl_home/lib/libnccl.so"
        fi
        GPU_ENV=(HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_NCCL_LINK=SHARED "HOROVOD_NCCL_HOME=$nccl_home"
                 "HOROVOD_CUDA_HOME=$(dirname "$(dirname "$NVCC")")")
    fi
    env "${GPU_ENV[@]}" HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_GLOO=1 \
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
if [ -n "$GPU_BUILD" ]; then
    "$PY" -c "import horovod.torch as h, sys; sys.exit(0 if h.nccl_built() else 1)" || {
        echo "install_horovod: the CUDA build's horovod.torch reports nccl_built() = 0" >&2
        exit 1
    }
    expect="[X] PyTorch, [X] MPI and, under Available Tensor Operations, [X] NCCL"
else
    expect="[X] PyTorch and [X] MPI; no NCCL: a CPU-only build ($WHY), which hpoq uses on CPUs only"
fi
echo "install_horovod: Horovod $HVD_VERSION installed. Check the build with:"
echo "    PATH=$BIN_DIR:\$PATH $BIN_DIR/horovodrun --check-build   # expect $expect"
