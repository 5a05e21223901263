"""Export-time model patches (compress/export_patches.py): the patched model computes what the model's own code
does, the patch is undone after the trace, and the exported graph loses the per-run work it was written for.
Also what static int8 must leave fp32 in such a graph (the attention bias, the fused embedding tables)."""

import json
import sys

import numpy as np
import torch
from conftest import run_cli, topic_rows, write_csv
from families import build_family_classifier

from distilkit.compress.export_patches import PATCHES, patched_for_export

LENGTHS = (158, 100, 7)  # 158: distances past MPNet's max_distance 128 (the saturated bucket); padding below


def padded_batch(vocab: int) -> dict:
    ids = torch.randint(5, vocab, (len(LENGTHS), max(LENGTHS)), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        mask[row, :n] = 1
    return {"input_ids": ids * mask, "attention_mask": mask}


def test_mpnet_patch_gives_the_models_own_logits_and_is_undone(tmp_path):
    _, model = build_family_classifier(tmp_path, "mpnet")
    batch = padded_batch(model.config.vocab_size)
    encoder = model.mpnet.encoder
    modeling = sys.modules[type(model).__module__]
    original_mask = modeling.create_bidirectional_mask
    with torch.no_grad():
        reference = model(**batch).logits
        with patched_for_export(model) as applied:
            assert applied == ["mpnet-position-bias-table", "padding-bias"]
            assert modeling.create_bidirectional_mask is not original_mask  # the patch is in force...
            bias = encoder.compute_position_bias(torch.zeros(1, 150, 1))
            patched = model(**batch).logits
        after = model(**batch).logits
    assert bias.shape == (1, model.config.num_attention_heads, 150, 150)
    assert torch.allclose(patched, reference, atol=1e-5), (patched - reference).abs().max()
    assert "compute_position_bias" not in vars(encoder) and modeling.create_bidirectional_mask is original_mask
    assert torch.equal(after, reference)
    # the bias matters in this batch: zeroed, the logits move (so the comparison above could fail)
    with torch.no_grad():
        encoder.relative_attention_bias.weight.zero_()
        assert (model(**batch).logits - reference).abs().max() > 0.1


def test_families_without_a_patch_are_exported_from_their_own_code(tmp_path):
    _, model = build_family_classifier(tmp_path, "bert")
    assert "bert" not in PATCHES
    with patched_for_export(model) as applied:
        assert applied == []


def test_mpnet_export_has_no_per_run_bucket_or_mask_arithmetic(tmp_path, capsys):
    """The bucket maths (Log, Abs, Where...) and the mask's index expansion (GatherND) are gone from the graph, and
    ONNX Runtime gives the unpatched PyTorch logits on a padded batch past the longest exact distance and on
    single texts of other lengths."""
    import onnx

    from distilkit.inference.onnx_model import open_session

    folder, model = build_family_classifier(tmp_path, "mpnet")
    code, _, err = run_cli(["export", "--model", folder, "--output", tmp_path / "onnx"], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "onnx" / "distilkit_onnx.json").read_text())
    assert meta["export_patches"] == ["mpnet-position-bias-table", "padding-bias"]
    kinds = {n.op_type for n in onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph.node}
    assert not kinds & {"Log", "Abs", "Min", "GatherND"}, kinds
    assert "MultiHeadAttention" in kinds  # the attention fusion still matches the patched pattern
    session = open_session(tmp_path / "onnx" / "model.onnx")
    generator = torch.Generator().manual_seed(0)
    short, middle = (torch.randint(5, model.config.vocab_size, (1, n), generator=generator) for n in (3, 60))
    for batch in (padded_batch(model.config.vocab_size), *({"input_ids": ids} for ids in (short, middle))):
        batch.setdefault("attention_mask", torch.ones_like(batch["input_ids"]))
        with torch.no_grad():
            reference = model(**batch).logits.numpy()
        logits = session.run(None, {k: v.numpy() for k, v in batch.items()})[0]
        assert np.abs(logits - reference).max() <= 1e-4, batch["input_ids"].shape


def test_static_int8_mpnet_still_masks_padding_and_dequantizes_no_table_per_run(tmp_path, capsys):
    """Static QDQ used to quantize MultiHeadAttention's attention bias (position bias + padding mask) to 8 bits
    calibrated on short unpadded texts: the mask's −3.4e38 clamped to a small number and padded tokens were
    attended to. It also dequantized the fused embedding node's tables on every run. Both now stay fp32: a text
    gives the same int8 logits alone and padded in a batch beside a long one."""
    import onnx

    from distilkit.inference.onnx_model import open_session

    folder, model = build_family_classifier(tmp_path, "mpnet")
    data = write_csv(tmp_path / "topics.csv", topic_rows(60, seed=4))
    args = ["quantize", "--model", folder, "--method", "static", "--data", data, "--split", "0.8,0.1,0.1"]
    code, _, err = run_cli([*args, "--calibration-samples", "16", "--output", tmp_path / "int8"], capsys)
    assert code == 0, err
    graph = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type == "MultiHeadAttention":
            assert producer.get(node.input[5]) != "DequantizeLinear"
        if node.op_type == "EmbedLayerNormalization":  # its word and position tables (the LayerNorm's ones and
            # zeros are one initializer shared with quantized layers in this random model, so may be dequantized)
            assert "DequantizeLinear" not in {producer.get(i) for i in node.input[2:4]}
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # the layers themselves are int8
    session = open_session(tmp_path / "int8" / "model.onnx")
    batch = padded_batch(model.config.vocab_size)
    short = {k: v[-1:, : LENGTHS[-1]].numpy() for k, v in batch.items()}  # the 7-token row without its padding
    alone = session.run(None, short)[0][0]
    padded = session.run(None, {k: v.numpy() for k, v in batch.items()})[0][-1]
    assert np.abs(alone - padded).max() < 1e-3 * max(1.0, np.abs(alone).max()), (alone, padded)
