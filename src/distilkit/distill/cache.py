"""Teacher-output cache: the teacher runs once per example, not once per example per epoch.

Outputs are stored per example, unpadded, as float16 in flat memory-mapped files with element offsets:
`logits`, `hidden_<i>` (hidden state i), `scores_<i>` (attention layer i, [heads, len, len]) and
`q_<i>`/`k_<i>`/`v_<i>` (for MiniLM relations). The folder name is a hash of everything that changes the
outputs: the teacher's weights and config, the tokenized inputs (so data, tokenizer and max_length), and
which outputs are stored. Any change gives a new key; an unchanged teacher and data reuse the files
across epochs and across runs. Folders are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distilkit.distill import capture

VERSION = 1


@dataclass(frozen=True)
class CacheSpec:
    """Which teacher outputs to store."""

    hidden: tuple[int, ...] = ()
    scores: tuple[int, ...] = ()
    qkv: tuple[int, ...] = ()
    logits: bool = True  # False for a bare encoder (general distillation without an MLM head)

    def names(self) -> list[str]:
        out = ["logits"] if self.logits else []
        out += [f"hidden_{i}" for i in self.hidden] + [f"scores_{i}" for i in self.scores]
        return out + [f"{p}_{i}" for i in self.qkv for p in "qkv"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("DISTILKIT_CACHE", Path.home() / ".cache" / "distilkit" / "teacher"))


def _hash_model(model) -> str:
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _hash_dataset(dataset) -> str:
    h = hashlib.sha256()
    for column in ("input_ids", "token_type_ids", "attention_mask"):
        if column in dataset.column_names:
            for row in dataset[column]:
                h.update(np.asarray(row, dtype=np.int32).tobytes())
                h.update(b"|")
    return h.hexdigest()


def cache_key(teacher, dataset, spec: CacheSpec) -> str:
    parts = [str(VERSION), _hash_model(teacher), _hash_dataset(dataset), json.dumps(spec.__dict__, default=list)]
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def _per_example_sizes(name: str, lengths: np.ndarray, dims: dict) -> np.ndarray:
    kind = name.split("_")[0]
    if name == "logits":
        return lengths * dims["labels"] if dims["token_level"] else np.full_like(lengths, dims["labels"])
    if kind == "scores":
        return dims["heads"] * lengths * lengths
    return lengths * dims["hidden"]  # hidden, q, k, v: [len, width]


def estimate_bytes(spec: CacheSpec, lengths: np.ndarray, dims: dict) -> dict[str, int]:
    """float16 bytes per stored output, before anything is computed (printed for the user)."""
    return {n: int(_per_example_sizes(n, lengths, dims).sum()) * 2 for n in spec.names()}


class TeacherCache:
    """Read side: `get(name, example_ids, seq_len)` returns a padded float32 batch tensor."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self.lengths = np.load(self.folder / "lengths.npy")
        self._arrays = {}
        self._offsets = {}
        for name in self.meta["names"]:
            self._offsets[name] = np.load(self.folder / f"{name}.offsets.npy")
            self._arrays[name] = np.memmap(
                self.folder / f"{name}.f16", dtype=np.float16, mode="r", shape=(int(self._offsets[name][-1]),)
            )

    def has(self, name: str) -> bool:
        return name in self._arrays

    def get(self, name: str, example_ids, seq_len: int) -> torch.Tensor:
        dims = self.meta["dims"]
        rows = []
        for i in np.asarray(example_ids):
            n = int(self.lengths[i])
            flat = np.asarray(self._arrays[name][self._offsets[name][i] : self._offsets[name][i + 1]], dtype=np.float32)
            if name == "logits" and not dims["token_level"]:
                rows.append(torch.from_numpy(flat))
                continue
            if name.startswith("scores"):
                block = torch.zeros(dims["heads"], seq_len, seq_len)
                block[:, :n, :n] = torch.from_numpy(flat.reshape(dims["heads"], n, n))
            else:
                width = dims["labels"] if name == "logits" else dims["hidden"]
                block = torch.zeros(seq_len, width)
                block[:n] = torch.from_numpy(flat.reshape(n, width))
            rows.append(block)
        return torch.stack(rows)


@torch.inference_mode()
def build_cache(
    teacher, dataset, collator, spec: CacheSpec, folder: Path, batch_size: int, dims: dict, progress: bool = True
) -> TeacherCache:
    """Run the teacher over `dataset` once and write the outputs; returns the reader."""
    from tqdm.auto import tqdm

    lengths = np.asarray([len(x) for x in dataset["input_ids"]], dtype=np.int64)
    names = spec.names()
    tmp = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays, offsets = {}, {}
    for name in names:
        sizes = _per_example_sizes(name, lengths, dims)
        offsets[name] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        np.save(tmp / f"{name}.offsets.npy", offsets[name])
        arrays[name] = np.memmap(
            tmp / f"{name}.f16", dtype=np.float16, mode="w+", shape=(max(int(offsets[name][-1]), 1),)
        )
    np.save(tmp / "lengths.npy", lengths)
    device = next(teacher.parameters()).device
    order = np.argsort(lengths, kind="stable")
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc="teacher cache", disable=not progress):
        idx = order[start : start + batch_size]
        batch = collator([{k: dataset[int(i)][k] for k in inputs if k in dataset.column_names} for i in idx])
        batch = {k: v.to(device) for k, v in batch.items() if k in inputs}
        with capture.recording(scores=bool(spec.scores), qkv=bool(spec.qkv)) as rec:
            out = teacher(**batch, output_hidden_states=bool(spec.hidden))
        for row, i in enumerate(idx):
            n = int(lengths[i])
            values = {}
            if spec.logits:
                values["logits"] = out.logits[row, :n] if dims["token_level"] else out.logits[row]
            for j in spec.hidden:
                values[f"hidden_{j}"] = out.hidden_states[j][row, :n]
            for j in spec.scores:
                values[f"scores_{j}"] = rec.attention_scores[j][row, :, :n, :n]
            for j in spec.qkv:
                for p, tensor in zip("qkv", rec.queries_keys_values[j]):
                    values[f"{p}_{j}"] = tensor[row, :n]
            for name, value in values.items():
                arrays[name][offsets[name][i] : offsets[name][i + 1]] = value.float().cpu().numpy().reshape(-1)
    for array in arrays.values():
        array.flush()
    (tmp / "meta.json").write_text(json.dumps({"names": names, "dims": dims, "examples": len(lengths)}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return TeacherCache(folder)
