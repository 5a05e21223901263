"""Embedding models: pooling, the sentence losses, retrieval scores (golden values), and distil → evaluate on tiny
sentence-transformers models, with the bad inputs refused in one line."""

import json
import math

import pytest
import torch
from conftest import run_cli, topic_rows, write_jsonl

from distilkit.embeddings.model import EmbeddingModel, load_embedding_model, pool, save_sentence_transformer
from distilkit.embeddings.retrieval import per_query_scores
from distilkit.errors import DistilkitError
from distilkit.losses import LOSSES

TEXTS = ["the bank raised its rates", "a striker scored in the final", "new phones at the fair", "a vote on the law"]


def st_vectors(folder, texts):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True)


def own_vectors(folder, texts):
    model, tokenizer, _ = load_embedding_model(str(folder))
    return model.encode(texts, tokenizer, 64)


@pytest.fixture(scope="session")
def tiny_st(tiny_model, tmp_path_factory):
    """The tiny random BERT as a sentence-transformers folder: mean pooling, normalised."""
    model, tokenizer, how = load_embedding_model(str(tiny_model), "mean")
    assert how == "encoder, mean pooling, normalised"
    folder = tmp_path_factory.mktemp("st") / "teacher"
    save_sentence_transformer(model, tokenizer, folder)
    return folder


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "texts.txt"
    path.write_text("".join(r["text"] + "\n" for r in topic_rows(120, seed=3)))
    return path


def test_pool_formulas_on_a_padded_batch():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]])  # the third token is padding
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, -1.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0]]
    assert pool(hidden, mask, "max").tolist() == [[3.0, 2.0]]


def test_sentence_losses_against_hand_computation():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # ‖s − t‖² per text: 2 and 1 → mean 1.5; cos: 0 and 1 → mean of (1 − cos) 0.5
    assert LOSSES["sentence_mse"](s, t).item() == pytest.approx(1.5)
    assert LOSSES["sentence_cosine"](s, t).item() == pytest.approx(0.5)


def test_retrieval_scores_per_query():
    # query 0: its one answer (doc 2) ranked 2nd; query 1: answers 0 and 1 ranked 1st and 3rd
    similarity = torch.tensor([[0.5, 0.1, 0.8, 0.9], [0.9, 0.2, 0.1, 0.5]])
    scores = per_query_scores(similarity, [[2], [0, 1]])
    assert scores["mrr@10"].tolist() == [0.5, 1.0]
    assert scores["recall@1"].tolist() == [0.0, 0.5]
    assert scores["recall@10"].tolist() == [1.0, 1.0]
    ideal = 1 + 1 / math.log2(3)
    assert scores["ndcg@10"][0] == pytest.approx(1 / math.log2(3))
    assert scores["ndcg@10"][1] == pytest.approx((1 + 1 / math.log2(4)) / ideal)


def test_saved_folder_gives_sentence_transformers_the_same_vectors(tiny_st):
    theirs, ours = st_vectors(tiny_st, TEXTS), own_vectors(tiny_st, TEXTS)
    assert torch.nn.functional.cosine_similarity(theirs, ours).min().item() >= 0.9999
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)


def test_distil_an_embedding_model_then_evaluate_retrieval(tiny_st, corpus, tmp_path, capsys):
    out = tmp_path / "student"
    args = ["distill", "--task", "embedding", "--teacher", tiny_st, "--student", "1", "--data", corpus]
    code, stdout, _ = run_cli(args + ["--epochs", "2", "--lr", "1e-3", "--batch-size", "8", "--output", out], capsys)
    assert code == 0, stdout
    assert "1·sentence_mse" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "embedding" and metrics["dimensions"] == 32
    assert -1 <= metrics["dev"]["similarity_spearman"] <= 1 and metrics["dev"]["texts"] == 6
    theirs, ours = st_vectors(out / "model", TEXTS), own_vectors(out / "model", TEXTS)
    assert torch.nn.functional.cosine_similarity(theirs, ours).min().item() >= 0.9999
    card = (out / "model" / "README.md").read_text()
    assert "pipeline_tag: sentence-similarity" in card and "SentenceTransformer(" in card

    rows = [{"query": r["text"].split()[0], "positive": r["text"]} for r in topic_rows(30, seed=5)]
    queries = write_jsonl(tmp_path / "queries.jsonl", rows)
    code, stdout, _ = run_cli(["evaluate", "--model", out, "--data", queries, "--compare", tiny_st, "--json"], capsys)
    assert code == 0, stdout
    result = json.loads(stdout)
    low, high = result["intervals"]["ndcg@10"]
    assert low <= result["ndcg@10"] <= high
    assert result["paired"]["compared_with"] == str(tiny_st)
    assert result["retention"] == pytest.approx(result["ndcg@10"] / result["paired"]["compared_score"], abs=1e-3)


