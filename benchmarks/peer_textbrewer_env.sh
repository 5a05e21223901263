#!/usr/bin/env bash
# Creates benchmarks/.venv-textbrewer: a virtual environment of its own for TextBrewer 0.2.1 (PyPI
# textbrewer==0.2.1.post1), used only by benchmarks/peer_textbrewer.py. TextBrewer is not a dependency of
# distilkit and never enters .venv.
#
#     bash benchmarks/peer_textbrewer_env.sh          # from the repository root; rebuilds the env from scratch
#
# Same torch and transformers as distilkit's venv, so the comparison measures the tools, not the libraries:
# - torch==2.13.0+cpu, the CPU wheel, from /opt/wheels when it has one, else PyTorch's CPU index (as the
#   Makefile's TORCH_SOURCE); never an unpinned torch, which pulls GBs of CUDA packages;
# - transformers at its version in requirements/lock.txt, and every other package that the lock also lists
#   (tokenizers, huggingface-hub, safetensors, numpy, tqdm, tensorboard, ...) at its locked version
#   (the lock is passed as --constraint);
# - textbrewer==0.2.1.post1 with --no-deps: its declared dependencies are numpy, torch>=1.1, tensorboard and
#   tqdm, installed above; --no-deps keeps its `torch>=1.1` from ever resolving a torch of its own.
# Needs uv: .venv/bin/uv (the locked version, bootstrapped by `make install`), or $UV.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${TEXTBREWER_VENV:-benchmarks/.venv-textbrewer}
source benchmarks/peer_env_lib.sh
locked() { sed -n "s/^$1==//p" "$LOCK"; }
TRANSFORMERS=$(locked transformers)
TORCH=$(locked torch)
if [ -z "$TRANSFORMERS" ] || [ "$TORCH" != "2.13.0+cpu" ]; then
    echo "error: $LOCK must pin transformers and torch==2.13.0+cpu (found torch '$TORCH')" >&2
    exit 1
fi

rm -rf "$VENV"
"$UV" venv --quiet --python "$PYTHON" "$VENV"
"$UV" pip install --quiet --python "$VENV/bin/python" "${TORCH_SOURCE[@]}" --constraint "$LOCK" \
    "torch==$TORCH" "transformers==$TRANSFORMERS" numpy tqdm tensorboard
"$UV" pip install --quiet --python "$VENV/bin/python" --no-deps textbrewer==0.2.1.post1
"$UV" pip freeze --quiet --python "$VENV/bin/python" >"$VENV/versions.txt"
grep -iE '^(textbrewer|torch|transformers)==' "$VENV/versions.txt"
