"""`distilkit predict`: texts in, JSONL out (label and probabilities, or a tag per word)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from distilkit.config import PredictConfig
from distilkit.data.dataset import TOK
from distilkit.data.encode import collator_for, encode_rows
from distilkit.data.readers import read_text
from distilkit.errors import DistilkitError
from distilkit.inference import load_trained, run_batches, softmax
from distilkit.runs import write_atomic


def read_inputs(cfg: PredictConfig) -> list[dict]:
    """Texts from arguments, a file (plain lines or JSONL) or stdin, as rows {"text", "text_pair"?}."""
    rows: list[dict] = []
    if cfg.texts:
        lines = list(cfg.texts)
    elif cfg.file:
        path = Path(cfg.file)
        if path.suffix in (".jsonl", ".json"):
            from distilkit.data.readers import read_jsonl

            for item in read_jsonl(path):
                if cfg.text_column not in item:
                    found = ", ".join(k for k in item if k != "_where")
                    raise DistilkitError(f"{item['_where']}: no field {cfg.text_column!r}; fields found: {found}")
                row = {"text": str(item[cfg.text_column])}
                if cfg.text_pair_column:
                    row["text_pair"] = str(item.get(cfg.text_pair_column, ""))
                rows.append(row)
            return rows
        lines = read_text(path).splitlines()
    elif not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    else:
        raise DistilkitError("no texts: pass them as arguments, with --file, or on stdin")
    for line in lines:
        if not line.strip():
            continue
        first, tab, second = line.partition("\t")
        rows.append({"text": first, "text_pair": second} if tab else {"text": line})
    if not rows:
        raise DistilkitError("no texts: the input has only empty lines")
    return rows


def predict_rows(trained, rows: list[dict], batch_size: int = 64, max_length: int = 128, top_k: int = 0) -> list[dict]:
    """Predictions for rows {"text", "text_pair"?}; shared by the CLI and the server."""
    if trained.task == TOK:
        inputs = [{"tokens": r["text"].split()} for r in rows]
    else:
        pairs = any("text_pair" in r for r in rows)
        inputs = [{"text": r["text"], **({"text_pair": r.get("text_pair", "")} if pairs else {})} for r in rows]
    dataset, _ = encode_rows(inputs, trained.task, trained.tokenizer, max_length, trained.label2id, trained.regression)
    logits = run_batches(trained.model, dataset, collator_for(trained.task, trained.tokenizer), batch_size)
    out = []
    for row, item, lg, i in zip(rows, inputs, logits, range(len(rows))):
        result = {"text": row["text"], **({"text_pair": row["text_pair"]} if "text_pair" in row else {})}
        if trained.task == TOK:
            tags, seen = [None] * len(item["tokens"]), set()
            for pos, w in enumerate(dataset[i]["word_ids"]):
                if w >= 0 and w not in seen:
                    seen.add(w)
                    tags[w] = trained.labels[int(lg[pos].argmax())]
            result.update(tokens=item["tokens"], tags=tags, truncated=None in tags)
        elif trained.regression:
            result.update(score=float(lg[0]))
        else:
            probs = softmax(lg)
            ranked = sorted(range(len(probs)), key=lambda j: -probs[j])
            if top_k:
                ranked = ranked[:top_k]
            best = ranked[0]
            result.update(
                label=trained.labels[best],
                score=float(probs[best]),
                scores={trained.labels[j]: round(float(probs[j]), 6) for j in ranked},
            )
        out.append(result)
    return out


def predict(cfg: PredictConfig) -> list[dict]:
    trained = load_trained(cfg.model)
    rows = read_inputs(cfg)
    results = predict_rows(trained, rows, cfg.batch_size, cfg.max_length, cfg.top_k)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if cfg.output:
        write_atomic(Path(cfg.output), text)
    else:
        sys.stdout.write(text)
    return results
