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

.PHONY: install test experiment bench results clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q -n 2 tests

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
