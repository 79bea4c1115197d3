# glimpse_jax: every target depends on `install`, so a fresh clone needs only `make <target>`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NAME ?= ram
CONFIG ?=
WORKDIR ?= runs/$(NAME)-$(if $(CONFIG),$(CONFIG),default)
ARGS ?=
PHASE ?=
# Folder of IDX files (<dir>/mnist, <dir>/fashion_mnist); a `data` folder beside the checkout is
# used when present, otherwise the library's own default (with checksum-verified download).
GLIMPSE_DATA_DIR ?= $(if $(wildcard ../shared/data/mnist),$(abspath ../shared/data),)
export GLIMPSE_DATA_DIR

.PHONY: install test experiment bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: install
	$(PY) -m pytest -q -n 2 tests

experiment: install
	$(PY) main.py --config=experiments/$(NAME).py$(if $(CONFIG),:$(CONFIG),) --workdir=$(WORKDIR) $(if $(PHASE),--phase=$(PHASE),) $(ARGS)

# Large arrays on 2 MiB pages (glibc's transparent-huge-page switch; NumPy does this for its own).
bench: install
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
