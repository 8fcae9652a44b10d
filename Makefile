# The two commands: `make run` (set up and run the platform) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test test-slow lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and exactly: any other spec pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# openvino's wheel pulls in openvino-telemetry (usage reports): never kept
	$(BIN)/python -m pip uninstall -q -y openvino-telemetry
	rm -f $(VENV)/.installed-*
	touch $@

run: setup
	$(BIN)/modelport dev

test: setup
	# headless Chromium for the dashboard's browser tests (Debian's package; skipped, with
	# the reason, when not root)
	bash .ci/install-browser
	$(BIN)/python -m pytest -m "not slow" -q -p no:cacheprovider

test-slow: setup
	$(BIN)/python -m pytest -m slow -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# every script under bench/, then one table (figure, value, baseline, ratio, target); gpu_smoke.py
# shows as "not run" where no NVIDIA GPU exists. BENCH_ARGS=--quick: smaller runs, for checking.
bench: setup
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