def test_a_narrower_student_learns_through_a_projection(tiny_st, corpus, tmp_path, capsys):
    out = tmp_path / "narrow"
    args = ["distill", "--task", "embedding", "--teacher", tiny_st, "--student", "1L-16H-2A-32F", "--data", corpus]
    losses = ["--method", "tinybert", "--intermediate-epochs", "1", "--epochs", "1", "--batch-size", "16"]
    code, stdout, _ = run_cli(args + losses + ["--output", out], capsys)
    assert code == 0, stdout
    assert "intermediate: 1·embedding_mse + 1·hidden_mse + 1·attention_mse; prediction: 1·sentence_mse" in stdout
    model, _, _ = load_embedding_model(str(out / "model"))
    assert model.width == 16  # the projection to the teacher's 32 was for training only
    assert "cosine_to_teacher" not in json.loads((out / "metrics.json").read_text())["dev"]


def test_bad_input_is_one_line(tiny_st, tiny_model, topic_run, corpus, tmp_path, capsys):
    base = ["distill", "--task", "embedding", "--student", "1", "--data", corpus, "--output", tmp_path / "x"]
    code, _, err = run_cli(base + ["--teacher", topic_run], capsys)
    assert code != 0 and "a classifier" in err and "not an embedding model" in err
    code, _, err = run_cli(base + ["--teacher", tiny_model], capsys)
    assert code != 0 and "--pooling mean|cls|max" in err
    code, _, err = run_cli(base + ["--teacher", tiny_model, "--pooling", "median"], capsys)
    assert code != 0 and "median" in err
    code, _, err = run_cli(base + ["--teacher", tiny_st, "--losses", "{kd: 1}"], capsys)
    assert code != 0 and "no labels or class logits" in err
    assert not (tmp_path / "x").exists()
    no_positive = write_jsonl(tmp_path / "q.jsonl", [{"query": "bank", "positive": "the bank"}, {"query": "goal"}])
    code, _, err = run_cli(["evaluate", "--model", tiny_st, "--data", no_positive], capsys)
    assert code != 0 and "row 2" in err and "has no positive" in err
    code, _, err = run_cli(["evaluate", "--model", tiny_st, "--data", no_positive, "--compare", topic_run], capsys)
    assert code != 0 and "not an embedding model" in err


def test_embedding_model_keeps_the_encoder_config(tiny_model):
    model, _, _ = load_embedding_model(str(tiny_model), "cls")
    assert isinstance(model, EmbeddingModel) and model.config.hidden_size == 32 and model.pooling == "cls"
    with pytest.raises(DistilkitError, match="choose one of mean, cls, max"):
        load_embedding_model(str(tiny_model), "sum")


def test_a_pretrained_student_with_its_own_tokenizer(tiny_st, corpus, tmp_path, capsys):
    """A pretrained embedding student whose tokenizer differs (the MiniLM student of an MPNet teacher, in small):
    the teacher reads its own tokens, through the cache; the sentence loss needs no token alignment."""
    from conftest import _vocab
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = _vocab()
    vocab = words[:5] + list(reversed(words[5:]))  # the same words, other ids
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(1)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    config.intermediate_size = 32
    student = tmp_path / "pretrained"
    save_sentence_transformer(EmbeddingModel(BertModel(config), "mean"), tokenizer, student)
    base = ["distill", "--task", "embedding", "--teacher", tiny_st, "--student", student, "--data", corpus]
    code, _, err = run_cli(base + ["--output", tmp_path / "refused"], capsys)
    assert code != 0 and "tokenizer differs" in err
    code, stdout, _ = run_cli(base + ["--separate-tokenization", "--epochs", "1", "--output", tmp_path / "s"], capsys)
    assert code == 0, stdout
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["dimensions"] == 16


