"""distilkit serve, in process: every route and error (TestClient), API keys, metrics, truncation, parity with
`distilkit predict`, token-classification spans, the ONNX backend and the CLI's one-line errors.
Micro-batching, the queue limit and draining are in test_serve_batching.py."""

import asyncio
import shutil

import httpx
import pytest
from conftest import run_cli
from fastapi.testclient import TestClient

from distilkit.data.dataset import TOK
from distilkit.data.encode import collator_for, encode_rows
from distilkit.errors import DistilkitError
from distilkit.inference import predict as predict_module
from distilkit.inference.loading import length_groups, load_trained, run_batches, softmax
from distilkit.inference.predict import entity_spans
from distilkit.serving.app import create_app
from distilkit.serving.engine import Engine, resolve_backend
from distilkit.serving.options import ServeConfig

TEXTS = ["goal match team today", "song album band new", "bread cheese soup old"]


@pytest.fixture(scope="module")
def engine(topic_run):
    return Engine.load(str(topic_run), None)


@pytest.fixture(scope="module")
def client(topic_run, engine):
    with TestClient(create_app(ServeConfig(model=str(topic_run), max_texts=4, max_chars=200), engine)) as c:
        yield c


def reference(trained, rows: list[dict]) -> list[dict]:
    """Labels and scores (or tags) through the training and evaluation path (`datasets` encoding, `run_batches`),
    which shares no code with the server's tokenizing, padding and decoding."""
    if trained.task == TOK:
        inputs = [{"tokens": r["text"].split()} for r in rows]
    else:
        inputs = [{k: r[k] for k in ("text", "text_pair") if k in r} for r in rows]
    dataset, _ = encode_rows(inputs, trained.task, trained.tokenizer, 128, trained.label2id, trained.regression)
    logits = run_batches(trained.model, dataset, collator_for(trained.task, trained.tokenizer), 64)
    out = []
    for i, lg in enumerate(logits):
        if trained.task == TOK:
            tags = {}
            for pos, w in enumerate(dataset[i]["word_ids"]):
                if w >= 0 and w not in tags:
                    tags[w] = trained.labels[int(lg[pos].argmax())]
            out.append({"tokens": inputs[i]["tokens"], "tags": [tags[w] for w in sorted(tags)]})
        else:
            probs = softmax(lg)
            out.append({"label": trained.labels[int(probs.argmax())], "score": float(probs.max())})
    return out


