"""ONNX export (parity asserted), ONNX Runtime and torchao int8, ONNX in predict/evaluate, and their bad inputs."""

import json
import shutil

import numpy as np
import pytest
from conftest import build_tiny_model, ner_sentences, run_cli, topic_rows, write_conll, write_csv

from distilkit.inference.loading import load_trained
from distilkit.inference.onnx_model import graph_is_quantized


@pytest.fixture(scope="module")
def topic_onnx(topic_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "topic-onnx"
    code, _, _ = run_cli(["export", "--model", topic_run, "--output", out])
    assert code == 0
    return out


def predictions(model, texts, tmp_path, capsys):
    code, out, err = run_cli(["predict", "--model", model, *texts], capsys)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_export_passes_parity_and_predicts_like_torch(topic_run, topic_onnx, tmp_path, capsys):
    meta = json.loads((topic_onnx / "distilkit_onnx.json").read_text())
    assert meta["task"] == "sequence-classification" and meta["labels"] == ["food", "music", "sport"]
    assert meta["parity"]["max_abs_logit_diff"] <= 1e-4 and meta["parity"]["examples"] > 2
    assert "dev" in meta["parity"]["inputs"]  # real examples of the run's own data
    for name in ("model.onnx", "config.json", "tokenizer.json"):
        assert (topic_onnx / name).exists()
    texts = ["pizza music the a", "guitar song with this", "goal team match and some longer filler words here"]
    torch_out = predictions(topic_run, texts, tmp_path, capsys)
    onnx_out = predictions(topic_onnx, texts, tmp_path, capsys)
    assert [r["label"] for r in torch_out] == [r["label"] for r in onnx_out]
    for a, b in zip(torch_out, onnx_out):
        assert abs(a["score"] - b["score"]) < 1e-4


def test_onnx_runs_on_dynamic_batch_and_length(topic_run, topic_onnx):
    """Batch sizes and lengths the export never saw give the torch logits."""
    import torch

    onnx_model, torch_model = load_trained(str(topic_onnx)), load_trained(str(topic_run))
    for batch, length in ((1, 3), (5, 17), (9, 40)):
        ids = np.random.default_rng(batch).integers(5, 60, size=(batch, length))
        mask = np.ones_like(ids)
        mask[0, length // 2 :] = 0  # padding in one row
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        with torch.no_grad():
            ref = torch_model.model(**{k: torch.tensor(v) for k, v in feed.items()}).logits.numpy()
        assert np.abs(onnx_model.model.logits(feed) - ref).max() <= 1e-4


def test_evaluate_accepts_onnx_with_the_same_metrics(topic_run, topic_onnx, topic_data, capsys):
    results = {}
    for model in (topic_run, topic_onnx):
        code, out, err = run_cli(["evaluate", "--model", model, "--data", topic_data, "--json"], capsys)
        assert code == 0, err
        results[str(model)] = json.loads(out)
    a, b = results.values()
    assert a["accuracy"] == b["accuracy"] and a["confusion_matrix"] == b["confusion_matrix"]


def test_token_classification_export(ner_run, tmp_path, capsys):
    out = tmp_path / "ner-onnx"
    code, _, err = run_cli(["export", "--model", ner_run, "--output", out], capsys)
    assert code == 0, err
    meta = json.loads((out / "distilkit_onnx.json").read_text())
    assert meta["parity"]["max_abs_logit_diff"] <= 1e-4
    assert "FirstTokenOnly" not in meta["fused_operators"]  # every token's tags are read
    sentence = ["anna visited new york"]
    assert (
        predictions(ner_run, sentence, tmp_path, capsys)[0]["tags"]
        == predictions(out, sentence, tmp_path, capsys)[0]["tags"]
    )


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_ort_quantization_writes_int8_and_a_report(topic_onnx, tmp_path, capsys, method):
    out = tmp_path / f"int8-{method}"
    code, stdout, err = run_cli(
        ["quantize", "--model", topic_onnx, "--method", method, "--output", out, "--calibration-samples", "32"], capsys
    )
    assert code == 0, err
    assert graph_is_quantized(out / "model.onnx")
    report = json.loads((out / "quantize_report.json").read_text())
    assert report["quantization"]["method"] == method and report["metric"] == "accuracy"
    assert report["change"] == pytest.approx(report["int8"] - report["fp32"])
    assert 0 < report["max_abs_logit_diff"] < 5 and report["agreement"] >= 0.8
    assert report["size_bytes"]["int8"] < report["size_bytes"]["fp32"]
    assert "accuracy on" in stdout
    # the quantized folder is a model like any other
    code, out_json, err = run_cli(["predict", "--model", out, "pizza pasta the"], capsys)
    assert code == 0 and json.loads(out_json)["label"] in ("food", "music", "sport")


def test_torchao_quantization_is_a_plain_hf_folder(topic_run, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "int8-torchao"
    code, _, err = run_cli(["quantize", "--model", topic_run, "--method", "torchao", "--output", out], capsys)
    assert code == 0, err
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert "Int8" in type(model.bert.encoder.layer[0].attention.self.query.weight).__name__
    report = json.loads((out / "quantize_report.json").read_text())
    assert report["agreement"] >= 0.8
    code, _, err = run_cli(["quantize", "--model", out, "--method", "torchao", "--output", tmp_path / "again"], capsys)
    assert code == 2 and "already quantized" in err and not (tmp_path / "again").exists()


def test_quantizing_a_quantized_onnx_model_is_refused(topic_onnx, tmp_path, capsys):
    first = tmp_path / "q1"
    assert run_cli(["quantize", "--model", topic_onnx, "--output", first], capsys)[0] == 0
    code, _, err = run_cli(["quantize", "--model", first, "--output", tmp_path / "q2"], capsys)
    assert code == 2 and "already quantized" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "q2").exists()


def test_calibration_data_of_the_wrong_task_is_refused(topic_onnx, tmp_path, capsys):
    conll = write_conll(tmp_path / "ner.conll", ner_sentences(20))
    code, _, err = run_cli(
        ["quantize", "--model", topic_onnx, "--method", "static", "--data", conll, "--output", tmp_path / "q"], capsys
    )
    assert code == 2 and "token-classification data" in err and "sequence-classification model" in err
    assert not (tmp_path / "q").exists() and not (tmp_path / ".q.partial").exists()


def test_corrupt_onnx_file_gives_one_clear_error(topic_onnx, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(topic_onnx, broken)
    (broken / "model.onnx").write_bytes(b"\x08\x07this is not a protobuf graph" * 10)
    for args in (["predict", "--model", broken, "pizza"], ["quantize", "--model", broken, "--output", tmp_path / "q"]):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and "corrupt or not an ONNX model" in err, err
        assert len(err.strip().splitlines()) == 1


def test_unsupported_architecture_export_fails_cleanly(tmp_path, capsys):
    """Longformer's sliding-window attention has data-dependent shapes that torch.export cannot trace."""
    from transformers import LongformerConfig, LongformerForSequenceClassification

    folder = build_tiny_model(tmp_path / "tok")  # only its tokenizer is used
    config = LongformerConfig(
        vocab_size=1000,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        attention_window=4,
        max_position_embeddings=130,
        num_labels=2,
    )
    LongformerForSequenceClassification(config).save_pretrained(folder)
    capsys.readouterr()
    code, _, err = run_cli(["export", "--model", folder, "--output", tmp_path / "out"], capsys)
    assert code == 2 and "cannot export this architecture" in err and "longformer" in err
    lines = err.strip().splitlines()  # the model's own two notes may precede it; no traceback or graph dump
    assert lines[-1].startswith("distilkit: error:") and len(lines) <= 3 and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_export_refuses_a_model_without_a_task_head(tiny_model, tmp_path, capsys):
    code, _, err = run_cli(["export", "--model", tiny_model, "--output", tmp_path / "out"], capsys)
    assert code == 2 and "no sequence- or token-classification head" in err


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "distilbert", "albert"])
def test_sdpa_attention_fuses_into_multihead_attention_with_the_models_logits(tmp_path, capsys, family):
    """transformers 5's scaled_dot_product_attention, as the dynamo exporter decomposes it (q and kᵀ each scaled
    by d^-¼, the padding mask added, a NaN guard after the softmax), which ONNX Runtime does not match: distilkit's
    pass fuses it into MultiHeadAttention. The export compares padded batches with PyTorch; here also a batch of
    very different lengths."""
    import onnx
    import torch
    from families import build_family_classifier
    from test_export_patches import padded_batch

    from distilkit.inference.onnx_model import open_session

    folder, model = build_family_classifier(tmp_path, family)
    code, _, err = run_cli(["export", "--model", folder, "--output", tmp_path / "onnx"], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "onnx" / "distilkit_onnx.json").read_text())
    layers = model.config.num_hidden_layers
    assert meta["fused_operators"].get("MultiHeadAttention") == layers, meta["fused_operators"]
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph
    assert not [n for n in graph.node if n.op_type in ("Softmax", "IsNaN")]
    merged = [init.name for init in graph.initializer if init.name.startswith("qkv_weight")]
    assert len(merged) == (1 if family == "albert" else layers)  # ALBERT's layers share one set of weights
    batch = padded_batch(model.config.vocab_size)
    session = open_session(tmp_path / "onnx" / "model.onnx")
    feed = {i.name: batch.get(i.name, torch.zeros_like(batch["input_ids"])).numpy() for i in session.get_inputs()}
    with torch.no_grad():
        reference = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    assert np.abs(session.run(None, feed)[0] - reference).max() < 1e-4


