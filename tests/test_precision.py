"""Precision: `auto` follows the hardware's native bf16, and an explicit bf16 on CPU trains instead of crashing."""

from __future__ import annotations

import pytest
import torch

from distilkit.config import FinetuneConfig
from distilkit.training import trainer_setup


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_native_bf16(monkeypatch, capsys, native):
    monkeypatch.setattr(trainer_setup, "native_bf16", lambda: native)
    assert trainer_setup.pick_precision("auto") == ("bf16" if native else "fp32")
    assert ("precision: bf16 autocast" in capsys.readouterr().out) == (native and not torch.cuda.is_available())
    assert trainer_setup.pick_precision("fp32") == "fp32"  # an explicit choice is kept


def test_explicit_bf16_on_cpu_builds_training_arguments_that_autocast(monkeypatch, tmp_path):
    """--precision bf16 on a CPU machine used to raise transformers' 'Your setup doesn't support bf16/gpu'."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = trainer_setup.training_arguments(
        FinetuneConfig(precision="bf16"), tmp_path / "out", "accuracy", True, has_dev=False
    )
    assert args.bf16 and args.device.type == "cpu"
    with trainer_setup.autocast(args):
        assert torch.matmul(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    fp32 = trainer_setup.training_arguments(FinetuneConfig(precision="fp32"), tmp_path / "o", "accuracy", True, False)
    with trainer_setup.autocast(fp32):
        assert torch.matmul(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
