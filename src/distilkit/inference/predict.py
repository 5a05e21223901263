"""`distilkit predict`: texts in, JSONL out (label and probabilities, or a tag per word and entity spans).

`Predictor` is also what `distilkit serve` runs, so the command line and the server answer alike.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distilkit.console import show
from distilkit.data.dataset import TOK
from distilkit.data.readers import decode_utf8, read_text
from distilkit.errors import DistilkitError
from distilkit.files import write_atomic
from distilkit.inference.loading import (
    MODEL_INPUTS,
    TrainedModel,
    length_groups,
    load_trained,
    model_logits,
    pad_rows,
    softmax,
)
from distilkit.inference.options import PredictConfig
from distilkit.runs import check_new_file

WORD = re.compile(r"\S+")  # the words of `str.split()`, with their positions


def read_stdin() -> str:
    """stdin as UTF-8 (a BOM is dropped); other bytes are one error line naming the line, not a traceback."""
    if not hasattr(sys.stdin, "buffer"):  # already text (a program that replaced sys.stdin)
        return sys.stdin.read()
    fix = "send UTF-8 text (e.g. iconv -f latin1 -t utf-8 file | distilkit predict ...)"
    return decode_utf8(sys.stdin.buffer.read(), "stdin", fix)


def unencodable_at(text: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), or None. JSON escapes and
    command-line arguments in another encoding (surrogateescape) both produce them; the tokenizer refuses them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def check_text(text: str, where: str) -> None:
    """Refuse text that is not Unicode text: command-line arguments in another encoding reach Python as lone
    surrogates (surrogateescape), which the tokenizer cannot take."""
    at = unencodable_at(text)
    if at is not None:
        raise DistilkitError(
            f"{where}: character {at} is not valid text (bytes in another encoding than UTF-8?); pass UTF-8 text"
        )


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
        lines = read_stdin().splitlines()
    else:
        raise DistilkitError("no texts: pass them as arguments, with --file, or on stdin")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        check_text(line, f"text {number}" if cfg.texts else f"{cfg.file or 'stdin'}:{number}")
        first, tab, second = line.partition("\t")
        rows.append({"text": first, "text_pair": second} if tab else {"text": line})
    if not rows:
        raise DistilkitError("no texts: the input has only empty lines")
    return rows


def entity_spans(text: str, spans: list[tuple[int, int]], tags: list, confidence: list[float]) -> list[dict]:
    """Group B-X/I-X tags into spans with character offsets; other tag sets (POS tags, ...) give no entities.

    An I-X that does not continue an X span opens one (the usual lenient reading of IOB); a word cut off by
    truncation (tag None) closes the current span.
    """
    entities: list[dict] = []
    current: dict | None = None
    for i, tag in enumerate(tags):
        prefix, dash, kind = (tag or "O").partition("-")
        if not dash or prefix not in ("B", "I") or not kind:
            current = None
            continue
        if prefix == "B" or current is None or current["label"] != kind:
            current = {"label": kind, "start": spans[i][0], "end": spans[i][1], "_scores": []}
            entities.append(current)
        current["end"] = spans[i][1]
        current["_scores"].append(confidence[i])
    for entity in entities:
        scores = entity.pop("_scores")
        entity.update(text=text[entity["start"] : entity["end"]], score=round(float(np.mean(scores)), 6))
    return entities


@dataclass
class Predictor:
    """Predictions for rows {"text", "text_pair"?} from a loaded model, shared by `distilkit predict` and the server.

    Calls the fast tokenizer directly (going through `datasets` as training does costs ~90 ms per call: more than a
    whole server request may take), pads each length group on its own (`inference.length_groups`), and adds a
    `truncated` flag for every task and, for BIO tags, entity spans with character offsets into the text.
    """

    trained: TrainedModel
    max_length: int = 128
    top_k: int = 0

    def predict(self, rows: list[dict]) -> list[dict]:
        """Results in the rows' order; single texts and pairs tokenize differently, so each kind is one batch."""
        if self.trained.task == TOK:
            return self._tag(rows)
        out: list[dict] = [{} for _ in rows]
        for pair in (False, True):
            idx = [i for i, r in enumerate(rows) if ("text_pair" in r) == pair]
            if idx:
                for i, result in zip(idx, self._classify([rows[i] for i in idx], pair)):
                    out[i] = result
        return out

    def _encode(self, first, second=None, words: bool = False):
        """Unpadded encodings: `_logits` pads each length group on its own."""
        return self.trained.tokenizer(
            first, second, truncation=True, max_length=self.max_length, is_split_into_words=words
        )

    def _logits(self, enc) -> list[np.ndarray]:
        """Each row's logits (token logits trimmed to the row's length), one forward pass per length group."""
        ids = enc["input_ids"]
        keys = [k for k in MODEL_INPUTS if k in enc]
        out: list = [None] * len(ids)
        for group in length_groups([len(x) for x in ids]):
            batch = pad_rows([{k: enc[k][i] for k in keys} for i in group], self.trained.tokenizer.pad_token_id or 0)
            with torch.inference_mode():
                logits = model_logits(self.trained.model, batch)
            if not np.isfinite(logits).all():  # a broken graph or weights: NaN is no answer, and not JSON either
                raise DistilkitError(
                    f"{self.trained.path}: the model gave NaN or infinite scores; its weights or graph are broken: "
                    "train or export it again"
                )
            for j, i in enumerate(group):
                out[i] = logits[j, : len(ids[i])] if logits.ndim == 3 else logits[j]
        return out

    def _classify(self, rows: list[dict], pair: bool) -> list[dict]:
        enc = self._encode([r["text"] for r in rows], [r["text_pair"] for r in rows] if pair else None)
        logits = self._logits(enc)
        labels, out = self.trained.labels, []
        for row, lg, encoding in zip(rows, logits, enc.encodings):
            result = {"text": row["text"], **({"text_pair": row["text_pair"]} if pair else {})}
            if self.trained.regression:
                result["score"] = float(lg[0])
            else:
                probs = softmax(lg)
                ranked = sorted(range(len(probs)), key=lambda j: -probs[j])[: self.top_k or None]
                result.update(
                    label=labels[ranked[0]],
                    score=float(probs[ranked[0]]),
                    scores={labels[j]: round(float(probs[j]), 6) for j in ranked},
                )
            result["truncated"] = bool(encoding.overflowing)
            out.append(result)
        return out

    def _tag(self, rows: list[dict]) -> list[dict]:
        spans = [[m.span() for m in WORD.finditer(r["text"])] for r in rows]
        words = [[r["text"][a:b] for a, b in s] for r, s in zip(rows, spans)]
        enc = self._encode(words, words=True)
        probs = [softmax(x) for x in self._logits(enc)]
        out = []
        for i, row in enumerate(rows):
            tags: list = [None] * len(words[i])
            confidence = [0.0] * len(words[i])
            seen = set()
            for pos, w in enumerate(enc.word_ids(i)):
                if w is not None and w not in seen:  # a word's tag is its first word-piece's
                    seen.add(w)
                    best = int(probs[i][pos].argmax())
                    tags[w], confidence[w] = self.trained.labels[best], float(probs[i][pos, best])
            out.append(
                {
                    "text": row["text"],
                    "tokens": words[i],
                    "tags": tags,
                    "truncated": None in tags,
                    "entities": entity_spans(row["text"], spans[i], tags, confidence),
                }
            )
        return out


