"""Options of `distilkit prune`, `export` and `quantize` (kept beside the code they configure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from distilkit.config import DataOptions
from distilkit.option_rules import AT_LEAST_1, FRACTION_BELOW_1, POSITIVE, SEED, Checked, Rule, opt

# The int8 methods: the choices of `quantize --method` and of a recipe's quantize.methods (pipeline.METHODS).
QuantizeMethod = Literal["dynamic", "static", "torchao"]


@dataclass
class ExportConfig(DataOptions):
    """Export a fine-tuned model to ONNX (dynamic batch and sequence axes), checked against PyTorch on real inputs.

    Args:
        model: Model folder or distilkit run folder (sequence or token classification).
        output: ONNX folder to write (default: <run>/onnx for a run folder, <model>-onnx otherwise).
        parity_split: Split of --data (default: the run's own data) whose texts check the export.
        parity_samples: Examples used for the parity check (padded batches of mixed lengths).
        tolerance: Largest allowed absolute logit difference between ONNX Runtime and PyTorch (fp32).
        opset: ONNX opset version.
        optimize: Apply ONNX Runtime's transformer graph fusions (checked by the same parity test).
        patches: Trace the model with distilkit's export patches of its code (MPNet: a position-bias table and a
            one-step padding mask; same numbers, fewer nodes per run); false traces the model's own code.
        overwrite: Replace an existing output folder.
    """

    model: str = ""
    output: Optional[str] = None
    parity_split: str = "dev"
    parity_samples: int = opt(64, AT_LEAST_1)
    tolerance: float = opt(1e-4, POSITIVE)
    opset: int = opt(18, Rule(low=14, integer=True))  # torch.onnx's dynamo exporter needs ≥ 14
    optimize: bool = True
    patches: bool = True
    overwrite: bool = False


@dataclass
class QuantizeConfig(DataOptions):
    """Quantize a model to int8 and report the accuracy change on a dev set and the logit difference.

    Args:
        model: An ONNX folder (from distilkit export) for the ONNX Runtime methods, or a model/run folder (exported to
            ONNX first for dynamic/static; used as is for torchao).
        method: dynamic (ONNX Runtime, weights int8, activations quantized on the fly), static (ONNX Runtime QDQ,
            activation ranges calibrated on training examples), or torchao (PyTorch int8 dynamic, a plain HF folder).
        output: Folder to write (default: <input>-int8-<method>).
        calibration_samples: Training examples used to calibrate activation ranges (static).
        calibration_method: How static calibration turns observed activations into ranges.
        per_channel: Quantize weights per output channel (smaller error) instead of per tensor.
        eval_split: Split of --data (default: the run's own data) used to measure the accuracy change.
        batch_size: Evaluation batch size.
        overwrite: Replace an existing output folder.
    """

    model: str = ""
    method: QuantizeMethod = "dynamic"
    output: Optional[str] = None
    calibration_samples: int = opt(200, AT_LEAST_1)
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    eval_split: str = "dev"
    batch_size: int = opt(32, AT_LEAST_1)
    overwrite: bool = False


@dataclass
class PruneConfig(DataOptions):
    """Prune attention heads and FFN neurons (structurally: the matrices shrink) and/or weights (unstructured).

    Args:
        model: Fine-tuned model folder or distilkit run folder (BERT, RoBERTa, ELECTRA, XLM-R, DistilBERT layouts).
        output: Run folder to write (model/ is a plain HF folder; loading pruned shapes: docs/guides/compression.md).
        heads: Heads to remove: a fraction of all heads (0.3), or per-layer counts (0:2,3:4 removes 2 heads of layer
            0 and 4 of layer 3). The least important heads (Michel et al., 2019) go first.
        ffn: Fraction of FFN (intermediate) neurons to remove, least important first.
        sparsity: Fraction of encoder Linear weights to zero by magnitude (unstructured; permanent).
        budget: global ranks heads/neurons/weights of all layers together; layer removes the same fraction per layer.
        importance_split: Split whose examples score head and neuron importance (gradients of the loss).
        importance_samples: Examples used to score importance.
        recover: After pruning: none, a short finetune on the training data, or distill (logit KD from the unpruned
            model).
        recover_epochs: Epochs of recovery training.
        recover_lr: Learning rate of recovery training.
        batch_size: Batch size for importance scoring, evaluation and recovery.
        eval_split: Split on which accuracy before/after pruning is reported.
        seed: Random seed.
        overwrite: Replace an existing output folder.
    """

    model: str = ""
    output: str = "runs/prune"
    heads: Optional[str] = None
    ffn: float = opt(0.0, FRACTION_BELOW_1)
    sparsity: float = opt(0.0, FRACTION_BELOW_1)
    budget: Literal["global", "layer"] = "global"
    importance_split: str = "dev"
    importance_samples: int = opt(512, AT_LEAST_1)
    recover: Literal["none", "finetune", "distill"] = "none"
    recover_epochs: float = opt(1.0, POSITIVE)
    recover_lr: float = opt(5e-5, POSITIVE)
    batch_size: int = opt(32, AT_LEAST_1)
    eval_split: str = "test"
    seed: int = opt(42, SEED)
    overwrite: bool = False


@dataclass
class MergeConfig(Checked):
    """Fold a LoRA (or BitFit) adapter into its base model and save a plain model folder for deployment.

    Args:
        model: Adapter folder or run folder trained with --peft lora or --peft bitfit.
        output: Folder for the merged model.
        overwrite: Replace an existing output folder.
    """

    model: str = ""
    output: str = ""
    overwrite: bool = False
