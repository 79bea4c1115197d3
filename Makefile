# glimpse_jax: every target depends on `install`, so a fresh clone needs only `make <target>`.
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

.PHONY: install test test-all experiment bench results clean

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

# The results book (results/README.md and a page per experiment) from the committed runs.
results: install
	$(PY) results_book.py

# Large arrays on 2 MiB pages (glibc's transparent-huge-page switch; NumPy does this for its own).
bench: install
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
