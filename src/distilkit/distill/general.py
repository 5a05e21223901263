"""General (task-agnostic) distillation on raw text: TinyBERT's first phase, MiniLM's only phase.

The data is plain text (one text per line; blank lines skipped) or a CSV/JSONL with a text column. The teacher
is a bare encoder, or a masked-LM model when its folder holds a trained MLM head: then the MLM logits are
distilled per token as well. The packaged MiniLM has no trained MLM head, so offline runs use intermediate
losses only.
"""

from __future__ import annotations

from pathlib import Path

from distilkit.data.dataset import TaskData
from distilkit.data.readers import detect_format, read_delimited, read_jsonl, read_text
from distilkit.errors import DistilkitError
from distilkit.models import resolve_model

MLM_HEAD_PREFIXES = ("cls.predictions.", "lm_head.", "vocab_projector.", "generator_lm_head.")


def has_mlm_head(path: str) -> bool:
    """True when the saved weights include a masked-LM head (not just an encoder)."""
    folder = Path(path)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return False
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            if any(
                k.startswith(MLM_HEAD_PREFIXES) or ".".join(k.split(".")[1:]).startswith(MLM_HEAD_PREFIXES)
                for k in handle.keys()
            ):
                return True
    return False


def read_raw_text(data: str, text_column: str, max_examples: int | None) -> TaskData:
    path = Path(data)
    if not path.is_file():
        raise DistilkitError(f"--data {data}: general distillation needs a text file (one text per line), CSV or JSONL")
    fmt = detect_format(path, "auto") if path.suffix in (".csv", ".tsv", ".jsonl", ".json") else "text"
    if fmt in ("csv", "tsv", "jsonl"):
        rows = read_jsonl(path) if fmt == "jsonl" else read_delimited(path, "," if fmt == "csv" else "\t")
        if text_column not in rows[0]:
            found = ", ".join(k for k in rows[0] if k != "_where")
            raise DistilkitError(f"{path}: no column {text_column!r}; columns found: {found}; pass --text-column")
        texts = [str(r[text_column]) for r in rows if str(r.get(text_column) or "").strip()]
    else:
        texts = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if max_examples:
        texts = texts[:max_examples]
    if not texts:
        raise DistilkitError(f"{path}: no text lines found")
    return TaskData(
        name=path.name, task="general", regression=False, labels=[], splits={"train": [{"text": t} for t in texts]}
    )


def load_general_teacher(name_or_path: str):
    """(model, tokenizer, uses_mlm) for general distillation."""
    from transformers import AutoModel, AutoModelForMaskedLM

    from distilkit.models import load_tokenizer

    path = resolve_model(name_or_path)
    uses_mlm = has_mlm_head(path)
    auto = AutoModelForMaskedLM if uses_mlm else AutoModel
    try:
        model = auto.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise DistilkitError(f"{path}: cannot load the teacher ({str(err).splitlines()[0]})") from None
    model.eval()
    return model, load_tokenizer(path), uses_mlm, path
