"""distilkit serve isolates bad requests: a request the model cannot take fails alone, never the requests that
shared its micro-batch; bad bodies are refused at the edge (400 malformed JSON, 413 too big, checked while it
is read, 415 not JSON, 422 a text that is not valid Unicode) before anything is queued."""

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import httpx
import pytest
from conftest import run_cli
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serve import metric
from test_serve_batching import _until, gated

from distilkit.serving.app import create_app
from distilkit.serving.batcher import MicroBatcher
from distilkit.serving.engine import Engine
from distilkit.serving.options import ServeConfig

NORMAL = [
    "goal match team today",
    "song album band new",
    "bread cheese soup old",
    "the coach saw the league",
    "we saw the concert and the singer",
    "a new recipe from the chef",
]
JSON = {"Content-Type": "application/json"}
SURROGATE = "good \ud800 movie"  # what json.loads makes of "good \\ud800 movie": valid JSON, not valid text


@pytest.fixture(scope="module")
def engine(topic_run):
    return Engine.load(str(topic_run), None)


@pytest.fixture(scope="module")
def expected(engine):
    """Each normal text's prediction alone, computed before any server runs (one thread on the tokenizer)."""
    return {text: engine.predict([{"text": text}])[0] for text in NORMAL}


@pytest.fixture(scope="module")
def client(topic_run, engine):
    app = create_app(ServeConfig(model=str(topic_run), max_texts=4, max_chars=200), engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def body(payload) -> bytes:
    """JSON as a client that escapes non-ASCII writes it (httpx's json= cannot encode a lone surrogate)."""
    return json.dumps(payload).encode()


def same_prediction(got: dict, want: dict) -> bool:
    return got["label"] == want["label"] and abs(got["score"] - want["score"]) < 1e-4


# --- the micro-batch ------------------------------------------------------------------------------------------


def test_batcher_runs_each_request_of_a_failed_batch_alone():
    calls = []

    def predict(rows):
        calls.append([r["text"] for r in rows])
        if any(r["text"] == "poison" for r in rows):
            raise ValueError("unreadable")
        return [{"echo": r["text"]} for r in rows]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=64, max_wait_ms=50)
        batcher.start()
        requests = [[{"text": f"{i}a"}, {"text": f"{i}b"}] for i in range(5)]
        requests.insert(2, [{"text": "fine"}, {"text": "poison"}])
        results = await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)
        await batcher.stop()
        return requests, results

    requests, results = asyncio.run(scenario())
    assert isinstance(results[2], ValueError)
    for rows, result in zip(requests, results):
        if rows is not requests[2]:
            assert result == [{"echo": r["text"]} for r in rows]
    assert len(calls[0]) == 12  # one batch of every text, then each request alone
    assert sorted(calls[1:]) == sorted([r["text"] for r in rows] for rows in requests)


