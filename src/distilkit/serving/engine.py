"""The model behind the server: which folder a backend runs, loading, warm-up and metadata.

Predictions themselves come from `distilkit.inference.predict.Predictor`, the same code as `distilkit predict`.
"""

from __future__ import annotations

from pathlib import Path

from distilkit.errors import DistilkitError
from distilkit.inference.loading import load_trained
from distilkit.inference.onnx_model import OnnxClassifier, is_onnx_folder, read_meta
from distilkit.inference.predict import Predictor

WEIGHT_SUFFIXES = (".onnx", ".data", ".onnx_data", ".safetensors", ".bin")


def resolve_backend(model: str, backend: str | None) -> tuple[str, str]:
    """The folder to load and the backend that runs it; refuses combinations that cannot work, naming the fix."""
    if not model:
        raise DistilkitError("no model given: pass a run, model or ONNX folder (distilkit serve runs/x)")
    path = Path(model)
    if is_onnx_folder(path):
        if backend == "torch":
            raise DistilkitError(
                f"{model} is an ONNX folder: serve it with --backend onnx, or pass the run or "
                "model folder it was exported from for --backend torch"
            )
        return str(path), "onnx"
    if (path / "recipe.yaml").exists() and not (path / "model").exists():
        raise DistilkitError(
            f"{model} is a distilkit run (pipeline) folder: serve one of its models, e.g. "
            f"{', '.join(servable(path)) or path / 'int8' / 'NAME'}"
        )
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
    raise DistilkitError(
        f"{model}: no ONNX export in {' or '.join(map(str, candidates))}; run distilkit export "
        f"--model {model} first, or serve with --backend torch"
    )


def servable(pipeline: Path) -> list[str]:
    """A pipeline folder's models that `serve` takes: int8 and fp32 ONNX folders first, then the torch runs."""
    found = [f for sub in ("int8", "onnx") for f in sorted((pipeline / sub).glob("*")) if is_onnx_folder(f)]
    found += sorted(f for f in (pipeline / "students").glob("*") if f.is_dir())
    return [str(f) for f in found[:4]]


def weights_size(folder: str) -> int:
    """Bytes of the weight files (not tokenizer or configs) of a model or ONNX folder."""
    path = Path(folder)
    return (
        sum(f.stat().st_size for f in path.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
        if path.is_dir()
        else 0
    )


class UnreadableText(ValueError):
    """The tokenizer refused a text: the request's fault (422), not the server's (500)."""


class Engine(Predictor):
    """The served model: a `Predictor` (its `predict` is called from the batcher's worker thread) that knows its
    backend and describes itself for /metadata."""

    @classmethod
    def load(cls, model: str, backend: str | None, max_length: int | None = None, top_k: int = 0) -> "Engine":
        folder, _ = resolve_backend(model, backend)
        trained = load_trained(folder, max_length)
        return cls(trained, trained.max_length, top_k)

    @property
    def backend(self) -> str:
        """Which runtime runs the loaded model: read from the model itself, so it cannot disagree with it."""
        return "onnx" if isinstance(self.trained.model, OnnxClassifier) else "torch"

    def _encode(self, first, second=None, words: bool = False):
        """The tokenizer's errors have no common class (a lone surrogate is a TypeError): mark them as the
        input's, so the server answers them as a bad request rather than a failure of the model."""
        try:
            return super()._encode(first, second, words)
        except Exception as err:  # noqa: BLE001 - see above
            raise UnreadableText(f"the tokenizer could not read them ({type(err).__name__}: {err})") from err

    def warm_up(self) -> None:
        """One forward pass, so the first real request does not pay for lazy allocations and kernel selection."""
        self.predict([{"text": "warm up the model"}, {"text": "a second, longer text to warm up the model"}])

    def metadata(self) -> dict:
        t = self.trained
        info = {
            "model": t.path,
            "task": t.task,
            "labels": t.labels,
            "regression": t.regression,
            "backend": self.backend,
            "size_bytes": weights_size(t.path),
            "max_length": self.max_length,
        }
        if self.backend == "onnx":
            info["quantization"] = read_meta(Path(t.path)).get("quantization")
        else:
            info["parameters"] = sum(p.numel() for p in t.model.parameters())
        return info


def load_engine(model: str, backend: str | None, max_length: int | None = None, top_k: int = 0):
    """The engine for `model`: an `Engine` for a classifier, an `EmbeddingEngine` for an embedding model (which is
    served from the folder given: its ONNX export is a folder of its own)."""
    from distilkit.inference.embedding import embedding_folder, is_embedding_model, is_embedding_onnx_folder

    if not is_embedding_model(model):
        return Engine.load(model, backend, max_length, top_k)
    from distilkit.serving.embedding_engine import EmbeddingEngine

    runs_on = "onnx" if is_embedding_onnx_folder(embedding_folder(model)) else "torch"
    if backend is not None and backend != runs_on:
        other = f"its export (distilkit export --model {model})" if runs_on == "torch" else "the folder it came from"
        raise DistilkitError(f"{model} runs on the {runs_on} backend; for --backend {backend} serve {other}")
    return EmbeddingEngine.load(model, max_length)
