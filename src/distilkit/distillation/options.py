"""Options of `distilkit augment` (`distill` takes DistillConfig from distilkit.config: the pipeline,
search and prune's recovery build it too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from distilkit.config import DataFormat
from distilkit.option_rules import AT_LEAST_1, PROBABILITY, SEED, Checked, opt


@dataclass
class AugmentConfig(Checked):
    """Write an augmented copy of a data file (TinyBERT-style word replacement), in the format it was read.

    Args:
        data: Input file (CSV, TSV, JSONL or CoNLL).
        output: Output file (same format as the input).
        model: Model whose tokenizer and embeddings (and MLM head, if trained) pick replacement words.
        copies: Augmented copies per example (the originals are kept too).
        p: Probability of replacing each eligible word (stop words and non-words are kept).
        top_k: Candidates per word (nearest neighbours or MLM predictions).
        seed: Random seed.
        format: Input format; auto picks it from the extension.
        text_column: Column with the text.
        text_pair_column: Column with the second text of a pair (augmented too).
        tokens_column: JSONL token classification: column with the list of words.
        overwrite: Replace an existing output file.
    """

    data: str = ""
    output: str = ""
    model: str = "minilm-l6"
    copies: int = opt(4, AT_LEAST_1)
    p: float = opt(0.4, PROBABILITY)
    top_k: int = opt(15, AT_LEAST_1)
    seed: int = opt(42, SEED)
    format: DataFormat = "auto"
    text_column: str = "text"
    text_pair_column: Optional[str] = None
    tokens_column: str = "tokens"
    overwrite: bool = False
