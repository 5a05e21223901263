"""The per-benchmark sections of docs/results.md, in page order (scripts/results_page.py writes the page; the
suite's own sections come first there). Each section takes the results folder and returns Markdown, or "" when its
JSON is missing; the sections live in results_accuracy.py and results_speed.py, their formatting in
results_format.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from results_accuracy import (
    ablation_section,
    augment_candidates_section,
    compress_section,
    continual_section,
    distill_builtin_section,
    finetune_section,
    folds_section,
    mpnet_section,
    peft_section,
    restated_section,
)
from results_speed import (
    api_overhead_section,
    augment_speed_section,
    data_memory_section,
    distill_cache_section,
    embeddings_section,
    general_scale_section,
    intervals_speed_section,
    mlm_head_section,
    onnx_fusions_section,
    peer_section,
    serve_load_section,
)

# In the order docs/benchmarks.md discusses them (results_page.py puts the suite and precision sections first).
SECTIONS: list[Callable[[Path], str]] = [
    restated_section,
    folds_section,
    finetune_section,
    distill_builtin_section,
    ablation_section,
    mpnet_section,
    onnx_fusions_section,
    general_scale_section,
    distill_cache_section,
    augment_speed_section,
    mlm_head_section,
    augment_candidates_section,
    peft_section,
    continual_section,
    compress_section,
    serve_load_section,
    api_overhead_section,
    peer_section,
    embeddings_section,
    data_memory_section,
    intervals_speed_section,
]
