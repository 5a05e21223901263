"""`distilkit export`: a fine-tuned model → an ONNX folder that ONNX Runtime runs without torch.

torch.onnx.export (the dynamo exporter, with onnxscript) traces the model with dynamic batch and sequence axes;
the result is checked against PyTorch on real examples of the model's task (padded batches of mixed lengths),
then ONNX Runtime's transformer fusions are applied and checked again. Nothing is written unless the parity
check passes (max |logit difference| ≤ --tolerance, 1e-4 by default).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from distilkit.compress.attention_fusion import fuse_biased_attention
from distilkit.compress.common import default_output, with_run_data
from distilkit.compress.export_patches import patched_for_export
from distilkit.compress.first_token import compute_first_token_only
from distilkit.compress.options import ExportConfig
from distilkit.console import show
from distilkit.data.dataset import TOK
from distilkit.data.encode import collator_for, encode_rows
from distilkit.errors import DistilkitError
from distilkit.files import folder_bytes, write_json
from distilkit.hub.card_exports import export_card
from distilkit.inference.embedding import is_embedding_model
from distilkit.inference.loading import MODEL_INPUTS, load_trained, run_batches
from distilkit.inference.onnx_model import META_FILE, ONNX_FILE, OnnxClassifier, is_onnx_folder
from distilkit.runs import RunFolder

# Real sentences for the parity check when the model's data is unknown (a model folder without its run).
SAMPLE_TEXTS = [
    "The central bank raised interest rates by a quarter point on Thursday.",
    "She scored twice in the second half as the home side came back to win.",
    "New phones from the company will ship with a faster chip and a larger battery.",
    "Ministers are expected to publish the bill after the summer recess.",
    "The film, a quiet drama about two sisters, opened to strong reviews in London.",
    "Shares fell sharply.",
    "A spokesman said talks would continue next week, although no date has been fixed for the final vote.",
    "Researchers released an open-source tool that translates legacy code into modern languages.",
]
# Model types ONNX Runtime's transformer optimizer knows how to fuse (its "bert" fusions cover these layouts):
# LayerNorms and GELUs. Their attention, as transformers 5 and the dynamo exporter write it, it does not match;
# distilkit's own pass (compress/attention_fusion.py) fuses that.
ORT_FUSABLE = ("bert", "roberta", "xlm-roberta", "electra", "camembert", "distilbert", "mpnet", "albert")


class LogitsOnly(torch.nn.Module):
    """The model with positional tensor inputs and the logits as its one output (what the ONNX graph exposes)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def parity_rows(cfg: ExportConfig, trained) -> tuple[list[dict], str]:
    """Real examples for the parity check: the model's own data when known, else built-in sentences."""
    from distilkit.evaluation.evaluate import split_rows_for

    try:
        opts = with_run_data(cfg, cfg.model, "the parity check")
    except DistilkitError:
        opts = None
    if opts is not None:
        data, split, rows = split_rows_for(trained, opts, cfg.parity_split, as_in_training=True)
        return rows[: cfg.parity_samples], f"{data.name} ({split})"
    if trained.task == TOK:
        return [{"tokens": t.split()} for t in SAMPLE_TEXTS], "built-in sample sentences"
    return [{"text": t} for t in SAMPLE_TEXTS], "built-in sample sentences"


def plain_torch_model(trained):
    """The torch model to export: LoRA/BitFit adapters are merged in memory; other adapters are refused."""
    model = trained.model
    if hasattr(model, "peft_config"):
        if not hasattr(model, "merge_and_unload") or next(iter(model.peft_config.values())).peft_type.value != "LORA":
            raise DistilkitError(
                f"{trained.path}: only LoRA adapters can be merged for export; fine-tune without "
                "--peft (or with --peft lora) to export this model"
            )
        model = model.merge_and_unload()
    return model.eval()


