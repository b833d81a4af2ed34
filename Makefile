# The two commands of README.md. Each sets up what it needs on a fresh machine:
#   make serve   run the service with zero configuration (SQLite, dev certificates, demo program)
#   make test    run the test suite (SQLite; set WALLETSVC_TEST_DATABASE_URL for PostgreSQL)
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: serve test lint install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(VENV)/bin/walletsvc serve

test: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy walletsvc pos_adapters
	$(VENV)/bin/lint-imports
