"""The server's edge: what a request must be before its texts may share a forward pass with other requests'.

A micro-batch runs the texts of many requests together, so one unreadable text used to fail every request of
its batch. Everything cheap to check is checked here, per request, before anything is queued:

- the body: sent as JSON (415 otherwise) and at most `max_body` bytes (413), counted while it is read, so a
  missing or wrong Content-Length cannot make the server buffer more; a body that stops arriving is a 408 after
  `body_timeout` seconds; JSON that does not parse, nests deeper than `MAX_DEPTH` or holds NaN/Infinity (not
  JSON, though Python's parser takes them) is a 400, decided by one scan of the bytes before anything parses them;
- each text: encodable as UTF-8. JSON may carry lone UTF-16 surrogates ("\\ud800"), which Python accepts as
  str but the tokenizer (Rust) and the UTF-8 response encoder both refuse.

What slips through anyway is caught by the batcher, which retries a failed batch request by request. Error bodies
are bounded too: a 422 lists at most `MAX_ERRORS` problems and echoes at most `MAX_ECHO` characters of each bad
value, so a small request cannot get a large answer.
"""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers

from distilkit.inference.predict import unencodable_at
from distilkit.serving.options import ServeConfig

# A JSON string can spend 12 bytes on one character ("\ud83d\ude00" is one code point), a pair holds two
# texts, and the rest of the body (brackets, commas, whitespace) gets a fixed allowance.
BYTES_PER_CHAR, BODY_SLACK = 12, 64 * 1024
MAX_DEPTH = 16  # {"texts": [["a", "b"]]} is 3 deep; deeper bodies are refused before they are parsed
MAX_ERRORS, MAX_ECHO = 10, 200  # problems listed in a 422, and characters of each bad value echoed
STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # JSON strings, escapes included (unrolled: runs in C)
NON_FINITE = re.compile(rb"NaN|-?Infinity")


def json_problem(body: bytes) -> str | None:
    """Why a JSON body is refused before parsing (too deep, NaN or Infinity outside strings), or None. One regular
    expression and a cumulative sum over the bytes: no recursion, however deep the brackets go."""
    bare = STRINGS.sub(b'""', body)
    found = NON_FINITE.search(bare)
    if found:
        return f"the body holds {found.group().decode()}, which is not a JSON number: send finite numbers"
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int32) - np.isin(codes, (ord("]"), ord("}")))
    depth = int(np.cumsum(steps).max()) if len(steps) else 0
    if depth > MAX_DEPTH:
        return f'the body nests {depth} levels deep; this server reads at most {MAX_DEPTH}: send {{"texts": [...]}}'
    return None


def body_limit(cfg: ServeConfig) -> int:
    """--max-body, or by default the largest body that the text limits can make a server accept: a limit on
    bytes alone would otherwise refuse requests that --max-texts and --max-chars allow."""
    if cfg.max_body is not None:
        return cfg.max_body
    return cfg.max_texts * 2 * cfg.max_chars * BYTES_PER_CHAR + BODY_SLACK


def text_problem(value: str) -> str | None:
    """Why the model cannot read `value`, or None. Costs one UTF-8 encoding, far less than tokenizing."""
    at = unencodable_at(value)
    if at is None:
        return None
    return (
        f"character {at} is U+{ord(value[at]):04X}, a lone UTF-16 surrogate (half of a "
        "pair), which is not text UTF-8 can encode; send whole characters"
    )


def is_json(content_type: str) -> bool:
    """application/json or application/<something>+json (the types FastAPI parses as JSON), any parameters."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class BodyGuard:
    """ASGI wrapper of one route's app: checks the Content-Type, reads the body up to `limit` bytes, then hands
    the route the body it read. It wraps the route, not the whole app, so routing (404, 405) comes first and the
    metrics see the route's name."""

    def __init__(self, app, limit: int, timeout: float = 30.0):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        headers = Headers(scope=scope)
        kind = headers.get("content-type", "")
        if not is_json(kind):
            raise HTTPException(
                415,
                f"Content-Type {kind or '(none)'!r}: send the body as JSON with the header "
                "Content-Type: application/json",
            )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:  # refused before reading a byte of it
            raise self.too_large(f"{declared} bytes")
        body = await self.read(receive)
        problem = json_problem(body)
        if problem:
            raise HTTPException(400, problem)
        sent = False

        async def replay():
            nonlocal sent
            if sent:  # later calls wait for the client to disconnect, as the original receive does
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def read(self, receive) -> bytes:
        """The whole body, counted chunk by chunk: the Content-Length may be missing (chunked) or wrong; within
        `timeout` seconds, so a body that never ends does not hold its connection (and a worker) forever."""
        chunks, size, deadline = [], 0, time.monotonic() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(
                    408, f"the request body did not arrive within {self.timeout:g} s (--body-timeout); send it whole"
                ) from None
            if message["type"] == "http.disconnect":
                raise HTTPException(400, "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise self.too_large(f"more than {self.limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def too_large(self, size: str) -> HTTPException:
        return HTTPException(
            413,
            f"the request body has {size}; this server takes at most {self.limit} bytes "
            "(--max-body): split the request",
        )


def guarded_route(limit: int, timeout: float = 30.0) -> type[APIRoute]:
    """A route class whose app is wrapped in a BodyGuard of `limit` bytes and `timeout` seconds (FastAPI's
    route_class_override)."""

    class GuardedRoute(APIRoute):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.app = BodyGuard(self.app, limit, timeout)

    return GuardedRoute


def printable(value, room: int = MAX_ECHO):
    """`value` as a 422 may echo it: lone surrogates written as \\udxxx escapes (an unencodable echo would turn
    the client's error into a server error), and at most about `room` characters of it (a long text or a big
    list is cut, with "…" where it was), so an error answer stays small whatever was sent."""
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= room else text[:room] + "…"
    if isinstance(value, dict):
        items = list(value.items())[: max(room // 20, 1)]
        out = {printable(k, 40): printable(v, room // max(len(items), 1)) for k, v in items}
        return {**out, "…": f"{len(value) - len(items)} more keys"} if len(items) < len(value) else out
    if isinstance(value, (list, tuple)):
        kept = list(value)[: max(room // 20, 1)]
        out = [printable(v, room // max(len(kept), 1)) for v in kept]
        return out + [f"… {len(value) - len(kept)} more"] if len(kept) < len(value) else out
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # NaN is not JSON: a 422 must not fail to encode its own echo
    return value


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, printable; but 400 for a body that is not JSON at all, as a body that cannot be read is
    answered (FastAPI files malformed JSON under its validation errors)."""
    errors = exc.errors()
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None:
        reason = (broken.get("ctx") or {}).get("error", "malformed JSON")
        return JSONResponse(
            {
                "detail": f"the body is not valid JSON: {reason} at character {broken['loc'][-1]}; "
                'send an object like {"texts": ["some text"]}'
            },
            400,
        )
    shown = [{**e, "input": printable(e.get("input"))} for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        shown.append({"type": "too_many_errors", "loc": ["body"], "msg": f"and {len(errors) - MAX_ERRORS} more"})
    return JSONResponse({"detail": jsonable_encoder(shown)}, 422)
