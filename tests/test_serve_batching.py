"""distilkit serve's micro-batcher: concurrent requests share forward passes, the first text waits only for
requests already received, a full queue answers 503 with Retry-After, and shutdown drains requests in flight."""

import asyncio
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from test_serve import metric

from distilkit.serving.app import create_app
from distilkit.serving.batcher import MicroBatcher, QueueFull
from distilkit.serving.engine import Engine
from distilkit.serving.options import ServeConfig


@pytest.fixture(scope="module")
def engine(topic_run):
    return Engine.load(str(topic_run), None)


def echo_batcher(sizes: list, **kwargs) -> MicroBatcher:
    def predict(rows):
        sizes.append(len(rows))
        time.sleep(0.01)
        return [{"echo": r["text"]} for r in rows]

    return MicroBatcher(predict, **kwargs)


@pytest.mark.parametrize("max_batch, expected", [(4, [4, 4, 2]), (1, [1] * 10)])
def test_concurrent_requests_share_batches(max_batch, expected):
    async def scenario():
        sizes: list = []
        batcher = echo_batcher(sizes, max_batch=max_batch, max_wait_ms=50)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([{"text": str(i)}]) for i in range(10)))
        await batcher.stop()
        return sizes, results

    sizes, results = asyncio.run(scenario())
    assert sizes == expected
    assert results == [[{"echo": str(i)}] for i in range(10)]  # every answer reaches its own request


@pytest.mark.parametrize("wait_ms, arriving, expected", [(300, 1, [2]), (0, 1, [1, 1]), (300, 0, [1, 1])])
def test_first_text_waits_for_requests_on_their_way(wait_ms, arriving, expected):
    """It waits up to max_wait_ms, and only while the server has received requests that are not queued yet."""

    async def scenario():
        sizes: list = []
        batcher = echo_batcher(sizes, max_batch=8, max_wait_ms=wait_ms, arriving=lambda: arriving)
        batcher.start()
        first = asyncio.create_task(batcher.submit([{"text": "a"}]))
        await asyncio.sleep(0.05)  # the second text comes 50 ms later
        second = await batcher.submit([{"text": "b"}])
        assert await first == [{"echo": "a"}] and second == [{"echo": "b"}]
        await batcher.stop()
        return sizes

    assert asyncio.run(scenario()) == expected


def test_batcher_survives_failures_and_gone_clients():
    async def scenario():
        calls = []

        def predict(rows):
            calls.append([r["text"] for r in rows])
            if rows[0]["text"] == "boom":
                raise RuntimeError("model failed")
            return [{"ok": r["text"]} for r in rows]

        batcher = MicroBatcher(predict, max_batch=8, max_wait_ms=20, max_queue=4)
        batcher.start()
        with pytest.raises(RuntimeError, match="model failed"):
            await batcher.submit([{"text": "boom"}, {"text": "x"}])
        gone = asyncio.create_task(batcher.submit([{"text": "gone"}]))
        await asyncio.sleep(0)
        gone.cancel()  # the client disconnected before its batch ran
        with pytest.raises(QueueFull):
            await batcher.submit([{"text": str(i)} for i in range(5)])
        result = await batcher.submit([{"text": "after"}])
        await batcher.stop()
        return calls, result

    calls, result = asyncio.run(scenario())
    assert result == [{"ok": "after"}] and calls[0] == ["boom", "x"] and ["gone"] not in calls


async def _call(app, scenario):
    """Run `scenario(client)` against `app` with its lifespan started (httpx's ASGI transport does not)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await scenario(client)


async def _until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def gated(batcher: MicroBatcher):
    """Make the batcher's model calls wait for `gate`; `running` is set when one is waiting."""
    gate, running, predict = threading.Event(), threading.Event(), batcher.predict

    def slow(rows):
        running.set()
        assert gate.wait(20)
        return predict(rows)

    batcher.predict = slow
    return gate, running


def test_full_queue_answers_503_with_retry_after(topic_run, engine):
    app = create_app(ServeConfig(model=str(topic_run), max_batch=1, max_wait_ms=0, max_queue=2, max_texts=2), engine)

    async def scenario(client):
        gate, running = gated(app.state.batcher)
        first = asyncio.create_task(client.post("/predict", json={"texts": ["goal match"]}))
        await _until(running.is_set)  # the worker holds the first text
        second = asyncio.create_task(client.post("/predict", json={"texts": ["soup chef", "song band"]}))
        await _until(lambda: app.state.batcher.depth == 2)
        refused = await client.post("/predict", json={"texts": ["goal"]})
        depth = metric((await client.get("/metrics")).text, "distilkit_queue_depth")
        gate.set()
        return refused, depth, await first, await second

    refused, depth, first, second = asyncio.run(_call(app, scenario))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["detail"] and depth == 2
    assert first.status_code == second.status_code == 200
    labels = [p["label"] for p in first.json()["predictions"] + second.json()["predictions"]]
    assert labels == ["sport", "food", "music"]


def test_shutdown_finishes_requests_in_flight(topic_run, engine):
    app = create_app(ServeConfig(model=str(topic_run), max_wait_ms=0), engine)

    async def scenario():
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            gate, running = gated(app.state.batcher)
            in_flight = asyncio.create_task(client.post("/predict", json={"texts": ["goal match", "soup chef"]}))
            await _until(running.is_set)
            stopping = asyncio.create_task(lifespan.__aexit__(None, None, None))
            await _until(lambda: app.state.status == "stopping")
            health = await client.get("/health")
            late = await client.post("/predict", json={"texts": ["goal"]})
            assert not stopping.done()  # shutdown waits for the batch in flight
            gate.set()
            answered = await in_flight
            await stopping
            return health, late, answered

    health, late, answered = asyncio.run(scenario())
    assert health.status_code == 503 and health.json() == {"status": "stopping"}
    assert late.status_code == 503 and "stopping" in late.json()["detail"]
    assert answered.status_code == 200 and [p["label"] for p in answered.json()["predictions"]] == ["sport", "food"]
    assert app.state.batcher.worker.done()


def test_a_lone_request_does_not_wait_for_company(topic_run, engine):
    with TestClient(create_app(ServeConfig(model=str(topic_run), max_wait_ms=3000), engine)) as c:
        started = time.perf_counter()
        assert c.post("/predict", json={"texts": ["goal match"]}).status_code == 200
        assert time.perf_counter() - started < 1.5  # nothing else was on its way: no 3 s wait
