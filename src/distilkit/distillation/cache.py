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

from distilkit.distillation import capture

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
    h.update(getattr(model, "cache_identity", "").encode())  # an embedding model's pooling (embeddings/model.py)
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _hash_dataset(dataset) -> str:
    h = hashlib.sha256()
    for column in ("input_ids", "token_type_ids", "attention_mask"):
        if column in dataset.column_names:
            for batch in dataset.select_columns([column]).iter(batch_size=10_000):  # never the whole column at once
                for row in batch[column]:
                    h.update(np.asarray(row, dtype=np.int32).tobytes())
                    h.update(b"|")
    return h.hexdigest()


def cache_key(teacher, dataset, spec: CacheSpec, precision: str = "fp32") -> str:
    """The cache folder's name: changes with the teacher, the tokenized data, the stored outputs and the precision
    the teacher ran in (bf16 autocast gives slightly different outputs than fp32)."""
    parts = [str(VERSION), _hash_model(teacher), _hash_dataset(dataset), json.dumps(spec.__dict__, default=list)]
    if precision != "fp32":  # fp32 keys stay as they were, so existing caches are still found
        parts.append(precision)
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def _example_shape(name: str, n, dims: dict) -> tuple:
    """One example's stored shape for an example of n tokens: [labels] for sequence-level logits, [heads, n, n]
    for attention scores, [n, width] otherwise (token logits, hidden states, q, k, v). `n` may be an array of
    lengths (sizes for many examples at once)."""
    if name == "logits" and not dims["token_level"]:
        return (dims["labels"],)
    if name.startswith("scores"):
        return (dims["heads"], n, n)
    return (n, dims["labels"] if name == "logits" else dims["hidden"])


def _leading(shape: tuple) -> tuple[slice, ...]:
    """The index of an example's values inside a batch tensor padded beyond `shape`."""
    return tuple(slice(0, d) for d in shape)


def _per_example_sizes(name: str, lengths: np.ndarray, dims: dict) -> np.ndarray:
    size = np.prod(np.broadcast_arrays(*_example_shape(name, lengths, dims)), axis=0)
    return np.broadcast_to(size, lengths.shape).astype(np.int64)


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
            # copy-on-write: torch wants writable arrays; nothing is ever written back to the files
            self._arrays[name] = np.memmap(
                self.folder / f"{name}.f16", dtype=np.float16, mode="c", shape=(int(self._offsets[name][-1]),)
            )

    def has(self, name: str) -> bool:
        return name in self._arrays

    def get(self, name: str, example_ids, seq_len: int) -> torch.Tensor:
        """One float32 batch, zero-padded to seq_len: each example's float16 slice is copied (and converted) once,
        straight into its place in the batch tensor."""
        dims = self.meta["dims"]
        ids = np.asarray(example_ids)
        out = torch.zeros((len(ids), *_example_shape(name, seq_len, dims)))
        for row, i in enumerate(ids):
            shape = _example_shape(name, int(self.lengths[i]), dims)
            flat = torch.from_numpy(self._arrays[name][self._offsets[name][i] : self._offsets[name][i + 1]])
            out[(row, *_leading(shape))].copy_(flat.view(shape))
        return out


def _stored_outputs(out, rec, spec: CacheSpec) -> dict[str, torch.Tensor]:
    """The batch tensors the spec stores, by name, as float16 on the CPU."""
    tensors = {"logits": out.logits} if spec.logits else {}
    tensors.update({f"hidden_{j}": out.hidden_states[j] for j in spec.hidden})
    tensors.update({f"scores_{j}": rec.attention_scores[j] for j in spec.scores})
    for j in spec.qkv:
        tensors.update({f"{p}_{j}": t for p, t in zip("qkv", rec.queries_keys_values[j])})
    return {name: t.to(torch.float16).cpu() for name, t in tensors.items()}


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
        stored = _stored_outputs(out, rec, spec)  # converted to float16 on the CPU once per batch, not per row
        for row, i in enumerate(idx):
            for name, tensor in stored.items():
                value = tensor[row][_leading(_example_shape(name, int(lengths[i]), dims))]
                arrays[name][offsets[name][i] : offsets[name][i + 1]] = value.numpy().reshape(-1)
    for array in arrays.values():
        array.flush()
    (tmp / "meta.json").write_text(json.dumps({"names": names, "dims": dims, "examples": len(lengths)}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return TeacherCache(folder)