def metric(text: str, name: str) -> float:
    """The value of one Prometheus sample line, e.g. 'distilkit_requests_total{route="/predict",status="200"}'."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def test_health_metadata_docs_and_playground(client, topic_run):
    assert client.get("/health").json() == {"status": "ready"}
    meta = client.get("/metadata").json()
    assert meta["labels"] == ["food", "music", "sport"] and meta["task"] == "sequence-classification"
    assert meta["backend"] == "torch" and meta["model"] == str(topic_run / "model")
    assert meta["size_bytes"] > 10_000 and meta["parameters"] > 1000 and meta["max_length"] == 128
    assert (meta["max_texts"], meta["max_chars"], meta["api_key_required"]) == (4, 200, False)
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and 'id="predict"' in page.text


def test_predict_matches_the_evaluation_path(client, engine):
    response = client.post("/predict", json={"texts": TEXTS})
    assert response.status_code == 200
    body = response.json()
    assert body["task"] == "sequence-classification" and body["backend"] == "torch" and body["latency_ms"] > 0
    expected = reference(engine.trained, [{"text": t} for t in TEXTS])
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in expected] == ["sport", "music", "food"]
    for got, want in zip(body["predictions"], expected):
        assert got["truncated"] is False and "text_pair" not in got
        assert abs(got["score"] - want["score"]) < 1e-5 and set(got["scores"]) == {"food", "music", "sport"}


def test_length_groups_bound_padding():
    lengths = [5, 6, 7, 100, 6, 50, 5]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert [3] in groups and [5] in groups  # the long texts do not pad the short ones
    for g in groups:
        assert len(g) * max(lengths[i] for i in g) <= 1.25 * sum(lengths[i] for i in g)


def test_mixed_lengths_in_one_batch_match_one_by_one(engine, monkeypatch):
    rows = [{"text": t} for t in ["goal", "song album band new " * 20, "bread cheese", "goal match team today " * 5]]
    shapes = []
    real = predict_module.model_logits
    monkeypatch.setattr(
        predict_module, "model_logits", lambda m, b: shapes.append(tuple(b["input_ids"].shape)) or real(m, b)
    )
    batched = engine.predict(rows)
    assert len(shapes) == 3 and sum(s[0] for s in shapes) == 4  # short pair, medium, long: three passes
    for got, row in zip(batched, rows):
        alone = engine.predict([row])[0]
        assert got["label"] == alone["label"] and abs(got["score"] - alone["score"]) < 1e-5


def test_pairs_and_single_texts_in_one_request(client, engine):
    texts = [["goal match", "team coach"], "soup chef kitchen", ["song band", "guitar"]]
    body = client.post("/predict", json={"texts": texts}).json()
    assert [p.get("text_pair") for p in body["predictions"]] == ["team coach", None, "guitar"]
    pair = reference(engine.trained, [{"text": "goal match", "text_pair": "team coach"}])[0]
    assert abs(body["predictions"][0]["score"] - pair["score"]) < 1e-5


def test_long_texts_are_truncated_and_say_so(topic_run, engine):
    cfg = ServeConfig(model=str(topic_run), max_length=8, top_k=2)
    with TestClient(create_app(cfg, Engine(engine.trained, max_length=8, top_k=2))) as c:
        body = c.post("/predict", json={"texts": ["goal match", "goal match team coach league score a b c"]}).json()
        assert c.get("/metadata").json()["max_length"] == 8
    assert [p["truncated"] for p in body["predictions"]] == [False, True]
    assert [len(p["scores"]) for p in body["predictions"]] == [2, 2]  # --top-k


@pytest.mark.parametrize(
    "payload, status, words",
    [
        ({"texts": ["a b"] * 5}, 413, ["5 texts", "at most 4", "--max-texts"]),
        ({"texts": ["goal " * 50]}, 413, ["texts[0] has 250 characters", "--max-chars"]),
        ({"texts": [["goal", "x" * 201]]}, 413, ["201 characters"]),
        ({"texts": ["goal", "   "]}, 422, ["texts[1] is empty"]),
        ({"texts": []}, 422, ["at least 1 item"]),
        ({"texts": "goal match"}, 422, ["list"]),
        ({"texts": [42]}, 422, ["string"]),
        ({"texts": ["goal"], "extra": 1}, 422, ["extra"]),
        ({}, 422, ["missing"]),
    ],
)
def test_limits_and_bad_requests(client, payload, status, words):
    response = client.post("/predict", json=payload)
    assert response.status_code == status
    text = str(response.json()["detail"])
    for word in words:
        assert word in text


def test_metrics_count_requests_errors_batches_and_queue(client):
    before = client.get("/metrics").text
    ok = 'distilkit_requests_total{route="/predict",status="200"}'
    too_big = 'distilkit_errors_total{route="/predict",status="413"}'
    old_ok = metric(before, ok)
    old_err = metric(before, too_big) if too_big in before else 0.0
    client.post("/predict", json={"texts": TEXTS})
    client.post("/predict", json={"texts": ["x"] * 9})
    client.get("/no-such-route")
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert metric(text, ok) == old_ok + 1 and metric(text, too_big) == old_err + 1
    assert metric(text, 'distilkit_requests_total{route="unmatched",status="404"}') >= 1
    assert metric(text, 'distilkit_request_latency_seconds_count{route="/predict"}') >= old_ok + 2
    assert metric(text, "distilkit_batch_size_count") >= 1 and metric(text, "distilkit_predicted_texts_total") >= 3
    assert metric(text, "distilkit_queue_depth") == 0


def test_api_key_on_every_route_but_health(topic_run, engine, monkeypatch):
    monkeypatch.delenv("DISTILKIT_API_KEY", raising=False)
    with TestClient(create_app(ServeConfig(model=str(topic_run), api_key="s3cret"), engine)) as c:
        for method, path in (("post", "/predict"), ("get", "/metadata"), ("get", "/metrics")):
            kwargs = {"json": {"texts": ["goal"]}} if method == "post" else {}
            missing = getattr(c, method)(path, **kwargs)
            assert missing.status_code == 401 and "API key" in missing.json()["detail"], path
            assert missing.headers["www-authenticate"] == "Bearer"
            assert getattr(c, method)(path, headers={"X-API-Key": "wrong"}, **kwargs).status_code == 401
            assert getattr(c, method)(path, headers={"Authorization": "Bearer s3cret"}, **kwargs).status_code == 200
            assert getattr(c, method)(path, headers={"X-API-Key": "s3cret"}, **kwargs).status_code == 200
            both = {"X-API-Key": "s3cret", "Authorization": "Basic czNjcmV0"}  # a wrong one is not outvoted
            assert getattr(c, method)(path, headers=both, **kwargs).status_code == 401
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200
        assert c.get("/metadata", headers={"X-API-Key": "s3cret"}).json()["api_key_required"] is True
    monkeypatch.setenv("DISTILKIT_API_KEY", "from-env")
    with TestClient(create_app(ServeConfig(model=str(topic_run)), engine)) as c:
        assert c.post("/predict", json={"texts": ["goal"]}).status_code == 401
        assert c.post("/predict", json={"texts": ["goal"]}, headers={"X-API-Key": "from-env"}).status_code == 200


def test_lifespan_loads_the_model_when_not_given(topic_run):
    app = create_app(ServeConfig(model=str(topic_run)))

    async def before_startup():  # httpx's ASGI transport does not run the lifespan: the model is not loaded
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.get("/health"), await client.post("/predict", json={"texts": ["goal"]})

    health, predict = asyncio.run(before_startup())
    assert health.status_code == 503 and health.json() == {"status": "loading"}
    assert predict.status_code == 503 and predict.headers["retry-after"] == "1"
    assert app.state.engine is None
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ready"}
        assert c.post("/predict", json={"texts": ["goal match"]}).json()["predictions"][0]["label"] == "sport"
    assert app.state.status == "stopping" and app.state.batcher.worker.done()


# --- token classification, ONNX backend, CLI --------------------------------------------------------------------


def test_entity_spans_group_bio_tags_with_character_offsets():
    text = "Alice  visited New York, then Rome"
    words = [(0, 5), (7, 14), (15, 18), (19, 24), (25, 29), (30, 34)]
    tags = ["B-PER", "O", "B-LOC", "I-LOC", "O", "I-LOC"]
    spans = entity_spans(text, words, tags, [0.9, 0.8, 0.6, 0.8, 0.9, 0.5])
    assert [(e["label"], e["text"], e["start"], e["end"]) for e in spans] == [
        ("PER", "Alice", 0, 5),
        ("LOC", "New York,", 15, 24),
        ("LOC", "Rome", 30, 34),
    ]
    assert spans[1]["score"] == pytest.approx(0.7)
    assert entity_spans("a b", [(0, 1), (2, 3)], ["B-PER", "I-LOC"], [1, 1])[1]["label"] == "LOC"  # type change
    assert entity_spans("a b", [(0, 1), (2, 3)], ["NOUN", None], [1, 1]) == []  # POS tags, truncated word


def test_token_classification_tags_and_entities(ner_run):
    with TestClient(create_app(ServeConfig(model=str(ner_run)))) as c:
        texts = ["alice  visited new york", "bob met   paris", "paris met bob in new york " * 8]  # 2 length groups
        body = c.post("/predict", json={"texts": texts}).json()
        pair = c.post("/predict", json={"texts": [["alice", "bob"]]})
        assert c.get("/metadata").json()["task"] == "token-classification"
    expected = reference(load_trained(str(ner_run)), [{"text": t} for t in texts])
    for text, got, want in zip(texts, body["predictions"], expected):
        assert got["tokens"] == want["tokens"] == text.split() and got["tags"] == want["tags"]
        assert got["truncated"] is False and "label" not in got
        for entity in got["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"] and 0 < entity["score"] <= 1
    assert any(e["label"] == "LOC" for p in body["predictions"] for e in p["entities"])  # a learnt tag set
    assert pair.status_code == 422 and "token-classification model takes single texts" in str(pair.json()["detail"])


def test_onnx_backend_serves_the_runs_export(topic_run, engine, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(topic_run, run)
    code, _, err = run_cli(["serve", run, "--backend", "onnx", "--port", "1"], capsys)
    assert code == 2 and f"distilkit export --model {run} first" in err and err.count("\n") == 1
    code, _, err = run_cli(["export", "--model", run], capsys)
    assert code == 0, err
    assert resolve_backend(str(run), "onnx") == (str(run / "onnx"), "onnx")
    assert resolve_backend(str(run / "onnx"), None) == (str(run / "onnx"), "onnx")
    with TestClient(create_app(ServeConfig(model=str(run), backend="onnx"))) as c:
        meta = c.get("/metadata").json()
        body = c.post("/predict", json={"texts": TEXTS}).json()
    assert meta["backend"] == "onnx" and meta["model"] == str(run / "onnx") and meta["size_bytes"] > 10_000
    torch_out = engine.predict([{"text": t} for t in TEXTS])
    for got, want in zip(body["predictions"], torch_out):
        assert got["label"] == want["label"] and abs(got["score"] - want["score"]) < 1e-4


@pytest.mark.parametrize(
    "args, words",
    [
        (["serve", "{onnx}", "--backend", "torch"], ["is an ONNX folder", "--backend onnx"]),
        (["serve", "--model", "{missing}", "--backend", "onnx"], ["folder not found"]),
        (["serve", "{run}", "--max-queue", "2", "--max-texts", "5"], ["--max-queue 2", "raise --max-queue"]),
        (["serve", "{run}", "--max-batch", "0"], ["--max-batch 0: must be an integer ≥ 1"]),
        (["serve", "{run}", "--port", "70000"], ["--port 70000"]),
        (["serve"], ["no model given"]),
    ],
)
def test_cli_errors_are_one_line(topic_run, tmp_path, capsys, args, words):
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "model.onnx").write_bytes(b"")
    paths = {"onnx": onnx, "missing": tmp_path / "nope", "run": topic_run}
    code, _, err = run_cli([a.format(**paths) for a in args], capsys)
    assert code == 2 and err.startswith("distilkit: error:") and err.count("\n") == 1, err
    for word in words:
        assert word in err


def test_a_pipeline_folder_names_the_models_it_holds(tmp_path):
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    int8 = tmp_path / "int8" / "3L-dynamic"
    int8.mkdir(parents=True)
    (int8 / "distilkit_onnx.json").write_text("{}")
    (tmp_path / "students" / "3L").mkdir(parents=True)
    with pytest.raises(DistilkitError, match="pipeline") as err:
        resolve_backend(str(tmp_path), None)
    assert f"{int8}, {tmp_path / 'students' / '3L'}" in str(err.value)
    onnx = tmp_path / "onnx" / "3L"  # the pipeline's export of students/3L
    onnx.mkdir(parents=True)
    (onnx / "distilkit_onnx.json").write_text("{}")
    assert resolve_backend(str(tmp_path / "students" / "3L"), "onnx") == (str(onnx), "onnx")


def test_engine_load_refuses_a_model_without_head(tiny_model):
    with pytest.raises(DistilkitError, match="no sequence- or token-classification head"):
        Engine.load(str(tiny_model), None)