def predict_rows(trained, rows: list[dict], batch_size: int = 64, max_length: int = 128, top_k: int = 0) -> list[dict]:
    """Predictions for many rows: sorted by length into batches of `batch_size` (little padding), in input order."""
    predictor = Predictor(trained, max_length, top_k)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["text"]) + len(rows[i].get("text_pair", "")))
    out: list[dict] = [{} for _ in rows]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        for i, result in zip(idx, predictor.predict([rows[i] for i in idx])):
            out[i] = result
    return out


def predict(cfg: PredictConfig, resolved: dict | None = None) -> list[dict]:
    if cfg.output:
        check_new_file(Path(cfg.output), cfg.overwrite, inputs=(cfg.file,))
    from distilkit.inference.embedding import is_embedding_model

    if is_embedding_model(cfg.model):
        return embed(cfg)
    trained = load_trained(cfg.model, cfg.max_length)
    cfg.max_length = trained.max_length
    rows = read_inputs(cfg)
    results = predict_rows(trained, rows, cfg.batch_size, cfg.max_length, cfg.top_k)
    write_lines(cfg.output, results)
    return results


def write_lines(output: str | None, results: list[dict]) -> None:
    """One JSON line per result, into `output` (atomically) or onto stdout."""
    text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in results)
    if output:
        write_atomic(Path(output), text)
    else:
        show(text, end="")


def embed(cfg: PredictConfig) -> list[dict]:
    """`predict` with an embedding model: one {"text", "embedding"} JSON line per text, or with an --output ending
    in .npy the vectors alone, as one float32 array [texts, width] in input order."""
    from distilkit.inference.embedding import load_embedder

    model, tokenizer, length = load_embedder(cfg.model)
    rows = read_inputs(cfg)
    if any("text_pair" in r for r in rows):
        raise DistilkitError("an embedding model embeds single texts: give one text per line (no tab-separated pairs)")
    vectors = model.encode([r["text"] for r in rows], tokenizer, cfg.max_length or length, cfg.batch_size)
    results = [{"text": r["text"], "embedding": v.tolist()} for r, v in zip(rows, vectors)]
    if cfg.output and cfg.output.endswith(".npy"):
        import io

        buffer = io.BytesIO()
        np.save(buffer, vectors.numpy().astype(np.float32))
        write_atomic(Path(cfg.output), buffer.getvalue())
        return results
    write_lines(cfg.output, results)
    return results
