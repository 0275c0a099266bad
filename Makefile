# Everything runs from a project-local virtualenv that `make` creates on demand,
# so a machine with only Python 3.11+ and make is enough.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SITE   ?= site

# `make demo` runs this checkout's source (`python -m`, from this directory) in its own
# virtualenv holding only the runtime dependencies, read from pyproject.toml: no
# extras and no build step, so a fresh `make demo` takes seconds.
DEMO_VENV  ?= .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed-stamp
DEMO_REQS  := $(DEMO_VENV)/requirements.txt

OLD_VENV  ?= .venv-oldest
OLD_STAMP := $(OLD_VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit docs docs-serve test-oldest soak bench bench-smoke bench-objstore bench-dask clean

# --no-compile: Python compiles what the suite imports; byte-compiling every installed
# file up front was a third of the install.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test,cli,bench,s3,docs,dask]'
	touch $(STAMP)

# When the interpreter has a pip that can install into another environment
# (--python, pip >= 22.3), the demo's venv is made without one: ensurepip is most
# of a fresh venv's time.
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv --without-pip $(DEMO_VENV)
	$(PYTHON) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > $(DEMO_REQS)
	@if $(PYTHON) -m pip --python $(DEMO_VENV)/bin/python --version >/dev/null 2>&1; then \
	    set -x; $(PYTHON) -m pip --python $(DEMO_VENV)/bin/python install --quiet -r $(DEMO_REQS); \
	else \
	    set -x; $(DEMO_VENV)/bin/python -m ensurepip --default-pip >/dev/null && \
	    $(DEMO_VENV)/bin/python -m pip install --quiet -r $(DEMO_REQS); \
	fi
	touch $(DEMO_STAMP)

install: $(STAMP)

## The main job: a recording lifecycle against the embedded emulator.
demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python -m realtimekit_async demo

## Lint, types, the whole test suite and the docs build, on the newest and the oldest supported
## dependencies (what CI runs). The two virtualenvs are built side by side, and lint and
## mypy start as soon as the first is ready, while the second may still be building (pip
## waits on the disk much of its time); the suites then run one after the other.
test:
	$(MAKE) -j3 --output-sync=target lint typecheck $(OLD_STAMP)
	$(MAKE) unit docs test-oldest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The suite in $(WORKERS) processes (pytest-xdist; one per core here), with line
## coverage of the SDK, failing under the floor in pyproject.toml
## ([tool.coverage.report]). `WORKERS=0 make unit` runs it in one process.
WORKERS ?= 2
unit: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) --cov --cov-report=term

## The documentation site (mkdocs.yml, docs/) into $(SITE)/; --strict turns a
## broken link or API reference into a failure (not with --quiet, which hides the
## warnings it counts). Needs no network.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(SITE)

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

$(OLD_STAMP): pyproject.toml constraints-oldest.txt
	$(PYTHON) -m venv $(OLD_VENV)
	$(OLD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLD_VENV)/bin/python -m pip install --quiet --no-compile -c constraints-oldest.txt -e '.[test,cli,s3]'
	touch $(OLD_STAMP)

## The suite again on the oldest versions pyproject.toml admits (constraints-oldest.txt),
## less the docs and packaging checks (marked `newest`), which the first run covers.
test-oldest: $(OLD_STAMP)
	$(OLD_VENV)/bin/pytest -q -n $(WORKERS) -m "not slow and not newest"

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

## Export throughput on a local Dask cluster of 1, 2 and 4 workers against an emulator
## with added latency, and the API request rate against the budget (results:
## benchmarks/results/dask.{md,json}).
bench-dask: $(STAMP)
	$(BIN)/python -m benchmarks.dask_scaling

clean:
	rm -rf $(VENV) $(OLD_VENV) $(DEMO_VENV) $(SITE) .mypy_cache .ruff_cache .pytest_cache .hypothesis
