"""`distilkit push FOLDER --repo-id ORG/NAME`: upload a model folder to the Hugging Face Hub, and nothing else.

What is sent is an allow-list of model files: the card (README.md), config.json, weights (*.safetensors,
model.onnx and its external data), tokenizer files, the adapter and ONNX metadata distilkit needs to load the folder
again, and a pruned model's loader code. distilkit's own bookkeeping there (its ownership marker, the Trainer's
pickled arguments, quantize's report) is left out and named. Any other file (a data sample, a CSV, notes) makes push
refuse the whole folder with one line naming the files: a folder that is shared must hold nothing but the model.

Given a run folder, only its model/ folder goes (config.yaml, metrics.json, logs/, a kept data sample stay at
home); ONNX and int8 folders are pushed as repos of their own. Machine paths inside the metadata files that are
sent (the ONNX folder's source, an adapter's base folder) are replaced by the folder's name. The upload is one
commit through huggingface_hub (create_repo, create_commit) with the user's token.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

from distilkit.console import show
from distilkit.errors import DistilkitError
from distilkit.files import MARKER, marker_kind
from distilkit.hub.cards import CARD_FILE, check_card, human_bytes, shown, valid_repo_id
from distilkit.hub.options import PushConfig
from distilkit.runs import is_run_folder

SENT_FILES = {
    CARD_FILE,
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
    "model.onnx",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "adapter_config.json",
    "distilkit_adapter.json",
    "distilkit_onnx.json",
    "modeling_distilkit_pruned.py",
}
SENT_PATTERNS = ("*.safetensors", "*.onnx_data", "*.onnx.data")
# distilkit's (and the Trainer's) bookkeeping in model folders: not model files, not the user's data either
LEFT_OUT = {
    MARKER: "distilkit's ownership marker (host, process)",
    "training_args.bin": "the Trainer's pickled arguments (machine paths)",
    "quantize_report.json": "quantize's report (its numbers are in the card)",
}
# JSON files sent whose machine paths are replaced by folder names
PATH_FILES = ("distilkit_onnx.json", "distilkit_adapter.json", "adapter_config.json")
MODEL_SIGNS = ("config.json", "distilkit_onnx.json", "distilkit_adapter.json", "adapter_config.json")


def model_folder(given: str) -> tuple[Path, str | None]:
    """The folder to send: a run's model/, or the folder itself; with a note when it is a run's."""
    path = Path(given)
    if not given or not path.is_dir():
        raise DistilkitError(f"push {given or '(no folder)'}: no such folder; pass a run folder or a model folder")
    if marker_kind(path) == "pipeline" or (path / "stages.json").is_file():
        raise DistilkitError(
            f"push {given}: a pipeline folder holds several models; push one of them (its teacher/, "
            "students/<name>/, pruned/<name>/, onnx/<model>/ or int8/<model>-<method>/ folder), each as its own repo"
        )
    if is_run_folder(path):
        kept = [p.name + ("/" if p.is_dir() else "") for p in sorted(path.iterdir()) if p.name not in ("model", MARKER)]
        note = f"{given} is a run folder: sending its model/ folder only; not sent: {', '.join(kept) or 'nothing else'}"
        return path / "model", note
    if not any((path / name).is_file() for name in MODEL_SIGNS):
        raise DistilkitError(
            f"push {given}: not a model folder (none of {', '.join(MODEL_SIGNS)}); pass a run folder or the "
            "folder distilkit wrote a model into"
        )
    return path, None


def files_of(folder: Path) -> list[str]:
    """Every file under `folder`, hidden ones included, as paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def is_model_file(relative: str) -> bool:
    return "/" not in relative and (relative in SENT_FILES or any(fnmatch.fnmatch(relative, p) for p in SENT_PATTERNS))


def plan(folder: Path) -> tuple[list[str], list[str]]:
    """(files to send, files left out with why); refuses a folder holding anything that is not a model file."""
    send, left, foreign = [], [], []
    for relative in files_of(folder):
        if relative in LEFT_OUT:
            left.append(f"{relative} ({LEFT_OUT[relative]})")
        elif is_model_file(relative):
            send.append(relative)
        else:
            foreign.append(relative)
    if foreign:
        named = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise DistilkitError(
            f"push {folder}: it holds files that are not model files ({named}); push sends only a model's weights, "
            "config, tokenizer and card, so move the others (data belongs outside a model folder) and push again"
        )
    if not any(name.endswith((".safetensors", ".onnx")) for name in send):
        raise DistilkitError(f"push {folder}: no weights (*.safetensors or model.onnx) to send")
    if CARD_FILE in send:
        check_card(folder / CARD_FILE)  # a card the Hub would reject is refused here, before anything is sent
    return send, left


def without_machine_paths(path: Path) -> bytes:
    """A metadata JSON file as sent: absolute paths among its top-level values replaced by the folder names."""
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data = {k: shown(v) if isinstance(v, str) and v.startswith("/") else v for k, v in data.items()}
    return (json.dumps(data, indent=2) + "\n").encode()


def operations(folder: Path, send: list[str]) -> list:
    from huggingface_hub import CommitOperationAdd

    ops = []
    for name in send:
        content = without_machine_paths(folder / name) if name in PATH_FILES else str(folder / name)
        ops.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    return ops


def upload(cfg: PushConfig, folder: Path, send: list[str]) -> str:
    """One commit with the files, into the repo (created if needed) and branch; returns the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=cfg.token)
    message = cfg.message or f"Upload {shown(str(folder.resolve()))} with distilkit"
    try:
        api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True)
        if cfg.revision:
            api.create_branch(cfg.repo_id, branch=cfg.revision, exist_ok=True)
        info = api.create_commit(
            cfg.repo_id, operations=operations(folder, send), commit_message=message, revision=cfg.revision
        )
    except Exception as err:  # noqa: BLE001 - network, auth and Hub errors come in many types: one line each
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise DistilkitError(
            f"push to {cfg.repo_id}: {type(err).__name__}: {first}; check the network, your token (--token, HF_TOKEN "
            "or hf auth login) and that it may write to that repo"
        ) from None
    return getattr(info, "commit_url", None) or f"https://huggingface.co/{cfg.repo_id}"


def push(cfg: PushConfig, resolved: dict | None = None) -> dict:
    """Send the model folder's model files to `cfg.repo_id`; with `dry_run`, only list them."""
    if not cfg.repo_id or not valid_repo_id(cfg.repo_id):
        raise DistilkitError(f"--repo-id {cfg.repo_id!r}: give the Hub repo as ORG/NAME, e.g. my-org/bbc-student")
    folder, note = model_folder(cfg.model)
    send, left = plan(folder)
    if note:
        show(f"note: {note}")
    size = sum((folder / name).stat().st_size for name in send)
    where = cfg.repo_id + (f" (branch {cfg.revision})" if cfg.revision else "")
    show(f"{'would send' if cfg.dry_run else 'sending'} {len(send)} files ({human_bytes(size)}) to {where}:")
    for name in send:
        show(f"  {name}  {human_bytes((folder / name).stat().st_size)}")
    if left:
        show("left out: " + "; ".join(left))
    if CARD_FILE not in send:
        show(f"note: {folder} has no model card ({CARD_FILE}); folders written by this distilkit have one")
    result = {"repo_id": cfg.repo_id, "revision": cfg.revision, "folder": str(folder), "files": send, "url": None}
    if not cfg.dry_run:
        result["url"] = upload(cfg, folder, send)
        show(f"pushed: {result['url']}")
    return result
