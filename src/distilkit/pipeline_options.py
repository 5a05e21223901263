"""Options of `distilkit run` (the recipe file itself is described in distilkit.pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from distilkit.option_rules import Checked


@dataclass
class PipelineConfig(Checked):
    """Run a recipe end to end into one run folder: teacher → students → prune → ONNX + int8 → evaluate → bench → report.

    Args:
        recipe: Recipe YAML file (see recipes/ and the README).
        output: Run folder (default: the recipe's output).
        overwrite: Start again from scratch instead of resuming (finished stages are otherwise skipped).
    """

    recipe: Optional[str] = None
    output: Optional[str] = None
    overwrite: bool = False
