# Two commands do all set-up: `make run` (the service on this machine) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test bench lint prereqs dead-letters redrive clean

run: prereqs $(PY_STAMP) $(NODE_STAMP)
	@exec $(PY) -m chalicelib.local run

test: prereqs $(PY_STAMP) $(NODE_STAMP)
	$(PY) -m ruff check app.py chalicelib tests bench
	$(PY) -m mypy app.py chalicelib
	$(PY) -m pytest $(PYTEST_ARGS)

bench: prereqs $(PY_STAMP) $(NODE_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

lint: $(PY_STAMP)
	$(PY) -m ruff check app.py chalicelib tests bench
	$(PY) -m mypy app.py chalicelib

dead-letters: $(PY_STAMP)
	@$(PY) -m chalicelib.local dead-letters

redrive: $(PY_STAMP)
	@$(PY) -m chalicelib.local redrive $(ID)

prereqs:
	@scripts/check-prereqs.sh

$(PY_STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache
