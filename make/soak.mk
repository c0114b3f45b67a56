# The watcher soak (issue 25): a real Prefect server, real process workers, at least 10 minutes of
# healthy churn, kill -9, a server restart, busy and flapping limits; prints the table. Also the what-if
# kinds after Approve that the suite leaves out (queue, tag raise, a blocked concurrency() acquirer).
# Also the recipe claims that need long waits (soak-marked in tests/test_recipe_claims.py): a 60 s lease
# expiring, the scheduler's loops and a run going Late, process workers and served flows.
# SOAK_MINUTES=0 runs one watcher cycle (about 3 minutes) instead of 10 minutes of cycles.
.PHONY: soak

SOAK_MINUTES ?= 10

soak: $(STAMP)
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m pytest -q -s -p no:xdist -m soak tests/test_watch_soak.py tests/test_watch_whatif_after_approve.py tests/test_recipe_claims.py
