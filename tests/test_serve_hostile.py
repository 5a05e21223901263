"""Hostile JSON at the server: what it parses and what it echoes are bounded, and a body that never ends times out.

Deep nesting and NaN/Infinity are refused (400) by a scan of the bytes before anything parses them; a 422 lists at
most MAX_ERRORS problems and echoes at most MAX_ECHO characters of each bad value, so a small request cannot get a
large answer (or a RecursionError, or a 500 from an echo that is not JSON); a chunked body that stops arriving gets
408 after --body-timeout seconds instead of holding its connection.
"""

import json
import socket
import time

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serve_http import start_server

from distilkit.serving.app import create_app
from distilkit.serving.engine import Engine
from distilkit.serving.guard import MAX_DEPTH, MAX_ECHO, MAX_ERRORS
from distilkit.serving.options import ServeConfig

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(topic_run):
    app = create_app(ServeConfig(model=str(topic_run)), Engine.load(str(topic_run), None))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 100_000])
def test_deep_nesting_is_400_before_parsing(client, depth):
    body = b'{"texts": ' + b"[" * depth + b"]" * depth + b"}"
    response = client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 400 and f"nests {depth + 1} levels deep" in response.json()["detail"]
    assert len(response.content) < 300


def test_nesting_inside_strings_does_not_count(client):
    text = "[[[{{{" * 50 + " goal match"
    response = client.post("/predict", content=json.dumps({"texts": [text]}).encode(), headers=JSON)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_400(client, literal):
    for body in (b'{"texts": ["goal", ' + literal + b"]}", b'{"texts": ["goal"], "x": ' + literal + b"}"):
        response = client.post("/predict", content=body, headers=JSON)
        assert response.status_code == 400 and "not a JSON number" in response.json()["detail"]
    quoted = json.dumps({"texts": [f"a text about NaN and {literal.decode()}"]}).encode()
    assert client.post("/predict", content=quoted, headers=JSON).status_code == 200  # in a string: just text


def test_a_422_echoes_a_bounded_part_of_what_was_sent(client):
    many = json.dumps({"texts": [[1, 2, 3]] * 3000}).encode()  # 3,000 bad elements
    response = client.post("/predict", content=many, headers=JSON)
    detail = response.json()["detail"]
    assert response.status_code == 422 and len(detail) == MAX_ERRORS + 1 and "more" in detail[-1]["msg"]
    assert len(response.content) < 5_000
    big = json.dumps({"texts": ["goal", {"a": "y" * 40_000}]}).encode()
    response = client.post("/predict", content=big, headers=JSON)
    assert response.status_code == 422 and len(response.content) < 3 * MAX_ECHO + 2_000


def test_a_surrogate_in_a_long_bad_value_is_still_echoed_readably(client):
    raw = b'{"texts": [{"k": "\\ud800' + b"x" * 5_000 + b'"}]}'
    response = client.post("/predict", content=raw, headers=JSON)
    assert response.status_code == 422 and "\\ud800" in response.text and len(response.content) < 2_000


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=JSONISH,
    depth=st.integers(0, 40),
    poison=st.sampled_from([b"", b"NaN", b"Infinity", b"-Infinity"]),
)
def test_fuzz_hostile_bodies_never_get_a_500_or_a_big_answer(client, value, depth, poison):
    inner = json.dumps(value).encode()
    body = b'{"texts": ' + b"[" * depth + inner + b"]" * depth + b"}"
    if poison:
        body = body[:-1] + b', "extra": ' + poison + b"}"
    response = client.post("/predict", content=body, headers=JSON)
    assert response.status_code in (200, 400, 413, 422), (response.status_code, body[:200])
    assert len(response.content) < 8_000 + 2 * len(body)
    response.json()  # always a JSON answer


def test_a_body_that_never_ends_gets_408_on_a_real_server(topic_run, tmp_path):
    server = start_server(topic_run, tmp_path / "server.log", "--body-timeout", "1")
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"tex\r\n'  # one chunk, then nothing more
            )
            started = time.monotonic()
            received = b""  # the head and the body may come in separate packets: read until the body is there
            while b"--body-timeout" not in received and time.monotonic() - started < 5:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
            answer = received.decode()
            assert "408" in answer.splitlines()[0] and "--body-timeout" in answer, answer
            assert time.monotonic() - started < 5
        deep = b'{"texts": ' + b"[" * 900 + b"]" * 900 + b"}"
        import httpx

        response = httpx.post(server.url + "/predict", content=deep, headers=JSON)
        assert response.status_code == 400
        assert httpx.post(server.url + "/predict", json={"texts": ["goal match"]}).status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in server.output() and "RecursionError" not in server.output()
