# The watcher soak (issue 25): a real Prefect server, real process workers, at least 10 minutes of
# healthy churn, kill -9, a server restart, busy and flapping limits; prints the table.
.PHONY: soak

soak: $(STAMP)
	$(BIN)/python -m pytest -q -s -p no:xdist -m soak tests/test_watch_soak.py
