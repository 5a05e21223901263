# Sourced by the peer_*_env.sh scripts (after `cd` to the repository root): the locked uv, the lock, and where the
# CPU torch wheel comes from (the local wheel folder when it has one, else PyTorch's CPU index, as the Makefile's
# TORCH_SOURCE), so that every peer venv holds distilkit's own torch and transformers.
UV=${UV:-.venv/bin/uv}
PYTHON=${PYTHON:-.venv/bin/python}
LOCK=requirements/lock.txt
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}
export UV_PYTHON_DOWNLOADS=never

if ! [ -x "$UV" ]; then
    echo "error: no uv at $UV: run 'make install' first (it bootstraps the locked uv), or set UV=/path/to/uv" >&2
    exit 1
fi
if compgen -G "$TORCH_WHEELS/torch-*" >/dev/null; then
    TORCH_SOURCE=(--find-links "$TORCH_WHEELS")
else
    TORCH_SOURCE=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi
