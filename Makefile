# geoguess: two commands do everything.
#   make demo  - set up .venv, generate the synthetic sample, run the course pipeline end to end
#   make test  - set up .venv, lint, run the unit tests and the notebooks (nbval)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE ?= data/synthetic
SAMPLE_LOCATIONS ?= 2000
SAMPLE_SIZE ?= 96

.PHONY: demo test install lint format unit notebooks clean help

help:
	@echo "make demo   set up and run the pipeline on the synthetic sample"
	@echo "make test   set up and run every check (lint, unit tests, notebooks)"

# (Re)install when the project's dependencies change; a no-op otherwise.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: install
	MPLBACKEND=Agg $(BIN)/python -m pytest

notebooks: install
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then \
		MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax notebooks \
			--sanitize-with notebooks/sanitize.cfg -o testpaths=notebooks; \
	else echo "no notebooks yet"; fi

test: lint unit notebooks

$(SAMPLE)/data.csv: | $(STAMP)
	$(BIN)/geoguess make-sample --out $(SAMPLE) --locations $(SAMPLE_LOCATIONS) --size $(SAMPLE_SIZE) --seed 0

demo: install $(SAMPLE)/data.csv
	$(BIN)/geoguess validate $(SAMPLE)
	$(BIN)/geoguess grid --spacing 0.3
	@echo "figures are in figures/"

clean:
	rm -rf runs .pytest_cache