@pytest.fixture(scope="module")
def exported(tiny_st, tmp_path_factory):
    """The tiny sentence-transformers model exported to ONNX, and that export quantized (dynamic int8)."""
    root = tmp_path_factory.mktemp("exported")
    assert run_cli(["export", "--model", tiny_st, "--output", root / "onnx"])[0] == 0
    assert run_cli(["quantize", "--model", root / "onnx", "--output", root / "int8"])[0] == 0
    return root / "onnx", root / "int8"


def test_export_puts_the_pooling_in_the_graph_and_int8_keeps_the_vectors(tiny_st, exported):
    import onnxruntime as ort

    onnx_folder, int8_folder = exported
    for folder in exported:  # a sentence-transformers folder with the graph at the top, no torch weights
        assert (folder / "modules.json").exists() and (folder / "1_Pooling" / "config.json").exists()
        assert not list(folder.glob("*.safetensors"))
        outputs = [o.name for o in ort.InferenceSession(str(folder / "model.onnx")).get_outputs()]
        assert outputs == ["last_hidden_state", "sentence_embedding"]
        assert "pipeline_tag: sentence-similarity" in (folder / "README.md").read_text()
    meta = json.loads((onnx_folder / "distilkit_onnx.json").read_text())
    assert meta["task"] == "embedding" and meta["parity"]["min_cosine"] >= 0.9999
    report = json.loads((int8_folder / "quantize_report.json").read_text())
    assert report["size_bytes"]["int8"] < report["size_bytes"]["fp32"]
    from distilkit.inference.embedding import load_embedder

    reference = own_vectors(tiny_st, TEXTS)
    for folder, least in ((onnx_folder, 0.9999), (int8_folder, 0.9)):
        model, tokenizer, _ = load_embedder(str(folder))
        cosine = torch.nn.functional.cosine_similarity(model.encode(TEXTS, tokenizer, 64), reference)
        assert cosine.min().item() >= least


def test_serve_embed_like_text_embeddings_inference(exported, topic_run):
    from fastapi.testclient import TestClient

    from distilkit.inference.embedding import load_embedder
    from distilkit.serving.app import create_app
    from distilkit.serving.options import ServeConfig

    folder = exported[0]
    with TestClient(create_app(ServeConfig(model=str(folder), max_length=64))) as client:
        vectors = client.post("/embed", json={"inputs": TEXTS})
        assert vectors.status_code == 200 and len(vectors.json()) == len(TEXTS)
        model, tokenizer, _ = load_embedder(str(folder))
        cosine = torch.nn.functional.cosine_similarity(torch.tensor(vectors.json()), model.encode(TEXTS, tokenizer, 64))
        assert cosine.min().item() >= 0.9999
        one = client.post("/embed", json={"inputs": TEXTS[0]}).json()
        assert len(one) == 1 and sum(x * x for x in one[0]) == pytest.approx(1, abs=1e-4)
        raw = client.post("/embed", json={"inputs": TEXTS[0], "normalize": False}).json()
        assert sum(x * x for x in raw[0]) != pytest.approx(1, abs=1e-3)
        long = " ".join(["bank"] * 100)
        assert client.post("/embed", json={"inputs": long}).status_code == 413
        assert client.post("/embed", json={"inputs": long, "truncate": True}).status_code == 200
        assert client.post("/embed", json={"inputs": [""]}).status_code == 422
        assert client.post("/predict", json={"texts": ["x"]}).status_code == 400
        assert client.get("/metadata").json()["dimensions"] == 32
    with TestClient(create_app(ServeConfig(model=str(topic_run)))) as client:
        refused = client.post("/embed", json={"inputs": "x"})
        assert refused.status_code == 400 and "POST /predict" in refused.json()["detail"]


