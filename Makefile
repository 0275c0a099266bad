# Everything runs from a project-local virtualenv that `make` creates on demand,
# so a machine with only Python 3.11+ and make is enough.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

OLD_VENV  ?= .venv-oldest
OLD_STAMP := $(OLD_VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit test-oldest soak bench bench-smoke bench-objstore clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,cli,bench,s3]'
	touch $(STAMP)

install: $(STAMP)

## The main job: a recording lifecycle against the embedded emulator.
demo: $(STAMP)
	$(BIN)/realtimekit demo

## Lint, types and the whole test suite (with coverage of the package, floor in pyproject.toml), on the newest and the oldest supported
## dependencies (what CI runs).
test: lint typecheck unit test-oldest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term

$(OLD_STAMP): pyproject.toml constraints-oldest.txt
	$(PYTHON) -m venv $(OLD_VENV)
	$(OLD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLD_VENV)/bin/python -m pip install --quiet -c constraints-oldest.txt -e '.[test,cli,s3]'
	touch $(OLD_STAMP)

## The suite again on the oldest versions pyproject.toml admits (constraints-oldest.txt).
test-oldest: $(OLD_STAMP)
	$(OLD_VENV)/bin/pytest -q -m "not slow"

## The full chaos soak (~10 % faults): 20,000 listed, 500 exported, 200 start/stop
## cycles; figures in benchmarks/results/soak-full.json. `unit` runs a smaller one.
soak: $(STAMP)
	$(BIN)/pytest tests/test_soak.py -m slow -q -s

## Benchmarks against a local emulator (results: benchmarks/results/latest.{md,json}).
## The venv has the bench extra (the official SDK) so that `make test` runs a smoke of it.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

## The same harness at tiny sizes, one repetition: seconds, numbers meaningless.
bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick

## obstore against aiobotocore, streaming into moto's S3 server (the s3 extra's choice;
## results: benchmarks/results/objstore.{md,json}).
bench-objstore: $(STAMP)
	$(BIN)/python -m benchmarks.objstore_eval

clean:
	rm -rf $(VENV) $(OLD_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
