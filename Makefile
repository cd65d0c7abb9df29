# Targets match the README. `make run` and `make test` do all set-up themselves.
.PHONY: setup run test lint bench clean

setup:
	bash scripts/bootstrap.sh

run: setup
	bash scripts/run_job.sh

test: setup
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check tap-dome tests bench plugins
	.venv/bin/ruff format --check tap-dome tests bench plugins
	cd tap-dome && ../.venv/bin/mypy tap_dome

bench: setup
	.venv/bin/python bench/run.py
	.venv/bin/python bench/loaders.py

clean:
	rm -rf .venv .meltano output