@contextlib.contextmanager
def quiet_exporter():
    """The exporter prints progress to stdout and logs warnings, and on failure whole FX graphs, through torch's
    own stderr handlers (transformers adds model notes). None of it helps a distilkit user: a failure is
    reported as one line instead. Handler levels are raised for the duration and restored after."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.startswith(("torch", "transformers"))]
    handlers = [h for n in names for h in logging.getLogger(n).handlers]
    levels = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(logging.CRITICAL + 1)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for h, level in zip(handlers, levels):
            h.setLevel(level)


def export_graph(
    model, example: dict, input_names: list[str], out_file: Path, opset: int, outputs: list[str] | None = None
) -> None:
    """torch.onnx.export with dynamic batch/sequence axes; failures become one clear error line. Without `outputs`
    the graph gives the model's logits; with them, the module's own outputs under those names."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: seq} for name in input_names}
    args = tuple(example[name] for name in input_names)
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.8e9  # protobuf's 2 GB limit
    try:
        with quiet_exporter(), torch.no_grad():
            torch.onnx.export(
                LogitsOnly(model) if outputs is None else model,
                args,
                str(out_file),
                input_names=input_names,
                output_names=outputs or ["logits"],
                dynamic_shapes=dynamic,
                opset_version=opset,
                dynamo=True,
                external_data=large,
                verbose=False,
            )
    except Exception as err:  # the exporter raises many types; all mean "this model cannot be exported as is"
        root = err
        while root.__cause__ is not None:  # the exporter wraps torch.export's error, which says what failed
            root = root.__cause__
        detail = (str(root).strip().splitlines() or [type(root).__name__])[0][:300]
        raise DistilkitError(
            f"{type(model).__name__} ({model.config.model_type}): torch.onnx.export cannot export this "
            f"architecture ({type(root).__name__}: {detail}); export a supported encoder (BERT, RoBERTa, "
            "DistilBERT, ELECTRA, MiniLM, ...) or distil into one"
        ) from None


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(max(np.abs(x - y).max() for x, y in zip(a, b)))


