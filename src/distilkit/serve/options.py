"""Options of `distilkit serve` (kept beside the server they configure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass
class ServeConfig:
    """Serve a fine-tuned model over HTTP: POST /predict (micro-batched), /health, /metadata, /metrics, a playground.

    Args:
        model: Run folder, model folder or ONNX folder to serve (also accepted as the first positional argument).
        backend: onnx runs <run>/onnx (from distilkit export) with ONNX Runtime; torch runs the PyTorch model.
            Default: onnx when --model is an ONNX folder, torch otherwise.
        host: Address to bind. The default accepts local connections only; 0.0.0.0 exposes the server.
        port: TCP port.
        api_key: Require this key (header `Authorization: Bearer KEY` or `X-API-Key: KEY`) on /predict, /metadata
            and /metrics (/health, the playground page and /docs stay open). Default: the DISTILKIT_API_KEY
            environment variable, else no key.
        max_batch: Most texts run in one forward pass; 1 disables micro-batching.
        max_wait_ms: Longest the first text of a batch waits for requests the server has already received to join
            it (0: take only what is queued). A lone request does not wait.
        max_queue: Most texts waiting for the model; a request that would overflow it gets 503 with Retry-After.
        max_texts: Most texts in one request (more: 413).
        max_chars: Most characters in one text (more: 413).
        max_length: Most tokens per text; longer texts are truncated and flagged "truncated": true.
        top_k: Scores returned per text (0 = all labels).
        graceful_timeout: Seconds to let in-flight requests finish after SIGTERM/Ctrl-C before cancelling them.
        log_level: uvicorn's log level; debug also logs every request.
    """

    model: str = ""
    backend: Optional[Literal["onnx", "torch"]] = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: Optional[str] = None
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 512
    max_texts: int = 64
    max_chars: int = 10000
    max_length: int = 128
    top_k: int = 0
    graceful_timeout: float = 30.0
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
