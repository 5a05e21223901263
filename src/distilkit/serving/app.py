"""The FastAPI app: routes, API key, limits, metrics, and the lifespan that loads, warms and drains the model.

`create_app(config)` builds an app for one model. Its lifespan loads the model (unless the caller already
did, as the CLI does to fail fast with a one-line error), runs a warm-up pass and starts the micro-batcher;
/health says ready only then. On shutdown it says stopping, and the batcher finishes every queued text
before the worker ends, so requests in flight get their answers.

Texts of concurrent requests share forward passes, so a request is checked as far as cheaply possible before
its texts are queued (`guard`), and a request that fails anyway fails alone (the batcher retries its batch
request by request): 422 when the tokenizer refused its texts, 500 when the model failed on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from distilkit.data.dataset import TOK
from distilkit.errors import DistilkitError
from distilkit.serving.batcher import Arrivals, MicroBatcher, QueueFull, ShuttingDown
from distilkit.serving.embedding_engine import TooLong
from distilkit.serving.engine import Engine, UnreadableText, load_engine
from distilkit.serving.guard import body_limit, guarded_route, printable, text_problem, validation_error
from distilkit.serving.metrics import Metrics
from distilkit.serving.options import ServeConfig
from distilkit.serving.schemas import ERRORS, EmbedRequest, Health, Metadata, PredictRequest, PredictResponse

API_KEY_ENV = "DISTILKIT_API_KEY"
PLAYGROUND = Path(__file__).parent / "static" / "playground.html"
log = logging.getLogger("uvicorn.error")  # uvicorn configures its loggers; ours would print nothing
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")


def check_config(cfg: ServeConfig) -> None:
    """Refuse limits that cannot work together, before anything is loaded (each one's own range is checked
    when the config is built: serving/options.py)."""
    if cfg.max_queue < cfg.max_texts:
        raise DistilkitError(
            f"--max-queue {cfg.max_queue} is below --max-texts {cfg.max_texts}: a full request "
            "could never be queued; raise --max-queue"
        )


def require_key(
    request: Request,
    _bearer: HTTPAuthorizationCredentials | None = Security(bearer),
    _header: str | None = Security(key_header),
) -> None:
    """401 unless the request carries the server's key (when it has one); compared in constant time.

    The two security schemes only document the headers (and give /docs its Authorize button); the check reads
    the headers itself, so that every credential sent must be right: a malformed or wrong Authorization header
    is not outvoted by a good X-API-Key.
    """
    expected = request.app.state.api_key
    if not expected:
        return
    given = [request.headers["x-api-key"]] if "x-api-key" in request.headers else []
    if "authorization" in request.headers:
        scheme, _, token = request.headers["authorization"].partition(" ")
        given.append(token.strip() if scheme.lower() == "bearer" else "")
    if not given or not all(secrets.compare_digest(k.encode(), expected.encode()) for k in given):
        raise HTTPException(
            401,
            "missing or wrong API key: send the header Authorization: Bearer KEY or X-API-Key: KEY",
            headers={"WWW-Authenticate": "Bearer"},
        )


class MetricsMiddleware:
    """Counts every response (validation errors and 404s included) by route template, status and latency; and
    marks prediction requests as arriving from the moment they come in (their body is not even read yet)."""

    def __init__(self, app, metrics: Metrics, arrivals: Arrivals):
        self.app, self.metrics, self.arrivals = app, metrics, arrivals

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500
        if scope["path"] == "/predict":
            self.arrivals.received(scope)

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:  # the route template, not the raw path: unknown paths must not create new series
            route = getattr(scope.get("route"), "path", None) or (scope["path"] if "endpoint" in scope else "unmatched")
            self.metrics.observe(route, status, time.perf_counter() - started)
            self.arrivals.done(scope)


def invalid(loc: tuple, item, message: str):
    """422 in the shape of FastAPI's own validation errors, so clients parse one kind of 422."""
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("body", "texts", *loc), "msg": message, "input": printable(item)}]
    )


