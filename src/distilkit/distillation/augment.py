"""`distilkit augment`: write an augmented copy of a data file, in the format it was read.

CSV/TSV/JSONL/Parquet/Arrow keep every column (only the text columns change); CoNLL is written as `word tag`
lines.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from distilkit.budget import check_memory
from distilkit.console import show
from distilkit.data.readers import detect_format, read_file
from distilkit.distillation.augmentation import augment_rows, augmented_bytes, text_fields
from distilkit.distillation.general import has_mlm_head
from distilkit.distillation.options import AugmentConfig
from distilkit.errors import DistilkitError
from distilkit.files import write_atomic
from distilkit.models import load_tokenizer, resolve_model
from distilkit.runs import check_new_file


def load_augment_model(name: str):
    """(embedding model, tokenizer, MLM model or None): the MLM head is used when the folder has a trained one."""
    from transformers import AutoModel, AutoModelForMaskedLM

    path = resolve_model(name)
    tokenizer = load_tokenizer(path)
    if has_mlm_head(path):
        mlm = AutoModelForMaskedLM.from_pretrained(path)
        return mlm, tokenizer, mlm
    try:
        return AutoModel.from_pretrained(path), tokenizer, None
    except (OSError, ValueError) as err:
        raise DistilkitError(f"{path}: cannot load the model ({str(err).splitlines()[0]})") from None


def _columnar(rows: list[dict], fmt: str, columns: list[str]) -> bytes:
    """Parquet, or the Arrow stream format `datasets` writes and reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{k: r[k] for k in columns} for r in rows])
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _render(rows: list[dict], fmt: str, columns: list[str]) -> str | bytes:
    if fmt in ("parquet", "arrow"):
        return _columnar(rows, fmt, columns)
    if fmt in ("csv", "tsv"):
        buffer = io.StringIO()
        quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
        writer = csv.DictWriter(
            buffer,
            fieldnames=columns,
            delimiter="\t" if fmt == "tsv" else ",",
            quoting=quoting,
            escapechar="\\" if fmt == "tsv" else None,
            extrasaction="ignore",
            lineterminator="\n",
        )
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "jsonl":
        return "".join(json.dumps({k: r[k] for k in columns}, ensure_ascii=False) + "\n" for r in rows)
    return "\n\n".join("\n".join(f"{t} {g}" for t, g in zip(r["tokens"], r["tags"])) for r in rows) + "\n"


def augment(cfg: AugmentConfig, resolved: dict | None = None) -> Path:
    source, output = Path(cfg.data), Path(cfg.output)
    check_new_file(output, cfg.overwrite, inputs=(cfg.data,))
    fmt = detect_format(source, cfg.format)
    if fmt == "disk":
        raise DistilkitError(
            f"{source}: augment reads and writes files (CSV, TSV, JSONL, CoNLL, Parquet, Arrow), not save_to_disk "
            "folders"
        )
    if cfg.copies < 1:
        raise DistilkitError(f"--copies {cfg.copies}: must be at least 1")
    rows = list(read_file(source, fmt))  # augment keeps every row (estimated by check_memory below)
    columns = [c for c in rows[0] if c != "_where"]
    token_task = fmt == "conll" or isinstance(rows[0].get(cfg.tokens_column), list)
    if token_task:
        task, keys = "token-classification", ()
        if cfg.tokens_column not in rows[0]:
            raise DistilkitError(f"{source}: no column {cfg.tokens_column!r}; columns found: {', '.join(columns)}")
    else:
        task = "sequence-classification"
        keys = tuple(k for k in (cfg.text_column, cfg.text_pair_column) if k)
        missing = [k for k in keys if k not in rows[0]]
        if missing:
            raise DistilkitError(
                f"{source}: no column {missing[0]!r}; columns found: {', '.join(columns)}; pass --text-column"
            )
    fields = text_fields(rows, task, keys, "tokens" if fmt == "conll" else cfg.tokens_column)
    check_memory(
        augmented_bytes(rows, cfg.copies, fields),
        f"--copies {cfg.copies}: {len(rows):,} examples × {cfg.copies + 1} = {len(rows) * (cfg.copies + 1):,} rows",
        "use fewer --copies, or augment the file in parts",
    )
    model, tokenizer, mlm = load_augment_model(cfg.model)
    print(
        f"augmenting {len(rows)} examples × {cfg.copies} copies with "
        f"{'MLM predictions + ' if mlm is not None else ''}embedding neighbours of {cfg.model}"
    )
    augmented = augment_rows(
        rows,
        task,
        model,
        tokenizer,
        cfg.copies,
        cfg.p,
        cfg.seed,
        text_keys=keys,
        tokens_key="tokens" if fmt == "conll" else cfg.tokens_column,
        top_k=cfg.top_k,
        mlm_model=mlm,
    )
    write_atomic(output, _render(augmented, fmt, columns))
    show(
        f"wrote {len(augmented)} examples ({len(rows)} originals + {len(augmented) - len(rows)} augmented) to {output}"
    )
    return output
