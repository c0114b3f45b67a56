# Two commands matter: `make run` starts the bot, `make test` runs the whole suite.
# Both create or refresh the virtual environment in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

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
	$(BIN)/ruff check bot tests bench
	$(BIN)/python -m pytest -q -ra

faults: $(STAMP)
	$(BIN)/python -m pytest -q -m faults -s tests/

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.prompt_tokens
	$(BIN)/python -m bench.watch_latency

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
