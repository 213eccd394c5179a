# hpoq: `make run` runs the default study, `make test` runs the test suite, `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hpoq-installed
export OMP_NUM_THREADS ?= 1
export MPIR_CVAR_ENABLE_HEAVY_YIELD ?= 1
# the venv's bin/ first, so mpiexec is the one of the mpich wheel that mpi4py was built for
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install horovod particleflow test run bench peers peers-venvs clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: a bare torch requirement pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[mpi,dwave,mlpf,test,bench]"
	touch $(STAMP)

horovod: $(STAMP)
	@$(PY) -c "import horovod.torch as h, torch, sys; sys.exit(0 if h.nccl_built() or not torch.version.cuda else 1)" 2>/dev/null \
		|| bash jobs/install_horovod.sh $(PY) || echo "hpoq: Horovod build failed; Horovod tests will be skipped"

# upstream MLPF for `model: particleflow` (--no-deps recipe; never replaces torch); tests skip without it
particleflow: $(STAMP)
	@$(PY) -c "import mlpf.model.mlpf, mlpf.heptfds.edm4hep_utils.utils_pf" 2>/dev/null || bash jobs/install_particleflow.sh $(PY) || echo "hpoq: particleflow install failed; particleflow tests will be skipped"

test: $(STAMP) horovod particleflow
	$(PY) -m ruff check hpoq tests benchmarks docs
	$(PY) -m ruff format --check hpoq tests benchmarks docs
	$(PY) -m pytest -q -ra tests

run: $(STAMP)
	bash jobs/run_default.sh

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(PY) benchmarks/predictors.py --out benchmarks/results/predictors
	$(PY) benchmarks/qsvr_quality.py > benchmarks/results/qsvr_quality.md && cat benchmarks/results/qsvr_quality.md
	$(PY) benchmarks/mlpf_error_budget.py > benchmarks/results/mlpf_error_budget.md && cat benchmarks/results/mlpf_error_budget.md
	$(PY) benchmarks/hpo_replay.py --out benchmarks/results --seeds 0-19 --name hpo_replay_seeds0-19
	$(PY) benchmarks/hpo_replay.py --out benchmarks/results --seeds 20-59 --name hpo_replay_seeds20-59
	$(PY) benchmarks/swift_reproduction.py --out benchmarks/results
	$(PY) benchmarks/runtime.py --out benchmarks/results
	$(PY) benchmarks/mlpf.py --jobs 2 --out benchmarks/results

# The model-based peers (benchmarks/peers_model.py), each in its own venv under benchmarks/.venvs (their pins
# conflict with hpoq's and with each other); never part of `make test`. `make peers` builds the venvs, reruns
# every cell in benchmarks/results/peers_model_runs with its own seeds and writes benchmarks/results/peers_model*;
# `make peers PEERS_RUN="--seeds 0-19 --workers 1,50"` runs (or completes) the whole grid first (many CPU-hours).
PEERS_RUN ?= --rerun
PEERS_VENVS := benchmarks/.venvs
PEERS_PIP := pip install -q
peers-venvs:
	test -f $(PEERS_VENVS)/syne-tune-0.13/.installed || ( $(PYTHON) -m venv $(PEERS_VENVS)/syne-tune-0.13 && \
	  $(PEERS_VENVS)/syne-tune-0.13/bin/$(PEERS_PIP) "syne-tune[gpsearchers,kde]==0.13.0" "numpy<1.27" pandas scikit-learn && \
	  touch $(PEERS_VENVS)/syne-tune-0.13/.installed )
	test -f $(PEERS_VENVS)/syne-tune-0.16/.installed || ( $(PYTHON) -m venv $(PEERS_VENVS)/syne-tune-0.16 && \
	  $(PEERS_VENVS)/syne-tune-0.16/bin/$(PEERS_PIP) "syne-tune[kde]==0.16.0" huggingface_hub pandas scikit-learn && \
	  touch $(PEERS_VENVS)/syne-tune-0.16/.installed )
	# NePS needs torch: the pinned CPU build first, as for hpoq
	test -f $(PEERS_VENVS)/neps/.installed || ( $(PYTHON) -m venv $(PEERS_VENVS)/neps && \
	  $(PEERS_VENVS)/neps/bin/$(PEERS_PIP) torch==2.13.0 && \
	  $(PEERS_VENVS)/neps/bin/$(PEERS_PIP) "neural-pipeline-search==0.17.0" && touch $(PEERS_VENVS)/neps/.installed )
	test -f $(PEERS_VENVS)/dehb/.installed || ( $(PYTHON) -m venv $(PEERS_VENVS)/dehb && \
	  $(PEERS_VENVS)/dehb/bin/$(PEERS_PIP) "dehb==0.1.2" && touch $(PEERS_VENVS)/dehb/.installed )

peers: $(STAMP) peers-venvs
	$(PY) benchmarks/peers_model.py run $(PEERS_RUN)
	$(PY) benchmarks/peers_model.py report

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