async def _mixed_batch(app, poisoned: dict, normal: list[dict], edge: bool):
    """Hold the worker on a first request, queue `normal` and `poisoned` meanwhile so that they make one batch,
    then let it run; return (first, poisoned, normal responses, /metrics)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            gate, running = gated(app.state.batcher)
            post = lambda payload: c.post("/predict", content=body(payload), headers=JSON)  # noqa: E731
            first = asyncio.create_task(post({"texts": [NORMAL[0]]}))
            await _until(running.is_set)
            tasks = [asyncio.create_task(post(p)) for p in normal[:20] + [poisoned] + normal[20:]]
            queued = sum(len(p["texts"]) for p in normal) + (0 if edge else len(poisoned["texts"]))
            await _until(lambda: app.state.batcher.depth >= queued)
            gate.set()
            answers = await asyncio.gather(*tasks)
            return await first, answers[20], answers[:20] + answers[21:], (await c.get("/metrics")).text


class FailsOnBoom(Engine):
    """A model that fails on any batch holding the word "boom" (as a GPU assert would), not in the tokenizer."""

    def predict(self, rows):
        if any("boom" in r["text"] for r in rows):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return super().predict(rows)


@pytest.mark.parametrize(
    "poison, status, words",
    [
        ("surrogate", 422, ["cannot be read", "TypeError"]),  # the tokenizer refuses it: the request's fault
        ("model error", 500, ["the model failed on this request (RuntimeError)"]),  # the model fails on it
    ],
)
def test_a_poisoned_request_fails_alone_in_its_micro_batch(topic_run, engine, expected, poison, status, words):
    """The user's report: one request of 45 concurrent ones made 43 fail. Here the poison gets past the edge
    (its check is switched off, or the model itself fails on the text) into a batch of 46 requests."""
    app = create_app(
        ServeConfig(model=str(topic_run), max_batch=128, max_texts=4),
        FailsOnBoom(engine.trained) if poison == "model error" else engine,
    )
    normal = [{"texts": [NORMAL[i % 6], NORMAL[(i + 1) % 6]][: 1 + i % 2]} for i in range(45)]
    poisoned = {"texts": [NORMAL[1], SURROGATE if poison == "surrogate" else "boom boom"]}
    with mock.patch("distilkit.serving.app.text_problem", lambda value: None, create=True):  # no edge check
        first, bad, answers, metrics = asyncio.run(_mixed_batch(app, poisoned, normal, edge=False))
    assert first.status_code == 200
    for payload, answer in zip(normal, answers):
        assert answer.status_code == 200, answer.text
        for text, got in zip(payload["texts"], answer.json()["predictions"]):
            assert same_prediction(got, expected[text])
    assert bad.status_code == status
    for word in words:
        assert word in str(bad.json()["detail"])
    assert metric(metrics, "distilkit_batch_retries_total") == 1
    assert metric(metrics, "distilkit_retried_requests_total") == 46
    assert metric(metrics, f'distilkit_errors_total{{route="/predict",status="{status}"}}') == 1


def test_a_lone_surrogate_is_refused_at_the_edge_for_its_request_only(topic_run, engine, expected):
    app = create_app(ServeConfig(model=str(topic_run), max_batch=128, max_texts=4), engine)
    normal = [{"texts": [NORMAL[i % 6]]} for i in range(45)]
    first, bad, answers, metrics = asyncio.run(_mixed_batch(app, {"texts": ["goal", SURROGATE]}, normal, edge=True))
    assert bad.status_code == 422
    assert all(
        a.status_code == 200 and same_prediction(a.json()["predictions"][0], expected[p["texts"][0]])
        for p, a in zip(normal, answers)
    )
    assert metric(metrics, "distilkit_batch_retries_total") == 0  # it never reached a batch


# --- the edge -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, where, shown",
    [
        (b'{"texts": ["goal match", "good \\ud800 movie"]}', "texts[1]", "U+D800"),
        (b'{"texts": ["good \\udfff"]}', "texts[0]", "U+DFFF"),
        (b'{"texts": [["goal", "x \\ud83d y"]]}', "texts[0][1]", "U+D83D"),  # half of a pair of a text pair
        ('{"texts": ["goal", "\ud800"]}'.encode("utf-8", "surrogatepass"), "texts[1]", "U+D800"),  # raw, in UTF-8
    ],
)
def test_lone_surrogates_get_422_naming_the_text(client, raw, where, shown):
    response = client.post("/predict", content=raw, headers=JSON)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["msg"].startswith(f"{where} cannot be read: ") and shown in error["msg"]
    assert "surrogate" in error["msg"] and error["loc"][:3] == ["body", "texts", int(where[6])]
    assert client.post("/predict", json={"texts": ["goal match"]}).status_code == 200


@pytest.mark.parametrize(
    "raw", [b'{"texts": "\\ud800"}', b'{"\\ud800": 1, "texts": ["goal"]}', b'{"texts": [["\\ud800", 1]]}']
)
def test_surrogates_elsewhere_in_a_bad_body_still_get_a_readable_422(client, raw):
    response = client.post("/predict", content=raw, headers=JSON)
    assert response.status_code == 422 and "\\ud" in response.text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"texts": ["goal"',
        b"{texts: ['goal']}",
        b'{"texts": ["goal"]} trailing',
        b'{"texts": ["goal",]}',
        b"not json at all",
    ],
)
def test_malformed_json_gets_400(client, raw):
    response = client.post("/predict", content=raw, headers=JSON)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the body is not valid JSON: ")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x", None],
)
def test_a_body_that_is_not_sent_as_json_gets_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", content=body({"texts": ["goal match"]}), headers=headers)
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.json()["detail"]
    text = client.get("/metrics").text
    assert metric(text, 'distilkit_errors_total{route="/predict",status="415"}') >= 1  # named by its route
    for ok in ("application/json; charset=utf-8", "application/vnd.api+json"):
        answer = client.post("/predict", content=body({"texts": ["goal"]}), headers={"Content-Type": ok})
        assert answer.status_code == 200


def test_an_oversize_body_gets_413_before_it_is_parsed(client):
    limit = 4 * 2 * 200 * 12 + 64 * 1024  # the default: 4 texts x 2 (pairs) x 200 characters x 12 bytes + 64 KiB
    padded = b'{"texts": ["goal match"]' + b" " * limit + b"}"  # valid JSON, too big
    response = client.post("/predict", content=padded, headers=JSON)
    assert response.status_code == 413 and "--max-body" in response.json()["detail"]
    chunks = (padded[i : i + 4096] for i in range(0, len(padded), 4096))  # chunked: no Content-Length at all
    response = client.post("/predict", content=chunks, headers=JSON)
    assert response.status_code == 413 and f"more than {limit} bytes" in response.json()["detail"]
    fits = b'{"texts": ["goal match"]' + b" " * (limit - 100) + b"}"
    assert client.post("/predict", content=fits, headers=JSON).status_code == 200
    assert client.get("/metadata").json()["max_body"] == limit


def test_max_body_sets_the_limit(topic_run, engine, capsys):
    with TestClient(create_app(ServeConfig(model=str(topic_run), max_body=100), engine)) as c:
        assert c.get("/metadata").json()["max_body"] == 100
        small = b'{"texts": ["goal match"]}'
        assert c.post("/predict", content=small + b" " * (100 - len(small)), headers=JSON).status_code == 200
        response = c.post("/predict", content=small + b" " * (101 - len(small)), headers=JSON)
    assert response.status_code == 413 and "at most 100 bytes (--max-body)" in response.json()["detail"]
    code, _, err = run_cli(["serve", topic_run, "--max-body", "0"], capsys)
    assert code == 2 and "--max-body 0: must be an integer ≥ 1" in err and err.count("\n") == 1


def test_a_lying_content_length_does_not_lift_the_limit(topic_run, engine):
    """Raw ASGI, so the declared length can lie: 30 bytes declared, ~10x the limit sent in 1 KiB chunks."""
    app = create_app(ServeConfig(model=str(topic_run), max_texts=1, max_chars=10), engine)
    limit = 1 * 2 * 10 * 12 + 64 * 1024
    payload = b'{"texts": ["goal match"]' + b" " * (10 * limit) + b"}"
    chunks = [payload[i : i + 1024] for i in range(0, len(payload), 1024)]
    read, sent = [], []

    async def receive():
        read.append(1)
        return {"type": "http.request", "body": chunks[len(read) - 1], "more_body": len(read) < len(chunks)}

    async def send(message):
        sent.append(message)

    async def scenario():
        async with app.router.lifespan_context(app):
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/predict",
                "raw_path": b"/predict",
                "query_string": b"",
                "root_path": "",
                "client": ("test", 1),
                "server": ("test", 80),
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"30")],
            }
            await app(scope, receive, send)

    asyncio.run(scenario())
    assert sent[0]["status"] == 413
    assert len(read) <= limit // 1024 + 1  # it stopped reading at the limit


# --- fuzz -----------------------------------------------------------------------------------------------------

MAX_CHARS = 2000
poison = st.one_of(
    st.builds(
        lambda a, s, b: a + s + b,
        st.sampled_from(NORMAL),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        st.sampled_from(["", " movie", "\x00"]),
    ),  # lone surrogates
    st.sampled_from(
        [
            "\x00",
            "goal\x00match",
            "",
            "   ",
            "\t\n",
            "\u200b",
            "\ufeff",
            "\U0010ffff",
            "e\u0301" * 50,
            "\ufffe\uffff",
            "\u202e\u2066 rtl",
            "\x1b[31m red",
        ]
    ),  # NUL, empty, weird unicode
    st.text(st.characters(exclude_categories=()), max_size=40),  # any code point, surrogates included
    st.integers(MAX_CHARS - 10, MAX_CHARS).map(lambda n: ("goal " * n)[:n]),  # huge, within the limit
)


@st.composite
def requests(draw):
    """2 to 12 requests, some with a poisoned text among normal ones; the flag: is the edge check on."""
    out = []
    for _ in range(draw(st.integers(2, 12))):
        texts = draw(st.lists(st.sampled_from(NORMAL), min_size=1, max_size=3))
        bad = draw(st.booleans()) and draw(st.lists(poison, min_size=1, max_size=2))
        if bad:
            texts = texts[:2] + bad
        out.append((bool(bad), texts[:4]))
    return out, draw(st.booleans())


def test_fuzz_normal_requests_always_get_their_answers(topic_run, engine, expected):
    app = create_app(ServeConfig(model=str(topic_run), max_wait_ms=20, max_texts=4, max_chars=MAX_CHARS), engine)
    with TestClient(app, raise_server_exceptions=False) as c, ThreadPoolExecutor(12) as pool:

        @given(case=requests())
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            reqs, edge = case
            off = mock.patch("distilkit.serving.app.text_problem", lambda value: None, create=True)
            with off if not edge else contextlib.nullcontext():  # off: the batcher's isolation is all there is
                answers = list(
                    pool.map(lambda r: c.post("/predict", content=body({"texts": r[1]}), headers=JSON), reqs)
                )
            for (bad, texts), answer in zip(reqs, answers):
                if bad:
                    assert answer.status_code in (200, 422), answer.text  # the request's fault, never a 500
                    answer.json()
                else:
                    assert answer.status_code == 200, answer.text
                    assert all(same_prediction(p, expected[t]) for p, t in zip(answer.json()["predictions"], texts))

        check()
