"""Options of `distilkit serve` (kept beside the server they configure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from distilkit.option_rules import AT_LEAST_1, COUNT, MAX_LENGTH, NON_NEGATIVE, PORT, POSITIVE, Checked, opt


@dataclass
class ServeConfig(Checked):
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
        max_body: Most bytes in a request body (more: 413), counted while it is read, before it is parsed.
            Default: room for --max-texts pairs of --max-chars characters at 12 bytes each (the longest JSON
            escape of one character), plus 64 KiB.
        body_timeout: Seconds a request body may take to arrive (more: 408), so a body that never ends does not hold
            its connection.
        max_length: Most tokens per text; longer texts are truncated and flagged "truncated": true (default: the
            smaller of 128 and the model's positions).
        top_k: Scores returned per text (0 = all labels).
        graceful_timeout: Seconds to let in-flight requests finish after SIGTERM/Ctrl-C before cancelling them.
        log_level: uvicorn's log level; debug also logs every request.
    """

    model: str = ""
    backend: Optional[Literal["onnx", "torch"]] = None
    host: str = "127.0.0.1"
    port: int = opt(8000, PORT)
    api_key: Optional[str] = None
    max_batch: int = opt(32, AT_LEAST_1)
    max_wait_ms: float = opt(5.0, NON_NEGATIVE)
    max_queue: int = opt(512, AT_LEAST_1)
    max_texts: int = opt(64, AT_LEAST_1)
    max_chars: int = opt(10000, AT_LEAST_1)
    max_body: Optional[int] = opt(None, AT_LEAST_1)
    body_timeout: float = opt(30.0, POSITIVE)
    max_length: Optional[int] = opt(None, MAX_LENGTH)
    top_k: int = opt(0, COUNT)
    graceful_timeout: float = opt(30.0, NON_NEGATIVE)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
