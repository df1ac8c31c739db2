# xatl set-up. `make test` and `make demo` do everything on a fresh machine.
#   make test                          # venv + pinned CPU torch + xatl + pytest
#   make test TORCH=torch==2.5.1       # another torch build (e.g. a CUDA machine)
#   make test EXTRAS=dev,lm-eval       # without the CPU Triton interpreter (a CUDA torch brings its own triton)
#   make lock                          # re-resolve pyproject's ranges in a fresh venv into requirements/lock.txt
#   make test LOCK=                    # install from pyproject's ranges alone (an untested set; e.g. another Python)
#   make demo                          # the main job on its embedded default recipe
#   make bench-gpu                     # on a CUDA machine, with its own torch (no venv): benchmarks/results/gpu.json
#   make test-gpu                      # on a CUDA machine: the cuda-marked tests (fla parity on the GPU)
#   make test-isa                      # the numeric tests under every CPU kernel set here (CI runs it after make test)
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,lm-eval,fla-interpreter
LOCK   ?= requirements/lock.txt
PY     := $(VENV)/bin/python
comma  := ,
STAMP  := $(VENV)/.xatl-installed-$(subst /,_,$(subst =,_,$(TORCH)))-$(subst $(comma),_,$(EXTRAS))
# every install goes through the lock (pip constraints): the versions CI tested, not whatever is newest today
CONSTRAIN := $(if $(LOCK),-c $(LOCK))
PYTEST_ARGS ?=

.PHONY: install test test-isa demo lint lock bench bench-gpu test-gpu gpu-site clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet $(CONSTRAIN) -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.xatl-installed-*
	touch $@

install: $(STAMP)

# XATL_LOCK: tests/test_lock.py then checks that every installed version is the lock's (a drift fails loudly)
test: install
	XATL_LOCK=$(LOCK) $(PY) -m pytest $(PYTEST_ARGS)

# the numeric tests under ATEN_CPU_CAPABILITY=default/avx2/avx512 (those the CPU has) and at 2 threads: a threshold
# that sits between two machines' rounding fails here, not on a user's machine (tests/kernel_sets.py)
test-isa: install
	$(PY) tests/kernel_sets.py

# a fresh venv resolves pyproject's ranges (the newest releases they admit); then `make test` and commit the lock
LOCK_VENV ?= .venv-lock
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet "$(TORCH)"
	$(LOCK_VENV)/bin/python -m pip install --quiet ".[$(EXTRAS)]"
	{ sed -n '1,3p' requirements/lock.txt; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|xatl)=='; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt && rm -rf $(LOCK_VENV)

demo: install
	$(VENV)/bin/xatl run

lint: install
	$(PY) -m ruff check src tests benchmarks

bench: install
	$(PY) benchmarks/run_all.py

# The GPU benchmark (issue 14) uses the machine's own python3, torch and triton; packages that machine lacks
# (fla) are wheels in .whl/ (benchmarks/gpu_wheels.sh), installed into a private folder first.
GPU_SITE ?= /tmp/xatl-gpu-site
GPU_ENV  = PYTHONUNBUFFERED=1 PYTHONPATH=src:$(GPU_SITE)$${PYTHONPATH:+:$$PYTHONPATH}
gpu-site:
	@if [ -d .whl ]; then $(PYTHON) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
		--target $(GPU_SITE) .whl/*.whl; fi

bench-gpu: gpu-site
	$(GPU_ENV) $(PYTHON) benchmarks/gpu.py $(BENCH_GPU_ARGS)

# the CUDA-marked tests (fla parity on the GPU), on the same machine and packages
test-gpu: gpu-site
	$(GPU_ENV) $(PYTHON) -m pytest -m cuda -q -p no:cacheprovider tests/ops

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