def change_largest_weight(graph_file, change) -> None:
    """Rewrite an ONNX graph with `change` applied to its largest weight (a stand-in for a broken graph)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(graph_file))
    weight = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weight.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(weight)), weight.name))
    onnx.save(graph, str(graph_file))


def test_fused_graph_that_changes_the_logits_is_dropped(topic_run, tmp_path, capsys, monkeypatch):
    """The fused graph replaces the plain one only within --tolerance of PyTorch's logits; otherwise the plain graph
    stays, metadata says why, and no optimized.onnx is left in the folder. The fusion here is faked: it writes the
    plain graph with noise (or NaN, which compares false with everything) in its largest weight."""
    from distilkit.compress import export

    for case, change in {
        "noise": lambda w: w + np.random.default_rng(0).normal(0, 1, w.shape).astype(w.dtype),
        "nan": lambda w: np.full_like(w, np.nan),
    }.items():

        def broken_fusion(src, dst, config):
            shutil.copy(src, dst)
            change_largest_weight(dst, change)
            return {"Broken": 1}

        monkeypatch.setattr(export, "optimize_graph", broken_fusion)
        out_dir = tmp_path / case
        code, out, err = run_cli(["export", "--model", topic_run, "--output", out_dir], capsys)
        assert code == 0, err
        meta = json.loads((out_dir / "distilkit_onnx.json").read_text())
        assert meta["fused_operators"]["skipped"].startswith("optimized graph differs by"), meta["fused_operators"]
        assert "max_abs_logit_diff_optimized" not in meta["parity"] and meta["parity"]["max_abs_logit_diff"] <= 1e-4
        assert not (out_dir / "optimized.onnx").exists() and "after fusions" not in out
    texts = ["pizza music the a", "goal team match and some longer filler words here"]
    onnx_out, torch_out = (predictions(m, texts, tmp_path, capsys) for m in (tmp_path / "nan", topic_run))
    assert [r["label"] for r in onnx_out] == [r["label"] for r in torch_out]


def test_export_whose_graph_gives_nan_fails_parity_and_writes_nothing(topic_run, tmp_path, capsys, monkeypatch):
    """A graph whose logits are NaN is a failed parity check (NaN > tolerance is false, so it used to pass)."""
    from distilkit.compress import export

    real_export = export.export_graph

    def nan_export(model, example, input_names, out_file, opset):
        real_export(model, example, input_names, out_file, opset)
        change_largest_weight(out_file, lambda w: np.full_like(w, np.nan))

    monkeypatch.setattr(export, "export_graph", nan_export)
    code, _, err = run_cli(["export", "--model", topic_run, "--output", tmp_path / "onnx"], capsys)
    assert code != 0 and "parity check failed: max |logit difference| nan" in err, err
    assert not (tmp_path / "onnx").exists()


def test_mpnet_export_fuses_its_biased_attention_and_passes_parity(tmp_path, capsys):
    """MPNet (all-mpnet-base-v2's family): ONNX Runtime fuses LayerNorm and GELU; distilkit's own pass fuses the
    attention with its relative position bias into MultiHeadAttention, one per layer, within the parity check."""
    import onnx
    from families import build_family_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = build_family_model(tmp_path / "mpnet", "mpnet")
    config = AutoConfig.from_pretrained(folder, num_labels=3)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    code, out, err = run_cli(["export", "--model", folder, "--output", tmp_path / "onnx"], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "onnx" / "distilkit_onnx.json").read_text())
    assert meta["fused_operators"].get("LayerNormalization", 0) >= 2, meta["fused_operators"]
    assert meta["fused_operators"].get("MultiHeadAttention") == config.num_hidden_layers, meta["fused_operators"]
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph
    assert not [n for n in graph.node if n.op_type == "Softmax"]  # every attention went into the fused kernel
    assert not [n for n in graph.node if n.op_type == "SkipLayerNormalization"]  # see onnx_model.SLOW_FUSIONS
    assert meta["parity"]["max_abs_logit_diff_optimized"] <= 1e-4 and "ONNX Runtime fusions" in out


def test_static_int8_mpnet_keeps_its_relative_position_buckets_in_range(tmp_path, capsys, monkeypatch):
    """Static QDQ used to round MPNet's float bucket arithmetic too; the bucket index left the bias table and ONNX
    Runtime crashed (Gather index out of bounds). Float arithmetic that ends in an index now stays fp32. Export
    now replaces that arithmetic by a table (export_patches); graphs exported without it still have it, so the
    export here runs without the patch."""
    from families import build_family_model
    from transformers import AutoConfig, AutoModelForSequenceClassification

    monkeypatch.setattr("distilkit.compress.export_patches.PATCHES", {})

    folder = build_family_model(tmp_path / "mpnet", "mpnet")
    labels = {0: "food", 1: "music", 2: "sport"}
    # ~75-token texts: relative distances past MPNet's 8 exact buckets take the log branch that used to break
    rows = topic_rows(480, seed=3)
    long = [{"text": " ".join(r["text"] for r in rows[i::3][:12]), "label": rows[i]["label"]} for i in range(40)]
    data = write_csv(tmp_path / "long.csv", long)
    config = AutoConfig.from_pretrained(folder, id2label=labels, label2id={v: k for k, v in labels.items()})
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    out = tmp_path / "int8"
    args = ["quantize", "--model", folder, "--method", "static", "--data", data, "--split", "0.8,0.1,0.1"]
    code, _, err = run_cli([*args, "--calibration-samples", "16", "--output", out], capsys)
    assert code == 0, err
    assert graph_is_quantized(out / "model.onnx")
    report = json.loads((out / "quantize_report.json").read_text())
    assert report["agreement"] >= 0.8 and report["max_abs_logit_diff"] < 1
    assert "node_log" in report["quantization"]["kept_fp32"]  # the bucket arithmetic was there, kept out of int8


def test_export_and_cpu_sessions_leave_residual_layernorm_unfused(topic_onnx, tmp_path):
    """ONNX Runtime's SkipLayerNormalization CPU kernel is ~5x slower than Add + LayerNormalization, so export does
    not write it and distilkit's CPU sessions do not re-fuse it at load; a plain session would (the control)."""
    import onnx
    import onnxruntime as ort

    from distilkit.inference.onnx_model import open_session, session_options

    def ops(path):
        return [n.op_type for n in onnx.load(str(path)).graph.node]

    exported = ops(topic_onnx / "model.onnx")
    assert "LayerNormalization" in exported and "SkipLayerNormalization" not in exported
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / "ours.onnx")
    open_session(topic_onnx / "model.onnx", options=options)
    assert "SkipLayerNormalization" not in ops(tmp_path / "ours.onnx")
    plain = ort.SessionOptions()
    plain.optimized_model_filepath = str(tmp_path / "plain.onnx")
    ort.InferenceSession(str(topic_onnx / "model.onnx"), plain, providers=["CPUExecutionProvider"])
    assert "SkipLayerNormalization" in ops(tmp_path / "plain.onnx")


