# xatl set-up. `make test` and `make demo` do everything on a fresh machine.
#   make test                          # venv + pinned CPU torch + xatl + pytest
#   make test TORCH=torch==2.5.1       # another torch build (e.g. a CUDA machine)
#   make test EXTRAS=dev,lm-eval       # without the CPU Triton interpreter (a CUDA torch brings its own triton)
#   make demo                          # the main job on its embedded default recipe
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,lm-eval,fla-interpreter
PY     := $(VENV)/bin/python
comma  := ,
STAMP  := $(VENV)/.xatl-installed-$(subst /,_,$(subst =,_,$(TORCH)))-$(subst $(comma),_,$(EXTRAS))
PYTEST_ARGS ?=

.PHONY: install test demo lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.xatl-installed-*
	touch $@

install: $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/xatl run

lint: install
	$(PY) -m ruff check src tests benchmarks

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
