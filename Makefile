# ecgmon: `make demo` runs the main job on the embedded stack, `make test` runs every test.
# Both set themselves up on a fresh machine (apt for influxd and chromium, pip into .venv).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
TORCH := torch==2.13.0

.PHONY: setup test lint demo up down clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v influxd >/dev/null 2>&1 || { \
	  echo "Installing influxd (Debian package influxdb)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq influxdb; }
	@$(SUDO) systemctl disable --now influxdb >/dev/null 2>&1 || true
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium (Debian packages chromium, chromium-driver) for the console's browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

test: setup
	$(BIN)/python -m pytest -q --durations=15

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy ecgmon streams models simulators dashboards tools
	$(BIN)/lint-imports

demo: setup
	$(BIN)/ecgmon demo

up: setup
	$(BIN)/ecgmon up

down: setup
	$(BIN)/ecgmon down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