def test_predict_writes_vectors(exported, tmp_path, capsys):
    import numpy as np

    code, stdout, _ = run_cli(["predict", "--model", exported[1], *TEXTS[:2]], capsys)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0 and [line["text"] for line in lines] == TEXTS[:2] and len(lines[0]["embedding"]) == 32
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    assert run_cli(["predict", "--model", exported[1], "--file", texts, "--output", tmp_path / "v.npy"])[0] == 0
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    # dynamic int8 quantizes activations per batch, so the two calls (other batches) agree closely, not exactly
    first = torch.nn.functional.cosine_similarity(
        torch.tensor(vectors[:2]), torch.tensor([li["embedding"] for li in lines])
    )
    assert first.min().item() >= 0.999


def test_classification_and_clustering_by_embeddings(tiny_st, tmp_path, capsys):
    rows = [{"text": r["text"], "label": r["label"]} for r in topic_rows(45, seed=7)]
    labelled = write_jsonl(tmp_path / "labelled.jsonl", rows)
    code, stdout, _ = run_cli(["evaluate", "--model", tiny_st, "--data", labelled, "--json"], capsys)
    assert code == 0, stdout
    result = json.loads(stdout)
    found = result["classification"]
    assert found["examples"] == 45 and 0 <= found["accuracy"] <= 1
    low, high = found["intervals"]["accuracy"]
    assert low <= found["accuracy"] <= high
    low, high = result["clustering"]["interval"]
    assert low <= result["clustering"]["v_measure"] <= high
    assert "ndcg@10" not in result  # no retrieval task in a file of labelled texts
    rows[3]["label"] = ""
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    code, _, err = run_cli(["evaluate", "--model", tiny_st, "--data", bad], capsys)
    assert code != 0 and "row 4 needs a text" in err


def test_bench_times_embedding_models(tiny_st, exported, capsys):
    code, stdout, _ = run_cli(
        ["bench", tiny_st, *exported, "--rounds", "2", "--seq-len", "16", "--batch-size", "4", "--memory"], capsys
    )
    assert code == 0, stdout
    rows = [line.split() for line in stdout.splitlines() if line.startswith(("teacher", "onnx", "int8"))]
    assert [r[1] for r in rows] == ["torch", "onnx", "onnx"] and rows[2][2] == "dynamic"
    assert all(float(r[8]) > 0 for r in rows)  # peak memory of a process that loaded the model and ran a batch


def test_static_int8_calibrates_on_the_texts_given(exported, corpus, tmp_path, capsys):
    base = ["quantize", "--model", exported[0], "--method", "static", "--output", tmp_path / "static"]
    code, _, err = run_cli(base, capsys)
    assert code != 0 and "give --data" in err and not (tmp_path / "static").exists()
    code, stdout, _ = run_cli(base + ["--data", corpus, "--calibration-samples", "20"], capsys)
    assert code == 0, stdout
    report = json.loads((tmp_path / "static" / "quantize_report.json").read_text())
    assert report["quantization"]["method"] == "static" and report["quantization"]["calibration_examples"] == 20
    assert report["cosine_to_fp32"]["mean"] > 0.5


def test_prune_an_embedding_model_then_load_and_export_it(tiny_st, corpus, tmp_path, capsys):
    """Heads and FFN neurons scored by how the vectors move; the folder loads in distilkit (without remote code)
    and in sentence-transformers (trust_remote_code: distilkit's loader file) with the same vectors, and exports."""
    out = tmp_path / "pruned"
    argv = ["prune", "--model", tiny_st, "--data", corpus, "--heads", "0.5", "--ffn", "0.5", "--output", out]
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0, stdout
    metrics = json.loads((out / "metrics.json").read_text())
    before, pruned = metrics["before"], metrics["pruned"]
    assert sum(pruned["attention_heads"]) == sum(before["attention_heads"]) // 2
    assert sum(pruned["intermediate_sizes"]) < sum(before["intermediate_sizes"])
    assert pruned["parameters"] < before["parameters"] and -1 <= pruned["cosine_to_unpruned"] < 1
    from sentence_transformers import SentenceTransformer

    theirs = SentenceTransformer(str(out / "model"), device="cpu", trust_remote_code=True)
    cosine = torch.nn.functional.cosine_similarity(
        own_vectors(out, TEXTS), theirs.encode(TEXTS, convert_to_tensor=True)
    )
    assert cosine.min() >= 0.9999
    from distilkit.models.pruned import MODELING_FILE, modeling_source

    assert (out / "model" / MODELING_FILE).read_text() == modeling_source("BertModel")
    assert "trust_remote_code=True" in (out / "model" / "README.md").read_text()
    assert run_cli(["export", "--model", out, "--output", tmp_path / "onnx"], capsys)[0] == 0
    recover = ["distill", "--task", "embedding", "--teacher", tiny_st, "--student", out / "model", "--data", corpus]
    code, stdout, _ = run_cli([*recover, "--epochs", "1", "--output", tmp_path / "recovered"], capsys)
    assert code == 0, stdout  # the recovery the refusal below suggests
    assert json.loads((tmp_path / "recovered" / "model" / "config.json").read_text())["distilkit_pruning"]
    refused = ["prune", "--model", tiny_st, "--data", corpus, "--ffn", "0.5", "--recover", "distill", "--output"]
    code, _, err = run_cli([*refused, tmp_path / "r"], capsys)
    assert code != 0 and "--recover distill with an embedding model" in err and not (tmp_path / "r").exists()


