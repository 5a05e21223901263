#!/usr/bin/env bash
# Creates benchmarks/.venv-model2vec: a virtual environment of its own for model2vec's distillation
# (model2vec==0.10.0 and skeletoken==0.6.1, its distill extra), used only by benchmarks/embeddings.py to distil the
# static-embedding peer. model2vec[distill] declares transformers 5.3 and huggingface-hub 1.x, below distilkit's
# lock; installed with --no-deps on top of the lock's own versions it runs (checked: distilling the packaged
# MiniLM-L6), so the peer reads the teacher with the same torch and transformers as distilkit. Loading and encoding
# a model2vec folder needs only `model2vec` itself, which is in distilkit's dev extra (the main .venv).
#
#     bash benchmarks/peer_model2vec_env.sh          # from the repository root; rebuilds the env from scratch
#
# Needs uv: .venv/bin/uv (the locked version, bootstrapped by `make install`), or $UV.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MODEL2VEC_VENV:-benchmarks/.venv-model2vec}
source benchmarks/peer_env_lib.sh

rm -rf "$VENV"
"$UV" venv --quiet --python "$PYTHON" "$VENV"
"$UV" pip install --quiet --python "$VENV/bin/python" "${TORCH_SOURCE[@]}" -r "$LOCK" -r requirements/assets.txt
"$UV" pip install --quiet --python "$VENV/bin/python" --no-deps model2vec==0.10.0 skeletoken==0.6.1
"$VENV/bin/python" -c "from model2vec.distill import distill"
"$UV" pip freeze --quiet --python "$VENV/bin/python" >"$VENV/versions.txt"
grep -iE '^(model2vec|skeletoken|torch|transformers)==' "$VENV/versions.txt"
