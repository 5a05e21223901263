"""The server's edge: what a request must be before its texts may share a forward pass with other requests'.

A micro-batch runs the texts of many requests together, so one unreadable text used to fail every request of
its batch. Everything cheap to check is checked here, per request, before anything is queued:

- the body: sent as JSON (415 otherwise) and at most `max_body` bytes (413), counted while it is read, so a
  missing or wrong Content-Length cannot make the server buffer more; JSON that does not parse is a 400;
- each text: encodable as UTF-8. JSON may carry lone UTF-16 surrogates ("\\ud800"), which Python accepts as
  str but the tokenizer (Rust) and the UTF-8 response encoder both refuse.

What slips through anyway is caught by the batcher, which retries a failed batch request by request.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers

from distilkit.inference.predict import unencodable_at
from distilkit.serve.options import ServeConfig

# A JSON string can spend 12 bytes on one character ("\ud83d\ude00" is one code point), a pair holds two
# texts, and the rest of the body (brackets, commas, whitespace) gets a fixed allowance.
BYTES_PER_CHAR, BODY_SLACK = 12, 64 * 1024


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

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

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
        sent = False

        async def replay():
            nonlocal sent
            if sent:  # later calls wait for the client to disconnect, as the original receive does
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def read(self, receive) -> bytes:
        """The whole body, counted chunk by chunk: the Content-Length may be missing (chunked) or wrong."""
        chunks, size = [], 0
        while True:
            message = await receive()
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


def guarded_route(limit: int) -> type[APIRoute]:
    """A route class whose app is wrapped in a BodyGuard of `limit` bytes (FastAPI's route_class_override)."""

    class GuardedRoute(APIRoute):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.app = BodyGuard(self.app, limit)

    return GuardedRoute


def printable(value):
    """`value` with lone surrogates written as \\udxxx escapes: a 422 echoes the input, and an unencodable
    echo would turn the client's error into a server error."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
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
    return JSONResponse({"detail": printable(jsonable_encoder(errors))}, 422)