def test_embedding_importance_is_zero_for_a_head_the_vectors_do_not_use(tiny_st):
    """projected_vectors' gradient: a head whose output projection is zeroed moves no vector, so it scores 0 and is
    the first removed; the heads in use score above it."""
    from distilkit.compress import pruning
    from distilkit.compress.embedding_prune import projected_vectors, text_batches

    model, tokenizer, _ = load_embedding_model(str(tiny_st))
    size = pruning.head_size(model)
    with torch.no_grad():
        model.encoder.encoder.layer[0].attention.output.dense.weight[:, :size] = 0  # head 0 of layer 0 silenced
    torch.manual_seed(0)
    heads, _ = pruning.score_importance(
        model, text_batches(TEXTS * 4, tokenizer, 32, 8), True, False, projected_vectors
    )
    assert heads[0][0] == 0 and heads[0][1] > 0 and all((s > 0).all() for s in heads[1:])
    assert pruning.choose_lowest(heads, 0.25, "global", "heads")[0] == [0]


def test_a_recipe_distils_prunes_exports_evaluates_benches_and_reports_an_embedding_model(
    tiny_st, corpus, tmp_path, capsys
):
    """`distilkit run` with data.task embedding: the teacher used as it is, a student, a pruned teacher, int8,
    retrieval scores paired with the teacher, bench, and the report ranking by nDCG@10."""
    import yaml

    rows = [{"query": r["text"].split()[0], "positive": r["text"]} for r in topic_rows(30, seed=5)]
    data = {"task": "embedding", "data": str(corpus), "test_file": str(write_jsonl(tmp_path / "q.jsonl", rows))}
    recipe = {
        "output": str(tmp_path / "run"),
        "data": {**data, "max_length": 32},
        "teacher": {"model": str(tiny_st)},
        "students": {"s1": {"student": "1", "epochs": 1, "batch_size": 8}},
        "prune": {"p": {"from": "teacher", "ffn": 0.5}},
        "quantize": {"models": ["s1"], "methods": ["dynamic"]},
        "bench": {"rounds": 2, "warmup": 1, "memory": False, "batch_size": 4},
        "report": {"min_retention": 0.0},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, stdout, _ = run_cli(["run", path], capsys)
    assert code == 0, stdout
    run = tmp_path / "run"
    scored = {p.stem: json.loads(p.read_text()) for p in (run / "eval").glob("*.json")}
    assert set(scored) == {"teacher", "s1", "p", "s1 int8-dynamic"}
    assert "paired" not in scored["teacher"] and scored["s1"]["paired"]["metric"] == "ndcg@10"
    assert scored["s1 int8-dynamic"]["paired"]["difference"] == pytest.approx(
        scored["s1 int8-dynamic"]["ndcg@10"] - scored["teacher"]["ndcg@10"], abs=1e-4
    )
    assert [r["model"] for r in json.loads((run / "bench.json").read_text())["models"]][0] == "teacher"
    assert "ndcg@10" in (run / "report.md").read_text()
    recipe["teacher"]["epochs"] = 2
    path.write_text(yaml.safe_dump({**recipe, "output": str(tmp_path / "other")}))
    code, _, err = run_cli(["run", path], capsys)
    assert code != 0 and "the teacher is used as it is" in err and "drop epochs" in err
