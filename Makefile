# Two commands matter: `make run` starts the bot, `make test` runs the whole suite.
# Both create or refresh the virtual environment in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make test` spreads the suite over pytest-xdist workers, each with its own Prefect server, fake Slack
# and model server (tests/conftest.py); one test module is one unit of work; tests/schedule.py hands
# out the slowest modules first, and xdist keeps that order (--no-loadscope-reorder).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: run test faults bench lint venv

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/concurrency-bot start

test: $(STAMP)
	$(BIN)/ruff check bot tests bench compat
	$(BIN)/python -m pytest $(XDIST) -q -ra --durations=15

faults: $(STAMP)
	HYPOTHESIS_PROFILE=faults $(BIN)/python -m pytest -q -m faults -s tests/

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.prompt_tokens
	$(BIN)/python -m bench.watch_latency
	$(BIN)/python -m bench.watch_calls

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench compat

# Long runs have targets of their own, one file each under make/ (make/soak.mk: `make soak`,
# make/compat.mk: `make compat`). Their tests carry the marker of the same name (registered in
# pyproject.toml); tests/schedule.py leaves them out of every run whose -m does not name the marker,
# so `make test` stays the normal suite. Such a target runs e.g. `pytest -m soak`.
-include make/*.mk
