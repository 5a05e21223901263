"""Export-time model patches (compress/export_patches.py): the patched model computes what the model's own code
does, the patch is undone after the trace, and the exported graph loses the per-run work it was written for."""

import json
import sys

import numpy as np
import torch
from conftest import run_cli
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
