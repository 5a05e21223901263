"""Run folders: written atomically, never overwritten by accident, resumable after a crash.

A run is built in a hidden sibling `.<name>.partial/` (Trainer checkpoints live there too) and renamed to
`<name>/` only when complete. So `runs/x/` either holds a finished run or does not exist:
- a finished `runs/x/` is replaced only with `--overwrite`;
- an interrupted `.x.partial/` is continued with `--resume` (from its last checkpoint) or discarded with
  `--overwrite`; a run that fails on bad input removes its partial folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from distilkit.errors import DistilkitError


def write_atomic(path: Path, text: str) -> None:
    """Write a text file via a temp file + rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def folder_bytes(folder: Path) -> int:
    """Total size of the files under `folder`."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_yaml(path: Path, obj) -> None:
    write_atomic(path, yaml.safe_dump(obj, sort_keys=False))


class RunFolder:
    """The life cycle of one run folder: prepare → (train in `work`) → finish, or abort on bad input."""

    def __init__(self, output: str, overwrite: bool = False, resume: bool = False):
        self.final = Path(output)
        self.work = self.final.parent / f".{self.final.name}.partial"
        self.overwrite, self.resume = overwrite, resume

    def check(self) -> None:
        """Refuse to clobber a finished run, or to silently restart an interrupted one. Creates nothing."""
        if self.final.exists() and not self.overwrite:
            if self.final.is_dir() and not any(self.final.iterdir()):
                return
            raise DistilkitError(
                f"{self.final}: a run folder is already there; pass --overwrite to replace it or choose another --output"
            )
        if self.work.exists() and not (self.resume or self.overwrite):
            raise DistilkitError(
                f"{self.work}: an interrupted run of {self.final} is there; pass --resume to continue it "
                "or --overwrite to start again"
            )

    def prepare(self) -> Path:
        self.check()
        if self.work.exists() and self.overwrite and not self.resume:
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        return self.work

    def write_results(self, metrics: dict, config: dict) -> None:
        """metrics.json and the resolved config.yaml: the last files written before `finish`."""
        write_json(self.work / "metrics.json", metrics)
        write_yaml(self.work / "config.yaml", config)

    def last_checkpoint(self, folder: Path | None = None) -> str | None:
        """The newest Trainer checkpoint in `folder` (default: the run's checkpoints/)."""
        folder = folder or self.work / "checkpoints"
        ckpts = sorted(
            (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
            key=lambda p: int(p.name.split("-")[-1]),
        )
        return str(ckpts[-1]) if ckpts else None

    def finish(self) -> Path:
        """Drop checkpoints and move the finished run into place (replacing an old one only when allowed)."""
        shutil.rmtree(self.work / "checkpoints", ignore_errors=True)
        if self.final.exists():
            trash = self.final.parent / f".{self.final.name}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(self.final, trash)
            os.replace(self.work, self.final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.work, self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
