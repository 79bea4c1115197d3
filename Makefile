# glimpse_jax: every target depends on `install` (test-latest builds its own venv), so a fresh
# clone needs only `make <target>`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NAME ?= ram
CONFIG ?=
WORKDIR ?= runs/$(NAME)-$(if $(CONFIG),$(CONFIG),default)
ARGS ?=
PHASE ?=
# SEEDS=N runs seeds 0..N-1, each in its own workdir $(WORKDIR)-seed<s> (--config.seed=<s>).
SEEDS ?=
# Folder of IDX files (<dir>/mnist, <dir>/fashion_mnist); a `data` folder beside the checkout is
# used when present, otherwise the library's own default (with checksum-verified download).
GLIMPSE_DATA_DIR ?= $(if $(wildcard ../shared/data/mnist),$(abspath ../shared/data),)
export GLIMPSE_DATA_DIR

.PHONY: install test test-all test-latest experiment bench-methods bench results clean

install: $(VENV)/.installed

# constraints.txt pins the versions CI tests with; setup.cfg holds only lower bounds.
$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

# `make test`: the fast tier (unit tests and a few steps of each experiment's smoke config, a few
# minutes on 2 cores). `make test-all`: every test, adding the slow tier (learning checks,
# notebooks, multi-process runs; see tests/conftest.py). PYTEST_ARGS adds pytest options.
PYTEST_ARGS ?=
test: install
	$(PY) -m pytest -q -n 2 -m 'not slow' $(PYTEST_ARGS) tests

test-all: install
	$(PY) -m pytest -q -n 2 $(PYTEST_ARGS) tests

# `make test-latest`: the package against the newest releases setup.cfg's lower bounds allow (no
# constraints file), in its own venv upgraded on every run: the versions it got, a few test
# modules, a short smoke training with the installed command and a prediction from its workdir.
# The newest jax and flax need Python >= 3.12: PYTHON_LATEST (default: the newest python3.1x
# that runs, else PYTHON) makes the venv; `make clean` removes it to change interpreter.
VENV_LATEST := .venv-latest
PY_LATEST := $(VENV_LATEST)/bin/python
PYTHON_LATEST ?= $(firstword $(foreach p,python3.14 python3.13 python3.12,$(shell $(p) -c '' 2>/dev/null && echo $(p))) $(PYTHON))
LATEST_TESTS ?= tests/test_ram.py tests/test_policy_routing.py tests/test_glimpse.py \
  tests/test_install.py tests/test_predict.py
test-latest:
	test -x $(PY_LATEST) || $(PYTHON_LATEST) -m venv $(VENV_LATEST)
	$(PY_LATEST) -m pip install -q --upgrade pip
	$(PY_LATEST) -m pip install -q --upgrade --upgrade-strategy eager -e '.[test]'
	$(PY_LATEST) -c 'import sys; from importlib.metadata import version; print("python", sys.version.split()[0], *(f"{p} {version(p)}" for p in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "numpy")), sep=", ")'
	GLIMPSE_FAST_TEST_SECONDS=0 $(PY_LATEST) -m pytest -q -n 2 -m 'not slow' $(PYTEST_ARGS) $(LATEST_TESTS)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" && \
	  $(abspath $(VENV_LATEST))/bin/glimpse-jax --config=ram:smoke --workdir=run --config.num_steps=20 \
	    --config.dataset.eval_examples=64 && \
	  $(abspath $(PY_LATEST)) -c 'import numpy as np, glimpse_jax; \
	    out = glimpse_jax.predict(glimpse_jax.load_run("run"), np.random.default_rng(0).random((4, 28, 28, 1), np.float32)); \
	    p = out["probabilities"]; assert p.shape == (4, 10) and np.allclose(p.sum(-1), 1, atol=1e-4), p; \
	    assert out["locations"].shape[0] == 4 and np.isfinite(out["locations"]).all(); \
	    print("predict:", {k: v.shape for k, v in out.items()})'

# main.py is the installed `glimpse-jax` command; an unknown NAME stops here, before any install.
EXPERIMENTS := $(sort $(basename $(notdir $(filter-out experiments/__init__.py,$(wildcard experiments/*.py)))))
ifneq ($(filter experiment,$(MAKECMDGOALS)),)
ifeq ($(filter $(NAME),$(EXPERIMENTS)),)
$(error unknown experiment NAME=$(NAME); experiments: $(EXPERIMENTS))
endif
endif
RUN = $(PY) main.py --config=experiments/$(NAME).py$(if $(CONFIG),:$(CONFIG),) $(if $(PHASE),--phase=$(PHASE),)

experiment: install
ifeq ($(SEEDS),)
	$(RUN) --workdir=$(WORKDIR) $(ARGS)
else
	@case '$(SEEDS)' in ''|*[!0-9]*|0) echo "SEEDS must be a whole number >= 1, got '$(SEEDS)'" >&2; exit 2;; esac
	@case '$(ARGS)' in *--config.seed=*) echo "SEEDS=$(SEEDS) sets --config.seed per run: leave it out of ARGS ('$(ARGS)')" >&2; exit 2;; esac
	set -e; for seed in $$(seq 0 $$(($(SEEDS) - 1))); do \
	  $(RUN) --workdir=$(WORKDIR)-seed$$seed --config.seed=$$seed $(ARGS); done
endif

# `make bench-methods TASK=<task>[_smoke|_paper]`: every method of the cross-method benchmark
# (src/glimpse_jax/glimpse_bench.py) on one task, each run in <workdir>/<method>-g<T>-seed<s>;
# a restart skips the finished runs. WORKDIR (default runs/glimpse_bench-<TASK>), PHASE (one run)
# and ARGS as for `experiment`.
TASK ?= cluttered60_smoke
BENCH_WORKDIR = $(if $(filter command line environment,$(origin WORKDIR)),$(WORKDIR),runs/glimpse_bench-$(TASK))
bench-methods: install
	$(PY) main.py --config=src/glimpse_jax/glimpse_bench.py:$(TASK) --workdir=$(BENCH_WORKDIR) $(if $(PHASE),--phase=$(PHASE),) $(ARGS)

# The results book (results/README.md and a page per experiment) from the committed runs.
results: install
	$(PY) -m glimpse_jax.reports.book

# Large arrays on 2 MiB pages (glibc's transparent-huge-page switch; NumPy does this for its own).
bench: install
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(VENV_LATEST) runs build *.egg-info src/*.egg-info