def to_rows(request: PredictRequest, cfg: ServeConfig, task: str) -> list[dict]:
    """Check the request against the server's limits and turn it into rows {"text", "text_pair"?}."""
    if len(request.texts) > cfg.max_texts:
        raise HTTPException(
            413,
            f"{len(request.texts)} texts in one request; this server takes at most "
            f"{cfg.max_texts} (--max-texts): split the request",
        )
    rows = []
    for i, item in enumerate(request.texts):
        row = {"text": item} if isinstance(item, str) else {"text": item[0], "text_pair": item[1]}
        for part, value in enumerate(row.values()):
            if len(value) > cfg.max_chars:
                raise HTTPException(
                    413,
                    f"texts[{i}] has {len(value)} characters; this server takes at most "
                    f"{cfg.max_chars} per text (--max-chars): shorten or split it",
                )
            problem = text_problem(value)
            if problem:  # refused here, for this request only: in a batch it would fail its neighbours too
                where = (i,) if isinstance(item, str) else (i, part)
                invalid(where, item, f"texts{''.join(f'[{n}]' for n in where)} cannot be read: {problem}")
        if not row["text"].strip():
            invalid((i,), item, f"texts[{i}] is empty: send text with at least one word")
        if task == TOK and "text_pair" in row:
            invalid((i,), item, f"texts[{i}] is a pair, but a token-classification model takes single texts")
        rows.append(row)
    return rows


async def predictions(batcher: MicroBatcher, rows: list[dict]) -> list[dict]:
    """The batcher's results for `rows`, its refusals and failures as HTTP errors."""
    try:
        return await batcher.submit(rows)
    except QueueFull as err:
        raise HTTPException(503, f"server busy: {err}; retry later", headers={"Retry-After": "1"}) from None
    except ShuttingDown:
        raise HTTPException(
            503, "the server is stopping; retry on another instance or after a restart", headers={"Retry-After": "1"}
        ) from None
    except TooLong as err:
        raise HTTPException(413, str(err)) from None
    except UnreadableText as err:  # it failed alone (the batcher retried it so): its texts are to blame
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "texts"),
                    "input": None,
                    "msg": f"the texts of this request cannot be read: {err}",
                }
            ]
        ) from None
    except Exception as err:  # noqa: BLE001 - it failed alone; the other requests of its batch were answered
        log.error("distilkit: the model failed on a request of %d texts", len(rows), exc_info=err)
        raise HTTPException(
            500, f"the model failed on this request ({type(err).__name__}); the server log has the details"
        ) from None


