# Every target bootstraps .venv from the machine's python3 when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck format bench lock clean

$(STAMP): pyproject.toml constraints.txt setup.py src/audience_sync/identifiers/_digest.c \
		src/audience_sync/sources/_columns.c src/audience_sync/_arrow.h \
		src/audience_sync/dashboard/vendor.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m audience_sync.dashboard.vendor
	@touch $(STAMP)

## make run — the main job: the demo story (migrate, import the demo data set, sync it to the four
## platform sandboxes, print the jobs and segments), then the API and the dashboard on the demo
## data at http://127.0.0.1:8000 until Ctrl-C (it prints a key to sign in with).
run: $(STAMP)
	$(BIN)/audience-sync demo
	$(BIN)/audience-sync serve --demo

## make test — lint, type-check and the whole test suite (the browser tests need Chromium:
## Debian's `chromium` package; .ci/run installs it).
test: lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

## make lock — re-pin constraints.txt to the newest versions pyproject.toml allows.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^audience-sync' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
