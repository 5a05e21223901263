"""The pieces of the distillation engine: attention capture, layer maps, students, the teacher cache, augmentation."""

import numpy as np
import pytest
import torch

from distilkit.distillation import capture
from distilkit.distillation.cache import CacheSpec, build_cache, cache_key
from distilkit.distillation.layer_map import build_layer_map
from distilkit.distillation.students import build_student, copied_layers, uniform_layers
from distilkit.errors import DistilkitError


@pytest.fixture(scope="module")
def teacher(tiny_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model)


def test_capture_records_scores_and_keeps_outputs_and_padding(teacher):
    model, tok = teacher
    batch = tok(["the goal was big", "a song"], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = model(**batch).logits
        capture.enable(model)
        with capture.recording(scores=True, qkv=True) as rec:
            captured = model(**batch).logits
        alone = model(**tok(["a song"], return_tensors="pt")).logits
    model.set_attn_implementation("sdpa")
    assert torch.allclose(reference, captured, atol=1e-5)
    # padding is masked: the short sentence gives the same logits alone as padded in a batch
    assert torch.allclose(captured[1], alone[0], atol=1e-5)
    assert len(rec.attention_scores) == 2 and rec.attention_scores[0].shape == (2, 2, 6, 6)
    q, k, v = rec.queries_keys_values[0]
    assert q.shape == (2, 6, 32)
    # scores are Q Kᵀ / √d per head, before the mask and the softmax
    q_head0 = q[0, :, :16]
    k_head0 = k[0, :, :16]
    assert torch.allclose(rec.attention_scores[0][0, 0], q_head0 @ k_head0.T / 4.0, atol=1e-5)


def test_attention_computed_from_recorded_scores_matches_sdpa_with_gradients(teacher):
    """While scores are recorded the attention output comes from them (no second Q Kᵀ): outputs and gradients
    equal SDPA's, padding included."""
    import copy

    model = copy.deepcopy(teacher[0])
    batch = teacher[1](["the goal was big", "a song"], padding=True, return_tensors="pt")

    def logits_and_grad(record: bool):
        model.zero_grad()
        with capture.recording(scores=record):
            logits = model(**batch).logits
        (logits**2).sum().backward()
        return logits.detach(), model.bert.encoder.layer[0].attention.self.query.weight.grad.clone()

    capture.enable(model)
    sdpa_logits, sdpa_grad = logits_and_grad(record=False)
    eager_logits, eager_grad = logits_and_grad(record=True)
    assert torch.allclose(sdpa_logits, eager_logits, atol=1e-5)
    assert torch.allclose(sdpa_grad, eager_grad, atol=1e-5) and sdpa_grad.abs().sum() > 0


def test_recording_is_off_outside_the_context(teacher):
    model, tok = teacher
    capture.enable(model)
    with capture.recording(scores=True) as rec:
        pass
    model(**tok(["the goal"], return_tensors="pt"))
    model.set_attn_implementation("sdpa")
    assert rec.attention_scores == []


def test_uniform_layer_map_follows_tinybert():
    m = build_layer_map("uniform", 4, 12)
    assert m.hidden == ((0, 0), (1, 3), (2, 6), (3, 9), (4, 12))
    assert m.attention == ((0, 2), (1, 5), (2, 8), (3, 11))  # attention layer i·k + k − 1
    assert build_layer_map("last", 3, 6).hidden == ((3, 6),)
    assert build_layer_map("0:0,1:2,2:5", 2, 6).attention == ((0, 1), (1, 4))


@pytest.mark.parametrize(
    "spec,match",
    [("uniform", "not a multiple"), ("1:7", "out of range"), ("0:3", "embeddings"), ("a:b", "student:teacher pairs")],
)
def test_layer_map_errors(spec, match):
    with pytest.raises(DistilkitError, match=match):
        build_layer_map(spec, 4, 6)


def test_copied_layer_map_follows_the_student_initialisation():
    m = build_layer_map("copied", 3, 6, copied_from=[0, 2, 4])
    assert m.hidden == ((0, 0), (1, 1), (2, 3), (3, 5))  # student layer i (copy of c_i) → hidden i+1 ← c_i+1
    assert m.attention == ((0, 0), (1, 2), (2, 4))
    assert m.describe().startswith("copied:")
    assert build_layer_map("auto", 3, 6, copied_from=[0, 2, 4]) == m
    assert build_layer_map("auto", 3, 6).hidden == build_layer_map("uniform", 3, 6).hidden  # random/pretrained
    with pytest.raises(DistilkitError, match="not built from teacher layers"):
        build_layer_map("copied", 3, 6)
    assert copied_layers("half", 6) == [0, 2, 4] and copied_layers("layers:1,5", 6) == [1, 5]
    assert copied_layers("3", 6) == [0, 2, 4] and copied_layers("4L-312H", 6) is None


def test_copied_map_pairs_are_exact_at_initialisation(teacher):
    """Under `copied`, embeddings and the first pair match exactly before training (the copy is the map);
    `uniform` pulls the copy of teacher layer 0 toward teacher layer 1's output instead."""
    model, tok = teacher
    n = model.config.num_hidden_layers
    chosen = [0] + list(range(2, n, 2))[: n // 2 - 1]
    student, _ = build_student("layers:" + ",".join(map(str, chosen)), model, "sequence-classification")
    student.eval()
    batch = tok(["the goal was late", "a film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        s = student(**batch, output_hidden_states=True).hidden_states
        t = model(**batch, output_hidden_states=True).hidden_states
    copied = build_layer_map("copied", len(chosen), n, copied_from=chosen)
    (s0, t0), (s1, t1) = copied.hidden[:2]
    assert torch.allclose(s[s0], t[t0]) and torch.allclose(s[s1], t[t1], atol=1e-6)
    if n % len(chosen) == 0:
        s1, t1 = build_layer_map("uniform", len(chosen), n).hidden[1]
        assert not torch.allclose(s[s1], t[t1], atol=1e-3)


def test_uniform_layer_choice():
    assert uniform_layers(6, 3) == [0, 2, 4]
    assert uniform_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert uniform_layers(6, 4) == [0, 2, 3, 5]
    with pytest.raises(DistilkitError):
        uniform_layers(6, 7)


def test_student_from_teacher_layers_copies_weights(teacher):
    model, _ = teacher
    student, how = build_student("layers:1", model, "sequence-classification")
    assert student.config.num_hidden_layers == 1 and "[1]" in how
    t, s = model.state_dict(), student.state_dict()
    assert torch.equal(
        s["bert.encoder.layer.0.attention.self.query.weight"], t["bert.encoder.layer.1.attention.self.query.weight"]
    )
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])
    assert torch.equal(s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"])


def test_student_from_size_spec(teacher):
    model, _ = teacher
    student, _ = build_student("1L-16H-2A-24F", model, "sequence-classification")
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (1, 16, 2, 24)
    assert c.vocab_size == model.config.vocab_size and c.id2label == model.config.id2label
    with pytest.raises(DistilkitError, match="not a multiple"):
        build_student("1L-15H-2A", model, "sequence-classification")


def test_cache_matches_live_outputs_and_keys_change(teacher, tmp_path):
    from datasets import Dataset
    from transformers import DataCollatorWithPadding

    model, tok = teacher
    capture.enable(model)
    enc = tok(["the goal was big today", "a song", "the chef made soup and bread"])
    ds = Dataset.from_dict(dict(enc))
    spec = CacheSpec(hidden=(0, 2), scores=(1,), qkv=(0,))
    dims = {"task": "sequence-classification", "token_level": False, "hidden": 32, "heads": 2, "labels": 3}
    cache = build_cache(model, ds, DataCollatorWithPadding(tok), spec, tmp_path / "c", 2, dims, progress=False)
    batch = DataCollatorWithPadding(tok)([ds[i] for i in range(3)])
    with torch.no_grad(), capture.recording(scores=True, qkv=True) as rec:
        live = model(**batch, output_hidden_states=True)
    model.set_attn_implementation("sdpa")
    ids, seq = np.array([0, 1, 2]), batch["input_ids"].shape[1]
    assert torch.allclose(cache.get("logits", ids, seq), live.logits, atol=2e-3)
    lengths = batch["attention_mask"].sum(1)
    for i in range(3):
        n = int(lengths[i])
        assert torch.allclose(cache.get("hidden_2", ids, seq)[i, :n], live.hidden_states[2][i, :n], atol=1e-2)
        assert torch.allclose(
            cache.get("scores_1", ids, seq)[i, :, :n, :n], rec.attention_scores[1][i, :, :n, :n], atol=1e-2
        )
        assert torch.allclose(cache.get("v_0", ids, seq)[i, :n], rec.queries_keys_values[0][2][i, :n], atol=1e-2)
    assert cache.get("hidden_2", ids, seq)[1, int(lengths[1]) :].abs().sum() == 0  # padding stays zero
    key = cache_key(model, ds, spec)
    assert cache_key(model, ds, spec) == key
    assert cache_key(model, ds.select([0, 1]), spec) != key  # other data
    assert cache_key(model, ds, CacheSpec()) != key  # other outputs
    assert cache_key(model, ds, spec, "fp32") == key and cache_key(model, ds, spec, "bf16") != key  # teacher precision
    other = type(model)(model.config)
    assert cache_key(other, ds, spec) != key  # other weights


def test_augmentation_is_seeded_and_keeps_stop_words(teacher):
    from distilkit.distillation.augmentation import augment_rows

    model, tok = teacher
    rows = [{"text": "the band played a new song", "label": "music"}, {"text": "we ate bread", "label": "food"}]
    a = augment_rows(rows, "sequence-classification", model.bert, tok, copies=3, p=1.0, seed=7)
    b = augment_rows(rows, "sequence-classification", model.bert, tok, copies=3, p=1.0, seed=7)
    assert a == b and len(a) == 2 + 6 and a[:2] == rows
    for r in a[2:5]:
        words = r["text"].split()
        assert r["label"] == "music" and len(words) == 6
        assert words[0] == "the" and words[3] == "a"  # stop words are never replaced
        assert words[2] != "played" or words[4] != "new"  # p = 1: content words change
    tok_rows = [{"tokens": ["alice", "visited", "paris"], "tags": ["B-PER", "O", "B-LOC"]}]
    out = augment_rows(tok_rows, "token-classification", model.bert, tok, copies=2, p=1.0, seed=1)
    assert all(r["tags"] == ["B-PER", "O", "B-LOC"] and len(r["tokens"]) == 3 for r in out)
    assert out[1]["tokens"] != tok_rows[0]["tokens"]


def test_mlm_candidates_are_batched(tiny_model):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from distilkit.distillation.augmentation import Augmenter

    tok = AutoTokenizer.from_pretrained(tiny_model)
    mlm = BertForMaskedLM(BertConfig.from_pretrained(tiny_model)).eval()
    calls = []
    mlm.base_model.register_forward_hook(lambda *args: calls.append(1))
    augmenter = Augmenter(mlm, tok, p=1.0, mlm_model=mlm, seed=0)
    sentences = [["alice", "visited", "paris"], ["bob", "met", "rome"], ["carol", "visited", "london"]]
    out = augmenter.augment_sentences(sentences, copies=2)
    assert len(calls) == 1  # 9 masked words, one forward pass (TinyBERT's script would run 9)
    assert len(out) == 3 and all(len(v) == 2 for v in out)


def test_mlm_candidates_reach_words_past_the_models_window(tiny_model):
    """A word deep in a long text (a news article) is masked in its own window of words, so it gets candidates;
    masked in the whole text, it was cut off at 128 tokens and got none."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from distilkit.distillation.augmentation import MaskedLMCandidates

    tok = AutoTokenizer.from_pretrained(tiny_model)
    mlm = BertForMaskedLM(BertConfig.from_pretrained(tiny_model)).eval()
    words = tok.convert_ids_to_tokens(list(range(10, 60)))  # single-piece words of the tiny vocabulary
    article = [words[i % len(words)] for i in range(400)]
    found = MaskedLMCandidates(mlm, tok, top_k=5).candidates([article], [(0, 3), (0, 300), (0, 399)])
    assert set(found) == {(0, 3), (0, 300), (0, 399)}
    assert all(len(options) > 0 for options in found.values())


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "deberta-v2"])
def test_mlm_logits_at_the_masks_equal_the_full_forward(tiny_model, family):
    """The vocabulary-wide head runs on the masked positions only (one head module reading the hidden states: BERT,
    RoBERTa), or on all of them (DistilBERT's head is several modules, DeBERTa-v2's also reads the word embeddings);
    either way the logits are the full forward's at the masks."""
    import transformers
    from transformers import AutoTokenizer, BertConfig

    from distilkit.distillation.augmentation import MaskedLMCandidates

    tok = AutoTokenizer.from_pretrained(tiny_model)
    bert = BertConfig.from_pretrained(tiny_model)
    config = getattr(transformers, f"{CONFIGS[family]}Config")(vocab_size=bert.vocab_size, **TINY_SHAPES[family])
    mlm = getattr(transformers, f"{CONFIGS[family]}ForMaskedLM")(config).eval()
    head_rows = []
    for name, module in mlm.named_children():
        if name != mlm.base_model_prefix:
            module.register_forward_hook(lambda module, args, out: head_rows.append(args[0].shape[:2]))
    texts = ["alice [MASK] paris", "no mask here at all", "[MASK] met rome and [MASK]"]
    enc = tok(texts, return_tensors="pt", padding=True)
    candidates = MaskedLMCandidates(mlm, tok)
    rows, columns = candidates._first_masks(enc["input_ids"])
    assert rows.tolist() == [0, 2] and columns.tolist() == [2, 1]
    with torch.inference_mode():
        expected = mlm(**enc).logits[rows, columns]
        head_rows.clear()
        got = candidates._logits_at(enc, rows, columns)
    assert torch.allclose(got, expected, atol=1e-5)
    if family in ("bert", "roberta"):
        assert head_rows == [(2, 1)]  # two masked rows, one position each: not 3 x sequence length


CONFIGS = {"bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert", "deberta-v2": "DebertaV2"}
TINY_SHAPES = {
    "bert": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
    "roberta": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
    "deberta-v2": {  # legacy=False: DeBERTa-v2's newer head, which also reads the word embeddings
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "legacy": False,
    },
}


def test_teacher_check_reads_rows_from_the_whole_file(topic_run):
    """A train file sorted by label: its first 512 rows are one class (chance 100%), so a check on them called a
    trained teacher untrained. The check reads 512 rows spread over the file."""
    from conftest import topic_rows

    from distilkit.data.dataset import TaskData
    from distilkit.distillation.checks import check_teacher_trained, teacher_quality
    from distilkit.inference.loading import load_trained

    teacher = load_trained(str(topic_run))
    rows = sorted(topic_rows(1200, seed=5), key=lambda row: row["label"])
    data = TaskData("sorted", "sequence-classification", False, teacher.labels, {"train": rows})
    quality = teacher_quality(teacher, rows, data, max_length=32)
    assert quality["chance"] < 0.4  # three classes, 400 rows each
    assert check_teacher_trained(teacher, quality, "train", force=False) is None


def test_tinybert_loss_scale_follows_how_the_student_was_built():
    """The suite chose relative MSE for tinybert students from teacher layers; random-init ones keep raw."""
    from distilkit.distillation.methods import METHODS
    from distilkit.distillation.planning import default_normalize

    assert default_normalize(METHODS["tinybert"], [0, 2, 4]) is True
    assert default_normalize(METHODS["tinybert"], None) is False
    assert default_normalize(METHODS["kd"], None) is True and default_normalize(METHODS["kd"], [0, 1]) is True