def optimize_graph(src: Path, dst: Path, config, first_token: bool = True) -> dict:
    """ONNX Runtime's transformer fusions (LayerNorm, GELU, attention when the pattern matches), then distilkit's
    fusion of the attentions ONNX Runtime does not match (MPNet's biased one, SDPA's decomposition), then, with
    `first_token`, the last layer cut to the one token a sequence classifier reads (compress/first_token.py)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False  # ONNX Runtime's slow kernel: see onnx_model.SLOW_FUSIONS
    # Gelu stays apart from the bias Add before it: after dynamic int8, ONNX Runtime folds that Add into the
    # DynamicQuantizeMatMul, where it costs almost nothing; a BiasGelu took it first (0.34 ms of 6.5 on the
    # 4L-312 student, one interleaved A/B). fp32 graphs lose nothing: ONNX Runtime fuses Add + Gelu into BiasGelu
    # when it loads them.
    options.enable_bias_gelu = False
    with contextlib.redirect_stdout(io.StringIO()):
        optimized = optimize_model(
            str(src), model_type="bert", num_heads=0, hidden_size=0, optimization_options=options
        )
    fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    counts = fuse_biased_attention(optimized.model, config.num_attention_heads)
    fused.update({op: n for op, n in counts.items() if n})
    if first_token and (moved := compute_first_token_only(optimized.model)):
        fused["FirstTokenOnly"] = moved
    optimized.save_model_to_file(str(dst))
    return fused


def export(cfg: ExportConfig, resolved: dict | None = None) -> Path:
    if is_onnx_folder(cfg.model):
        raise DistilkitError(f"{cfg.model}: this is already an ONNX folder; pass the PyTorch model folder or run")
    if is_embedding_model(cfg.model):
        from distilkit.compress.embedding_export import export_embedding

        return export_embedding(cfg)
    if cfg.tolerance <= 0:
        raise DistilkitError(f"--tolerance {cfg.tolerance}: must be > 0")
    output = cfg.output or default_output(cfg.model, "onnx")
    run = RunFolder(output, cfg.overwrite, resumable=False, what="export")
    run.check()
    trained = load_trained(cfg.model, cfg.max_length)
    cfg.max_length = trained.max_length
    model = plain_torch_model(trained)
    rows, rows_from = parity_rows(cfg, trained)
    dataset, _ = encode_rows(
        rows, trained.task, trained.tokenizer, cfg.max_length, trained.label2id, trained.regression
    )
    collator = collator_for(trained.task, trained.tokenizer)
    # reference logits first: tracing for export can leave the eager model in a different state
    reference = run_batches(model, dataset, collator, 8)

    accepted = set(trained.tokenizer.model_input_names)
    input_names = [n for n in MODEL_INPUTS if n in accepted and n in dataset.column_names]
    sample = collator([{k: dataset[i][k] for k in input_names} for i in range(min(2, len(dataset)))])
    if sample["input_ids"].shape[0] < 2 or sample["input_ids"].shape[1] < 3:
        raise DistilkitError(f"{rows_from}: need at least 2 examples of 3+ tokens to trace dynamic axes")

    work = run.prepare()
    try:
        started = time.perf_counter()
        with patched_for_export(model) if cfg.patches else contextlib.nullcontext([]) as patches:
            export_graph(model, sample, input_names, work / ONNX_FILE, cfg.opset)
        seconds = time.perf_counter() - started
        diff = max_difference(run_batches(OnnxClassifier(work), dataset, collator, 8), reference)
        if not diff <= cfg.tolerance:  # NaN logits fail too
            raise DistilkitError(
                f"parity check failed: max |logit difference| {diff:.2e} > --tolerance {cfg.tolerance}"
                f" on {len(rows)} examples of {rows_from}; nothing written"
            )
        parity = {"examples": len(rows), "inputs": rows_from, "max_abs_logit_diff": diff}
        fused = {}
        if cfg.optimize and model.config.model_type in ORT_FUSABLE:
            fused, kept_diff = optimize_if_equal(work, model.config, (dataset, collator), reference, cfg.tolerance)
            if kept_diff is not None:
                parity["max_abs_logit_diff_optimized"] = kept_diff
        config = model.config
        config.architectures = [type(model).__name__]
        config.save_pretrained(work)
        trained.tokenizer.save_pretrained(work)
        meta = {
            "task": trained.task,
            "labels": trained.labels,
            "regression": trained.regression,
            "inputs": input_names,
            "source": str(Path(trained.path).resolve()),
            "opset": cfg.opset,
            "max_length": cfg.max_length,
            "export_seconds": round(seconds, 1),
            "export_patches": patches,
            "fused_operators": fused,
            "parity": parity,
            "size_bytes": (work / ONNX_FILE).stat().st_size,
        }
        write_json(work / META_FILE, meta)
        export_card(work, cfg.model, meta)
        final = run.finish()
    except BaseException as err:
        run.fail(err)
    show(f"exported {trained.path} → {final / ONNX_FILE} ({folder_bytes(final) / 1e6:.1f} MB folder)")
    after = parity.get("max_abs_logit_diff_optimized")
    show(
        f"parity on {len(rows)} examples of {rows_from}: max |logit difference| {diff:.2e} (tolerance "
        f"{cfg.tolerance})" + (f"; after fusions {after:.2e}" if after is not None else "")
    )
    if fused:
        show("ONNX Runtime fusions: " + ", ".join(f"{k} {v}" for k, v in fused.items()))
    return final


def optimize_if_equal(
    work: Path, config, inputs: tuple, reference: list, tolerance: float
) -> tuple[dict, float | None]:
    """Fuse work/model.onnx (optimize_graph) and keep the fused graph only if its logits on `inputs` (the encoded
    parity rows and their collator) stay within `tolerance` of the PyTorch reference. Returns the fused operator
    counts and the kept graph's max |logit difference|, or why the fusions were skipped and None."""
    fused = optimize_graph(work / ONNX_FILE, work / "optimized.onnx", config)
    diff = max_difference(run_batches(OnnxClassifier(work / "optimized.onnx"), *inputs, 8), reference)
    if not diff <= tolerance:  # also NaN; keep the plain graph: a fusion that changes results is not worth its speed
        (work / "optimized.onnx").unlink()
        return {"skipped": f"optimized graph differs by {diff:.2e}"}, None
    (work / "optimized.onnx").replace(work / ONNX_FILE)
    return fused, diff
