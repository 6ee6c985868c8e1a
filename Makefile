# Raporto: `make run` starts the service on SQLite, `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCALES := locales
POT := $(LOCALES)/messages.pot
PORT ?= 5000

.PHONY: run test install lint typecheck pytest i18n-extract i18n-update i18n-compile i18n-check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install i18n-compile
	$(BIN)/raporto db upgrade
	$(BIN)/raporto up --port $(PORT)

test: install i18n-compile lint typecheck pytest

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Translations: extract the template, merge it into every catalog, compile them.
# The extraction keywords live in bot/i18n_tools.py (EXTRACT_KEYWORDS), the only copy.
i18n-extract: install
	$(BIN)/raporto i18n extract --template $(POT)

i18n-update: i18n-extract
	$(BIN)/raporto i18n update

i18n-compile: install
	$(BIN)/raporto i18n compile

i18n-check: install
	$(BIN)/raporto i18n check

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
