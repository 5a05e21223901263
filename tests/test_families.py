"""Family-specific parts, exactly: DeBERTa/MPNet capture, pruning of their layouts and ModernBERT's fused/gated
layers, ModernBERT and ALBERT students, ModernBERT beyond 512 tokens. The CLI matrix is test_support_matrix.py."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import FAST, run_cli, topic_rows, write_csv
from families import _config, build_family_model
from test_prune import BATCH, logits_with_gates
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from distilkit.compress import pruning
from distilkit.distillation import capture, capture_eager
from distilkit.distillation.students import build_student
from distilkit.errors import DistilkitError
from distilkit.models import freeze, load_model


def classifier(family: str, **changes):
    config = _config(family)
    for key, value in changes.items():
        setattr(config, key, value)
    config.num_labels = 3
    config.initializer_range = 0.3  # weights large enough that removing a head visibly changes the logits
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


DEBERTA_V2_LAYOUT = dict(share_att_key=False)  # DeBERTa-v2: separate position projections, which prune too


@pytest.mark.parametrize(
    "family, changes, heads_off",
    [
        ("deberta-v2", {}, {0: [1], 1: [0, 2]}),
        ("deberta-v2", DEBERTA_V2_LAYOUT, {0: [3], 1: [1, 2]}),
        ("modernbert", {}, {0: [0], 1: [1, 2, 3]}),
        ("mpnet", {}, {}),  # FFN only (models/families.py)
    ],
)
def test_pruning_equals_gating_off_and_reloads(family, changes, heads_off, tmp_path):
    model = classifier(family, **changes)
    neurons_off = {0: [0, 5, 9], 1: [63]}
    expected = logits_with_gates(model, heads_off, neurons_off)
    pruned = copy.deepcopy(model)
    if heads_off:
        pruning.remove_heads(pruned, [heads_off.get(0, []), heads_off.get(1, [])])
    pruning.remove_neurons(pruned, [neurons_off[0], neurons_off[1]])
    shapes = pruning.shape_summary(pruned)
    assert shapes["attention_heads"] == [4 - len(heads_off.get(i, [])) for i in (0, 1)]
    assert shapes["intermediate_sizes"] == [61, 63]
    with torch.no_grad():
        got = pruned(**BATCH).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, model(**BATCH).logits.detach(), atol=1e-4)
    pruned.config.distilkit_pruning = shapes  # what `distilkit prune` saves: the folder loads at these shapes
    pruned.save_pretrained(tmp_path)
    reloaded = load_model(str(tmp_path), "sequence-classification").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**BATCH).logits, got, atol=1e-6)


def test_mpnet_and_albert_refuse_what_their_layers_cannot_do():
    with pytest.raises(DistilkitError, match="relative-position bias"):
        pruning.paths_for(classifier("mpnet"), heads=True)
    albert = classifier("albert")
    with pytest.raises(DistilkitError, match="shares one layer's weights"):
        pruning.paths_for(albert)
    with pytest.raises(DistilkitError, match="--freeze-layers 1: albert shares one set of weights"):
        freeze(albert, first_layers=1)


@pytest.mark.parametrize("family", ["deberta-v2", "mpnet", "modernbert", "bert"])
def test_capture_records_every_layer_without_changing_outputs(family):
    model = classifier(family)
    with torch.no_grad():
        plain = model(**BATCH, output_attentions=family == "deberta-v2")
    capture.enable(model)
    with torch.no_grad(), capture.recording(scores=True, qkv=True) as rec:
        captured = model(**BATCH)
    assert torch.allclose(captured.logits, plain.logits, atol=1e-5)
    assert len(rec.attention_scores) == len(rec.queries_keys_values) == 2
    assert rec.attention_scores[0].shape == (2, 4, 6, 6)
    assert rec.queries_keys_values[0][0].shape == (2, 6, 32)
    if family == "deberta-v2":  # the recorded scores are what its softmax saw, disentangled terms included
        mask = BATCH["attention_mask"].bool()
        probs = torch.softmax(rec.attention_scores[1].masked_fill(~mask[:, None, None, :], -1e9), dim=-1)
        real = mask[:, None, :, None].expand_as(probs)  # rows of padding queries are DeBERTa's own (uniform)
        assert torch.allclose(probs[real], plain.attentions[1][real], atol=1e-5)


def test_a_model_whose_attention_is_not_recorded_is_refused(monkeypatch):
    monkeypatch.delitem(capture_eager.CAPTURING, capture_eager.deberta.DisentangledSelfAttention)
    with pytest.raises(DistilkitError, match="deberta-v2: distilkit recorded 0 attention maps for 2 layers"):
        capture.enable(classifier("deberta-v2"))


def test_modernbert_students_keep_their_layers_attention_kinds():
    config = _config_with(_config("modernbert"), num_hidden_layers=3, global_attn_every_n_layers=3, num_labels=3)
    teacher = AutoModelForSequenceClassification.from_config(config)
    assert teacher.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    student, _ = build_student("layers:0,2", teacher, "sequence-classification")
    assert student.config.layer_types == ["full_attention", "sliding_attention"]
    sized, _ = build_student("4L-16H-4A-32F", teacher, "sequence-classification")
    assert sized.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    with pytest.raises(DistilkitError, match="must start with layer 0"):
        build_student("layers:1,2", teacher, "sequence-classification")


def _config_with(config, **changes):
    data = config.to_dict()
    data.update(changes, layer_types=None)
    return type(config).from_dict(data)


def test_albert_student_is_fewer_repetitions_of_the_shared_layer():
    teacher = AutoModelForSequenceClassification.from_config(_albert(classifier("albert").config, 4)).eval()
    student, how = build_student("2", teacher, "sequence-classification")
    assert student.config.num_hidden_layers == 2 and "teacher layers [0, 2]" in how
    for key, value in teacher.state_dict().items():
        assert torch.equal(student.state_dict()[key], value)
    with torch.no_grad():
        t, s = teacher(**BATCH, output_hidden_states=True), student.eval()(**BATCH, output_hidden_states=True)
    assert torch.allclose(s.hidden_states[1], t.hidden_states[1]) and len(s.hidden_states) == 3


def _albert(config, layers: int):
    config = copy.deepcopy(config)
    config.num_hidden_layers = layers
    return config


def test_modernbert_reads_inputs_beyond_512_tokens(tmp_path, capsys):
    """ModernBERT allows long inputs (8,192 positions in the released models): fine-tune and distil at 600."""
    folder = build_family_model(tmp_path / "modernbert", "modernbert")
    model = AutoModel.from_pretrained(folder)
    model.config.max_position_embeddings = 1024
    model.save_pretrained(folder)
    rows = [dict(r, text=" ".join([r["text"]] * 150)) for r in topic_rows(48, seed=2)]
    data = write_csv(tmp_path / "long.csv", rows)
    common = ["--data", data, "--max-length", "600", "--epochs", "1", "--split", "0.8,0.1,0.1", *FAST]
    code, _, err = run_cli(["finetune", "--model", folder, "--output", tmp_path / "teacher", *common], capsys)
    assert code == 0, err
    args = ["--teacher", tmp_path / "teacher", "--student", "1", "--method", "tinybert", "--force"]
    code, _, err = run_cli(["distill", *args, "--output", tmp_path / "student", *common], capsys)
    assert code == 0, err
    tokens = AutoTokenizer.from_pretrained(folder)(rows[0]["text"])["input_ids"]
    assert len(tokens) > 600  # the texts really are cut at 600, beyond BERT's 512
    assert yaml.safe_load((tmp_path / "student" / "config.yaml").read_text())["max_length"] == 600
