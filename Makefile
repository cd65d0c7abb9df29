# Targets match the README. `make run` and `make test` do all set-up themselves.
.PHONY: setup run test lint bench clean hub lock

setup:
	bash scripts/bootstrap.sh

run: setup
	bash scripts/run_job.sh

test: setup
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check tap-dome tests bench plugins scripts
	.venv/bin/ruff format --check tap-dome tests bench plugins scripts
	cd tap-dome && ../.venv/bin/mypy tap_dome ../scripts ../tests/release

bench: setup
	.venv/bin/python bench/run.py

# Every lock file (root .venv, each Meltano plugin, the BigQuery test harness) from its inputs,
# with uv pip compile (needs PyPI). UPGRADE=1 takes the newest versions instead of the locked.
lock:
	.venv/bin/python scripts/lock.py $(if $(UPGRADE),--upgrade)

# The Meltano Hub definition, from `tap-dome --about` (see RELEASING.md).
hub: setup
	.venv/bin/python scripts/hub_definition.py

clean:
	rm -rf .venv .meltano output
