# Each target sets up what it needs in .venv on a machine that has only Python 3.11 and pip.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
NORSE := norse==1.1.0

.PHONY: bench test setup clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[norse,jax,tune,test]'
	$(PY) -m pip install --quiet --no-deps $(NORSE)
	touch $@

setup: $(VENV)/.installed

## The default benchmark: EventProp on the embedded synthetic set
bench: setup
	$(PY) -m bench run --method eventprop

## The test suite (what CI runs)
test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) reports/runs reports/checkpoints
