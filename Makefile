# Targets match the README. `make run` and `make test` do all set-up themselves.
.PHONY: setup run test test-fast lint bench clean hub lock catalog

setup:
	bash scripts/bootstrap.sh

run: setup
	bash scripts/run_job.sh

test: setup
	bash scripts/test.sh

# The inner loop (about 2 minutes): lint, then the tap's and the simulator's tests without the
# end-to-end suites (pytest marker e2e: Meltano, dbt, BigQuery emulators).
test-fast: setup
	bash scripts/lint.sh
	.venv/bin/pytest -q -m "not e2e"

lint: setup
	bash scripts/lint.sh

bench: setup
	.venv/bin/python bench/run.py
	.venv/bin/python bench/rate.py --bare
	.venv/bin/python bench/loaders.py
	.venv/bin/python bench/job.py

# The catalog Meltano hands the tap (extract/README.md), after changing `select` or the streams.
catalog: setup
	.venv/bin/python scripts/tap_catalog.py

# Every lock file (root .venv, each Meltano plugin, the BigQuery test harness) from its inputs,
# with uv pip compile (needs PyPI). UPGRADE=1 takes the newest versions instead of the locked.
lock:
	.venv/bin/python scripts/lock.py $(if $(UPGRADE),--upgrade)

# The Meltano Hub definition, from `tap-dome --about` (see RELEASING.md).
hub: setup
	.venv/bin/python scripts/hub_definition.py

clean:
	rm -rf .venv .meltano output
