"""Options of `distilkit push` (kept beside the code they configure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from distilkit.option_rules import Checked


@dataclass
class PushConfig(Checked):
    """Upload a model folder to the Hugging Face Hub: model files only (weights, config, tokenizer, model card).

    Args:
        model: A run folder (its model/ folder is sent, nothing else of the run) or a model, merged, ONNX or int8
            folder, each its own repo (also accepted as the first positional argument).
        repo_id: The Hub repo to upload to, ORG/NAME (created when it does not exist).
        private: Create the repo private (an existing repo keeps its visibility).
        revision: Branch to upload to, created when it does not exist (default: main).
        token: A Hugging Face token with write access (default: the HF_TOKEN environment variable, else the one
            `hf auth login` saved).
        dry_run: List the files that would be sent, and send nothing.
        message: Commit message (default: "Upload <folder> with distilkit").
    """

    model: str = ""
    repo_id: str = ""
    private: bool = False
    revision: Optional[str] = None
    token: Optional[str] = None
    dry_run: bool = False
    message: Optional[str] = None
