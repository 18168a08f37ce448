# Every target sets itself up: a fresh clone needs nothing but Python 3.11 and this file.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA ?= ../shared/data
IMAGES ?= $(DATA)/shanghaitech/part_B/test/images

.PHONY: setup test lint demo bench

setup: $(STAMP)

# pip takes torch and torchvision from this machine's disk (uv and poetry would not). Re-runs only when
# pyproject.toml changes, so `make setup` is fast when already done.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

# Until the platform is in place: count a few Part B test frames with our default weights, writing heatmap overlays.
demo: setup
	$(PY) -m counting count --overlay demo-output $$(ls $(IMAGES)/*.jpg | head -n 6)
	@echo "heatmap overlays written to demo-output/"

bench: setup
	$(PY) -m counting bench
