# `make compat`: every Prefect 3 minor at its latest patch, the pinned release and Prefect 2, each
# started from its own virtual environment (built once into ~/.cache/concurrency-bot, with the
# dependency holds in compat/constraints/), the same checks on each through the bot's own CLI.
# Prints the version x capability table and writes bench/results/compat.md (compat/run.py).
# `make compat-venvs` only builds the environments. The short version is in `make test`
# (tests/test_prefect_versions.py: 3.0.11, 3.4.25 and 2.20.16 beside the pinned release).
.PHONY: compat compat-venvs

compat: $(STAMP)
	$(BIN)/python -m compat.run

compat-venvs: $(STAMP)
	$(BIN)/python -m compat.venvs
