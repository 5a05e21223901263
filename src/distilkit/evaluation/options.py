"""Options of `distilkit bench` and `distilkit report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from distilkit.config import DataOptions, SplitName
from distilkit.option_rules import AT_LEAST_1, COUNT, FRACTION, MAX_LENGTH, Checked, opt

Backend = Literal["auto", "torch", "torch-bf16", "onnx"]


@dataclass
class BenchConfig(Checked):
    """Measure models side by side: parameters, size, FLOPs, latency p50/p95 (batch 1), throughput, peak memory.

    Args:
        models: Models to compare (run folders, model folders, ONNX folders); the first is the baseline of the
            speed-up columns.
        backend: auto runs PyTorch folders with torch fp32 and ONNX folders with ONNX Runtime; torch-bf16 adds
            bf16 autocast where the hardware supports it; onnx uses each run's onnx/ export.
        seq_len: Sequence length of the synthetic inputs (ignored with --data).
        data: Take real texts (and so real lengths) from this dataset's test split instead.
        max_length: Truncate real texts to this many tokens (default: the smaller of 128 and the models' positions).
        batch_size: Batch size of the throughput measurement.
        rounds: Timed rounds; every model runs once per round (interleaved), medians and p95 over rounds.
        settle_ms: Before each timed call, run the same model untimed for at least this long, so the calls
            of the model before it (whose worker threads still spin, whose data fills the caches) do not slow
            it; 0 times each model right after the previous one, as distilkit bench did before.
        warmup: Untimed calls per model first.
        threads: CPU threads for torch and ONNX Runtime (default: torch's default).
        memory: Measure peak memory (a subprocess per model loads it and runs one batch).
        output: Write the results as JSON here.
        overwrite: Replace an existing --output file.
    """

    models: list[str] = field(default_factory=list)
    backend: Backend = "auto"
    seq_len: int = opt(128, AT_LEAST_1)
    data: Optional[str] = None
    max_length: Optional[int] = opt(None, MAX_LENGTH)
    batch_size: int = opt(32, AT_LEAST_1)
    rounds: int = opt(30, AT_LEAST_1)
    settle_ms: int = opt(50, COUNT)
    warmup: int = opt(3, COUNT)
    threads: Optional[int] = opt(None, AT_LEAST_1)
    memory: bool = True
    output: Optional[str] = None
    overwrite: bool = False


@dataclass
class ReportConfig(Checked):
    """Write report.html (plots embedded) and report.md for pipeline runs: teacher vs every student and variant.

    Args:
        runs: Pipeline run folders (written by distilkit run).
        output: Folder for report.html, report.md and the plots (default: the first run folder).
        min_retention: Share of the teacher's score a model must keep to be recommended.
        retention_rule: How --min-retention is judged: lower = the lower end of the retention's 95% interval (from
            the paired comparison with the teacher on the same test examples) must reach it; point = the point
            estimate must (a model without a paired comparison is judged on its point estimate, and the report
            says so).
    """

    runs: list[str] = field(default_factory=list)
    output: Optional[str] = None
    min_retention: float = opt(0.98, FRACTION)
    retention_rule: Literal["lower", "point"] = "lower"


@dataclass
class EvaluateConfig(DataOptions):
    """Evaluate a saved model on a dataset of its task.

    Args:
        model: Model folder or distilkit run folder.
        eval_split: Which split to evaluate when --data has splits; a single data file is evaluated whole.
        output: Folder for metrics.json, report.md and confusion_matrix.png (default: print only).
        batch_size: Evaluation batch size.
        json: Print the metrics as JSON instead of a table.
        overwrite: Replace the files of an earlier evaluation in --output.
        compare: Another model of the same labels (the teacher, say), scored on the same examples: adds the paired
            difference --model minus it, with a bootstrap interval and McNemar's exact test for accuracy.
    """

    model: str = ""
    eval_split: SplitName = "test"
    output: Optional[str] = None
    batch_size: int = opt(64, AT_LEAST_1)
    json: bool = False
    overwrite: bool = False
    compare: Optional[str] = None
