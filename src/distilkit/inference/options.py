"""Options of `distilkit predict` (kept beside the code they configure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from distilkit.option_rules import AT_LEAST_1, COUNT, MAX_LENGTH, Checked, opt


@dataclass
class PredictConfig(Checked):
    """Predict labels (or tags) for texts given as arguments, in a file, or on stdin; writes JSONL.

    Args:
        model: Model folder or distilkit run folder.
        texts: Texts to classify. For pair tasks join the two texts with a tab.
        file: Read texts from this file: plain text (one per line; tab separates a pair) or JSONL with a text field.
        text_column: JSONL field with the text.
        text_pair_column: JSONL field with the second text of a pair.
        output: Write JSONL here instead of stdout.
        batch_size: Prediction batch size.
        max_length: Maximum tokens per text (longer texts are truncated and flagged); default: the smaller of 128
            and the model's positions.
        top_k: Scores to report per text (0 = all labels).
        overwrite: Replace an existing --output file.
    """

    model: str = ""
    texts: Optional[list[str]] = None
    file: Optional[str] = None
    text_column: str = "text"
    text_pair_column: Optional[str] = None
    output: Optional[str] = None
    batch_size: int = opt(64, AT_LEAST_1)
    max_length: Optional[int] = opt(None, MAX_LENGTH)
    top_k: int = opt(0, COUNT)
    overwrite: bool = False
