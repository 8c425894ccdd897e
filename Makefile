# Each target sets up what it needs in .venv on a machine that has only Python 3.11 and pip.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
NORSE := norse==1.1.0
# tonic (for importing tonic-format data) with --no-deps: see docs/own-data.md
TONIC := tonic==1.7.0 importRosbag==1.0.4

.PHONY: bench test setup clean gpu-check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[norse,jax,tune,cluster,tensorboard,mlflow,fast,test]'
	$(PY) -m pip install --quiet --no-deps $(NORSE) $(TONIC)
	touch $@

setup: $(VENV)/.installed

## The default benchmark: EventProp on the embedded synthetic set
bench: setup
	$(PY) -m bench run --method eventprop

## The test suite (what CI runs)
test: setup
	$(PY) -m pytest -q --durations=15

## On a machine with a CUDA build of torch 2.13.0 (and jax with CUDA for spyx): every torch and JAX
## method for one epoch on the GPU, the CPU-vs-GPU tests, and EventProp against BPTT over T, into
## reports/gpu-check/ (report.md lists what ran). Nothing here has run on a GPU yet.
GPU_OUT := reports/gpu-check
gpu-check: setup
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: torch sees no GPU (a CPU build, or no driver); install the CUDA build of torch 2.13.0')"
	mkdir -p $(GPU_OUT)
	$(PY) -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee $(GPU_OUT)/tests.txt
	$(PY) -m bench suite --methods $$($(PY) -c "import sys; sys.path.insert(0, 'tests'); from test_gpu import gpu_methods; print(','.join(gpu_methods()))") \
	  --device cuda --epochs 1 --seeds 0 --out $(GPU_OUT)/runs
	$(PY) -m bench scale --methods eventprop,bptt-snntorch,bptt-spyx --steps 200,1000,2000 \
	  --device cuda --out $(GPU_OUT)/scale
	$(PY) -m bench report --runs $(GPU_OUT)/runs --out $(GPU_OUT)/report
	@echo "gpu-check: $(GPU_OUT)/tests.txt, $(GPU_OUT)/report/report.md and the scale table above"

clean:
	rm -rf $(VENV) reports/runs reports/checkpoints
