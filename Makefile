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

.PHONY: demo test install lint format unit notebooks figures clean help

help:
	@echo "make demo   set up and run the pipeline on the synthetic sample"
	@echo "make test   set up and run every check (lint, unit tests, notebooks)"
	@echo "make figures rerun the notebooks on the synthetic sample and refresh the README's figures"

# (Re)install when the project's dependencies change; a no-op otherwise.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing geoguess and its dependencies into $(VENV): about 6.6 GB (torch with CUDA) the first time," \
		"several minutes on a fast connection; pip lists each package as it goes"
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: install
	MPLBACKEND=Agg $(BIN)/python -m pytest

# The run must leave the tracked files as they were (figures go to figures/generated/).
TRACKED_STATE := git status --porcelain --untracked-files=no 2>/dev/null; git ls-files -s figures 2>/dev/null; \
	sha1sum $$(git ls-files figures 2>/dev/null) 2>/dev/null

# The notebooks' one run on the synthetic sample, whatever GEOGUESS_DATA_DIR says (their one run on
# real-like data is tests/test_notebooks_real_like.py, among the unit tests).
notebooks: install
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then \
		before="$$($(TRACKED_STATE))"; \
		env -u GEOGUESS_DATA_DIR MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax notebooks \
			--sanitize-with notebooks/sanitize.cfg -o testpaths=notebooks || exit 1; \
		if [ "$$before" != "$$($(TRACKED_STATE))" ]; then \
			echo "running the notebooks changed tracked files:"; git status --short; exit 1; fi; \
	else echo "no notebooks yet"; fi

test: lint unit notebooks

# The notebooks write their figures into figures/generated/ (not in git); this reruns them
# on the synthetic sample and copies the results over the tracked figures the README shows.
figures: install
	rm -rf figures/generated
	env -u GEOGUESS_DATA_DIR MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax notebooks \
		--sanitize-with notebooks/sanitize.cfg -o testpaths=notebooks
	MPLBACKEND=Agg $(BIN)/geoguess grid --spacing 0.3 --figures figures/generated
	$(BIN)/python -m geoguess_utils.course.figures

$(SAMPLE)/data.csv: | $(STAMP)
	$(BIN)/geoguess make-sample --out $(SAMPLE) --locations $(SAMPLE_LOCATIONS) --size $(SAMPLE_SIZE) --seed 0

# The demo trains the classifier with configs/quick_cpu.yaml into $(DEMO_DIR)/classification
# (TensorBoard and CSV logs, split.csv, checkpoints/best.ckpt), then predicts, scores and maps.
# A finished run is reused until the config or the sample changes; delete $(DEMO_DIR) to retrain.
# Extra `geoguess fit` overrides: make demo DEMO_FIT_ARGS="--trainer.max_epochs 3"
DEMO_DIR      ?= runs/demo
DEMO_RUN      := $(DEMO_DIR)/classification
DEMO_CKPT     := $(DEMO_RUN)/checkpoints/best.ckpt
DEMO_DONE     := $(DEMO_DIR)/classification.done
DEMO_FIT_ARGS ?=
DEMO_LOGGERS  := [{class_path: pytorch_lightning.loggers.TensorBoardLogger, init_args: {save_dir: $(DEMO_DIR), name: "", version: classification}}, {class_path: pytorch_lightning.loggers.CSVLogger, init_args: {save_dir: $(DEMO_DIR), name: "", version: classification}}]

demo: install $(SAMPLE)/data.csv
	@echo "== 1/6 check the synthetic sample"
	$(BIN)/geoguess validate $(SAMPLE)
	@echo "== 2/6 the grid of classes"
	$(BIN)/geoguess grid --spacing 0.3 --figures figures/generated
	@echo "== 3/6 train the classifier (configs/quick_cpu.yaml)"
	@if [ -f $(DEMO_DONE) ] && [ $(DEMO_DONE) -nt configs/quick_cpu.yaml ] && [ $(DEMO_DONE) -nt $(SAMPLE)/data.csv ]; then \
		echo "reusing the model trained in $(DEMO_RUN) (delete $(DEMO_DIR) to train again)"; \
	else \
		rm -rf $(DEMO_RUN) $(DEMO_DONE) && \
		$(BIN)/geoguess fit --config configs/quick_cpu.yaml --data.roots '[$(SAMPLE)]' \
			--trainer.logger '$(DEMO_LOGGERS)' --checkpoint.filename best $(DEMO_FIT_ARGS) && \
		touch $(DEMO_DONE); \
	fi
	@echo "== 4/6 predict every location of the sample (the competition's submission format)"
	$(BIN)/geoguess predict --ckpt $(DEMO_CKPT) --data $(SAMPLE) --out $(DEMO_DIR)/predictions.csv
	@echo "== 5/6 score them (all locations, training ones included, so optimistic; the test-split score is below)"
	$(BIN)/geoguess evaluate $(DEMO_DIR)/predictions.csv --truth $(SAMPLE)
	@echo "== 6/6 the interactive map of the test split"
	$(BIN)/geoguess map --ckpt $(DEMO_CKPT) --data $(SAMPLE) --split test --out figures/predictions_map.html
	@echo
	@echo "Done, on the SYNTHETIC sample in $(SAMPLE):"
	@echo "  map         figures/predictions_map.html (open it in a browser; works offline)"
	@echo "  figures     figures/generated/grid_0.3.png (make figures refreshes the tracked copies in figures/)"
	@echo "  model       $(DEMO_CKPT) (logs and split.csv next to it in $(DEMO_RUN))"
	@echo "  predictions $(DEMO_DIR)/predictions.csv"
	@echo "  the course  jupyter lab notebooks/ (01 to 05, in order)"
	@echo
	@echo "Serve the demo model (then open http://127.0.0.1:8000/):"
	@echo "  $(BIN)/geoguess serve --models $(DEMO_RUN)/checkpoints --sample $(SAMPLE)"

clean:
	rm -rf runs .pytest_cache
