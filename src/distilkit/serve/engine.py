"""The model behind the server: which folder a backend runs, loading and warm-up, and fast batch prediction.

`predict.predict_rows` tokenizes through `datasets` (about 90 ms per call whatever the batch size: more than a
whole request may take), so the server calls the fast tokenizer directly. It gives the same labels, scores
and tags as `predict_rows` (tests check it) and adds what a service needs: a `truncated` flag for every task
and, for BIO tags, entity spans with character offsets into the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distilkit.compress.onnx_model import is_onnx_folder, read_meta
from distilkit.data.dataset import TOK
from distilkit.errors import DistilkitError
from distilkit.inference import (MODEL_INPUTS, TrainedModel, length_groups, load_trained, model_logits, pad_rows,
                                 softmax)

WEIGHT_SUFFIXES = (".onnx", ".data", ".onnx_data", ".safetensors", ".bin")
WORD = re.compile(r"\S+")  # the words of `str.split()`, with their positions


def resolve_backend(model: str, backend: str | None) -> tuple[str, str]:
    """The folder to load and the backend that runs it; refuses combinations that cannot work, naming the fix."""
    if not model:
        raise DistilkitError("no model given: pass a run, model or ONNX folder (distilkit serve runs/x)")
    path = Path(model)
    if is_onnx_folder(path):
        if backend == "torch":
            raise DistilkitError(f"{model} is an ONNX folder: serve it with --backend onnx, or pass the run or "
                                 "model folder it was exported from for --backend torch")
        return str(path), "onnx"
    if (path / "recipe.yaml").exists() and not (path / "model").exists():
        raise DistilkitError(f"{model} is a distilkit run (pipeline) folder: serve one of its models, e.g. "
                             f"{', '.join(servable(path)) or path / 'int8' / 'NAME'}")
    if backend != "onnx":
        return model, "torch"
    candidates = [path / "onnx", path.with_name(path.name + "-onnx")]  # distilkit export's default outputs
    for root in (path.parent, path.parent.parent):  # a model of a pipeline folder: its export is in onnx/<name>
        if (root / "recipe.yaml").exists():
            candidates.append(root / "onnx" / path.name)
    for candidate in candidates:
        if is_onnx_folder(candidate):
            return str(candidate), "onnx"
    if not path.exists():
        raise DistilkitError(f"{model}: folder not found")
    raise DistilkitError(f"{model}: no ONNX export in {' or '.join(map(str, candidates))}; run distilkit export "
                         f"--model {model} first, or serve with --backend torch")


def servable(pipeline: Path) -> list[str]:
    """A pipeline folder's models that `serve` takes: int8 and fp32 ONNX folders first, then the torch runs."""
    found = [f for sub in ("int8", "onnx") for f in sorted((pipeline / sub).glob("*")) if is_onnx_folder(f)]
    found += sorted(f for f in (pipeline / "students").glob("*") if f.is_dir())
    return [str(f) for f in found[:4]]


def weights_size(folder: str) -> int:
    """Bytes of the weight files (not tokenizer or configs) of a model or ONNX folder."""
    path = Path(folder)
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES) \
        if path.is_dir() else 0


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
        entity.update(text=text[entity["start"]:entity["end"]], score=round(float(np.mean(scores)), 6))
    return entities


@dataclass
class Engine:
    """A loaded model and the settings that shape its answers; `predict` is called from a worker thread."""

    trained: TrainedModel
    backend: str
    max_length: int = 128
    top_k: int = 0

    @classmethod
    def load(cls, model: str, backend: str | None, max_length: int = 128, top_k: int = 0) -> "Engine":
        folder, backend = resolve_backend(model, backend)
        return cls(load_trained(folder), backend, max_length, top_k)

    def warm_up(self) -> None:
        """One forward pass, so the first real request does not pay for lazy allocations and kernel selection."""
        self.predict([{"text": "warm up the model"}, {"text": "a second, longer text to warm up the model"}])

    def metadata(self) -> dict:
        t = self.trained
        info = {"model": t.path, "task": t.task, "labels": t.labels, "regression": t.regression,
                "backend": self.backend, "size_bytes": weights_size(t.path), "max_length": self.max_length}
        if self.backend == "onnx":
            info["quantization"] = read_meta(Path(t.path)).get("quantization")
        else:
            info["parameters"] = sum(p.numel() for p in t.model.parameters())
        return info

    def predict(self, rows: list[dict]) -> list[dict]:
        """Results for rows {"text", "text_pair"?}, in order, from one forward pass per kind of row."""
        if self.trained.task == TOK:
            return self._tag(rows)
        out: list[dict] = [{} for _ in rows]
        for pair in (False, True):  # single texts and pairs tokenize differently: one batch each
            idx = [i for i, r in enumerate(rows) if ("text_pair" in r) == pair]
            if idx:
                for i, result in zip(idx, self._classify([rows[i] for i in idx], pair)):
                    out[i] = result
        return out

    def _encode(self, first, second=None, words: bool = False):
        """Unpadded encodings: `_logits` pads each length group on its own."""
        return self.trained.tokenizer(first, second, truncation=True, max_length=self.max_length,
                                      is_split_into_words=words)

    def _logits(self, enc) -> list[np.ndarray]:
        """Each row's logits (token logits trimmed to the row's length), one forward pass per length group."""
        ids = enc["input_ids"]
        keys = [k for k in MODEL_INPUTS if k in enc]
        out: list = [None] * len(ids)
        for group in length_groups([len(x) for x in ids]):
            batch = pad_rows([{k: enc[k][i] for k in keys} for i in group], self.trained.tokenizer.pad_token_id or 0)
            with torch.inference_mode():
                logits = model_logits(self.trained.model, batch)
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
                result.update(label=labels[ranked[0]], score=float(probs[ranked[0]]),
                              scores={labels[j]: round(float(probs[j]), 6) for j in ranked})
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
            out.append({"text": row["text"], "tokens": words[i], "tags": tags, "truncated": None in tags,
                        "entities": entity_spans(row["text"], spans[i], tags, confidence)})
        return out