def test_bert_graphs_have_no_index_arithmetic_to_keep_out_of_static_int8(topic_onnx):
    """The exclusion is for position-bucket maths only: a BERT graph keeps every node quantizable."""
    import onnx

    from distilkit.compress.quantize import index_arithmetic_nodes

    assert index_arithmetic_nodes(onnx.load(str(topic_onnx / "model.onnx")).graph) == []


@pytest.mark.parametrize("family", ["mpnet", "distilbert"])
def test_dynamic_int8_keeps_each_familys_own_position_ids(tmp_path, capsys, family):
    """ONNX Runtime's QEmbedLayerNormalization has no position-ids input: it looks up positions 0..n-1. MPNet's
    start after the padding index, so its fused embedding node must stay fp32 (before: 26% relative logit error
    on this tiny model, after: 1%); DistilBERT's positions are 0..n-1 and its tables are still quantized."""
    import onnx
    import onnxruntime as ort
    from families import build_family_model
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    folder = build_family_model(tmp_path / family, family)
    labels = {0: "food", 1: "music", 2: "sport"}
    config = AutoConfig.from_pretrained(folder, id2label=labels, label2id={v: k for k, v in labels.items()})
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    data = write_csv(tmp_path / "topics.csv", topic_rows(40, seed=5))
    assert run_cli(["export", "--model", folder, "--output", tmp_path / "fp32"], capsys)[0] == 0
    args = ["quantize", "--model", tmp_path / "fp32", "--data", data, "--split", "0.8,0.1,0.1"]
    code, _, err = run_cli([*args, "--output", tmp_path / "int8"], capsys)
    assert code == 0, err
    kinds = {n.op_type for n in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert "DynamicQuantizeMatMul" in kinds or "MatMulInteger" in kinds  # the layers are int8 either way
    assert ("EmbedLayerNormalization" if family == "mpnet" else "QEmbedLayerNormalization") in kinds, kinds
    kept = json.loads((tmp_path / "int8" / "quantize_report.json").read_text())["quantization"]["kept_fp32"]
    if family == "mpnet":  # the embedding node, then the attention bias's nodes (test_int8_graph.py)
        assert kept[0] == "EmbedLayerNormalization_0" and "EmbedLayerNormalization_0" not in kept[1:], kept
    else:  # its tables are quantized; only the attention mask's nodes stay fp32 (quantize.attention_bias_nodes)
        assert kept and not any("EmbedLayerNormalization" in name for name in kept), kept
    texts = ["pizza pasta the music sport " * 8, "the sport music", "pasta " * 30, "music music the pizza"]
    enc = AutoTokenizer.from_pretrained(tmp_path / "fp32")(
        texts, padding=True, truncation=True, max_length=32, return_tensors="np"
    )
    feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    fp32, int8 = (ort.InferenceSession(str(tmp_path / m / "model.onnx")).run(None, feed)[0] for m in ("fp32", "int8"))
    assert np.abs(int8 - fp32).max() < 0.1 * np.abs(fp32).max()


@pytest.mark.parametrize("bars_on", [True, False])
def test_loading_a_model_leaves_the_progress_bars_as_they_were(topic_run, bars_on, monkeypatch):
    """load_trained hides the "Loading weights" bars while it loads, and only then: a notebook that loads a model
    and trains next keeps its bars (and one that turned them off keeps them off)."""
    import datasets
    from transformers.utils import logging as hf_logging

    if not bars_on:
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()
    from distilkit.inference import loading

    seen, original = {}, loading.load_model

    def spy(*args, **kwargs):  # the bars' state while the weights load
        seen["hf"], seen["datasets"] = hf_logging.is_progress_bar_enabled(), not datasets.are_progress_bars_disabled()
        return original(*args, **kwargs)

    monkeypatch.setattr(loading, "load_model", spy)
    load_trained(str(topic_run))
    assert seen == {"hf": False, "datasets": False}
    assert hf_logging.is_progress_bar_enabled() is bars_on
    assert datasets.are_progress_bars_disabled() is not bars_on