def create_app(cfg: ServeConfig, engine: Engine | None = None) -> FastAPI:
    """An app serving `cfg.model` (or the already loaded `engine`) with `cfg`'s limits."""
    check_config(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        if state.engine is None:
            state.engine = await asyncio.to_thread(load_engine, cfg.model, cfg.backend, cfg.max_length, cfg.top_k)
        await asyncio.to_thread(state.engine.warm_up)
        state.batcher = MicroBatcher(
            state.engine.predict,
            cfg.max_batch,
            cfg.max_wait_ms,
            cfg.max_queue,
            metrics.on_batch,
            lambda: arrivals.count,
            metrics.on_retry,
        )
        state.batcher.start()
        state.status = "ready"
        log.info(
            "distilkit: serving %s (%s, %s backend)",
            state.engine.trained.path,
            state.engine.trained.task,
            state.engine.backend,
        )
        yield
        state.status = "stopping"
        await state.batcher.stop()
        log.info("distilkit: stopped after finishing the queued texts")

    app = FastAPI(
        title="distilkit serve",
        version="1",
        lifespan=lifespan,
        description="Predictions of a distilkit model. Send the API key (when the server has one) as "
        "`Authorization: Bearer KEY` or `X-API-Key: KEY`.",
    )
    app.state.engine, app.state.batcher, app.state.status = engine, None, "loading"
    app.state.api_key = cfg.api_key or os.environ.get(API_KEY_ENV) or None
    metrics = Metrics(lambda: app.state.batcher.depth if app.state.batcher else 0)
    arrivals = Arrivals()
    app.add_middleware(MetricsMiddleware, metrics=metrics, arrivals=arrivals)
    app.add_exception_handler(RequestValidationError, validation_error)
    guarded = [Depends(require_key)]
    page = PLAYGROUND.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground() -> HTMLResponse:
        """Open without a key (it holds no data): the page asks for the key and sends it with its requests."""
        return HTMLResponse(page)

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health() -> JSONResponse:
        """Ready once the model is loaded and warmed up (200); 503 while loading or stopping. Needs no key."""
        return JSONResponse({"status": app.state.status}, 200 if app.state.status == "ready" else 503)

    @app.get("/metadata", response_model=Metadata, dependencies=guarded, responses={401: ERRORS[401]})
    async def metadata() -> dict:
        """The model (path, task, labels, backend, size) and the server's limits."""
        limits = {k: getattr(cfg, k) for k in ("max_texts", "max_chars", "max_batch", "max_wait_ms", "max_queue")}
        return {
            **app.state.engine.metadata(),
            **limits,
            "max_body": body_limit(cfg),
            "api_key_required": bool(app.state.api_key),
        }

    @app.get(
        "/metrics",
        dependencies=guarded,
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}, 401: ERRORS[401]},
    )
    async def prometheus() -> Response:
        """Requests, errors and latency by route, batch sizes, texts predicted and queue depth."""
        return Response(metrics.render(), media_type=Metrics.content_type)

    async def predict(request: PredictRequest, http: Request) -> dict:
        """Label and scores per text (sequence classification), or words, tags and entity spans (token
        classification). Texts of concurrent requests are batched together."""
        started = time.perf_counter()
        if app.state.batcher is None:
            raise HTTPException(503, "the model is loading", headers={"Retry-After": "1"})
        engine = app.state.engine
        if engine.trained.task == "embedding":
            raise HTTPException(400, 'this server serves an embedding model: POST /embed {"inputs": [...]}')
        rows = to_rows(request, cfg, engine.trained.task)
        arrivals.done(http.scope)  # submit queues the texts before it awaits anything
        results = await predictions(app.state.batcher, rows)
        return {
            "model": engine.trained.path,
            "task": engine.trained.task,
            "backend": engine.backend,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "predictions": results,
        }

    # The body is checked (Content-Type, size) by the route itself, before FastAPI reads and parses it.
    app.router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        response_model_exclude_none=True,
        dependencies=guarded,
        responses=ERRORS,
        route_class_override=guarded_route(body_limit(cfg), cfg.body_timeout),
    )

    async def embed(request: EmbedRequest, http: Request) -> list[list[float]]:
        """One vector per input (text-embeddings-inference's /embed). Texts of concurrent requests are batched
        together, with the limits of /predict."""
        if app.state.batcher is None:
            raise HTTPException(503, "the model is loading", headers={"Retry-After": "1"})
        if app.state.engine.trained.task != "embedding":
            raise HTTPException(400, 'this server serves a classifier: POST /predict {"texts": [...]}')
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        if not texts:
            invalid((), texts, "inputs is empty: send at least one text")
        rows = to_rows(PredictRequest(texts=texts), cfg, "embedding")
        for row in rows:
            row.update(normalize=request.normalize, truncate=request.truncate)
        arrivals.done(http.scope)
        return [r["embedding"] for r in await predictions(app.state.batcher, rows)]

    app.router.add_api_route(
        "/embed",
        embed,
        methods=["POST"],
        response_model=list[list[float]],
        dependencies=guarded,
        responses=ERRORS,
        route_class_override=guarded_route(body_limit(cfg), cfg.body_timeout),
    )
    return app
