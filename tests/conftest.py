"""Fixtures: a tiny random BERT (2 layers, hidden 32) with its own WordPiece vocab, and small learnable data.

Nothing here touches a model hub. The tiny model is a bare encoder (like the packaged MiniLM), so task
heads start random exactly as they do for real teachers.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from pathlib import Path

import pytest

from distilkit.cli import quiet_library_logs

quiet_library_logs()  # as the CLI does before anything imports torchao (tests import transformers first)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# an unexpected exception keeps its traceback in tests (the CLI turns it into one line otherwise); tests of that
# line unset it
os.environ.setdefault("DISTILKIT_TRACEBACK", "1")

TOPICS = {
    "sport": ["goal", "match", "team", "coach", "league", "score"],
    "music": ["song", "album", "band", "guitar", "concert", "singer"],
    "food": ["recipe", "bread", "cheese", "soup", "chef", "kitchen"],
}
FILLER = ["the", "a", "was", "very", "today", "new", "old", "big", "small", "we", "saw", "it", "and", "then"]
NAMES = ["alice", "bob", "carol", "dave"]
PLACES = ["paris", "london", "berlin", "rome"]
TAGGED_WORDS = {
    "the": "DET",
    "a": "DET",
    "dog": "NOUN",
    "cat": "NOUN",
    "runs": "VERB",
    "sleeps": "VERB",
    "big": "ADJ",
    "small": "ADJ",
    "quickly": "ADV",
    "slowly": "ADV",
}


def _vocab() -> list[str]:
    words = set(FILLER + NAMES + PLACES + list(TAGGED_WORDS) + ["new", "york", "in", "lives", "visited", "met"])
    for ws in TOPICS.values():
        words.update(ws)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = letters + ["##" + c for c in letters] + list("0123456789.,!?'\"-")
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words) + pieces


def build_tiny_model(folder: Path, layers: int = 2, hidden: int = 32, heads: int = 2, positions: int = 128) -> Path:
    """Save a randomly initialised BERT encoder and its fast WordPiece tokenizer to `folder`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(_vocab()) + "\n")
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(_vocab())}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=positions,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")


def topic_rows(n: int, seed: int = 0) -> list[dict]:
    """Sentences whose topic word decides the label: learnable by a tiny model in a few epochs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % len(TOPICS)]
        words = rng.sample(FILLER, 4) + rng.sample(TOPICS[label], 2)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ner_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """BIO-tagged sentences: names are PER, cities LOC ('new york' is a two-word LOC)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        person = rng.choice(NAMES)
        if rng.random() < 0.3:
            place, place_tags = ["new", "york"], ["B-LOC", "I-LOC"]
        else:
            place, place_tags = [rng.choice(PLACES)], ["B-LOC"]
        verb = rng.choice(["visited", "lives in", "met"]).split()
        tokens = [person] + verb + place
        tags = ["B-PER"] + ["O"] * len(verb) + place_tags
        out.append((tokens, tags))
    return out


def write_conll(path: Path, sentences, docstart: bool = True) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""] if docstart else []
    for tokens, tags in sentences:
        lines += [f"{t} NN O {g}" for t, g in zip(tokens, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def topic_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "topics.csv", topic_rows(60))


@pytest.fixture
def ner_conll(tmp_path) -> Path:
    return write_conll(tmp_path / "ner.conll", ner_sentences(60))


FAST = ["--lr", "1e-3", "--batch-size", "16", "--warmup", "0", "--logging-steps", "5"]


@pytest.fixture(scope="session")
def topic_run(tiny_model, tmp_path_factory):
    """A tiny model fine-tuned on learnable topic sentences: the teacher of the distillation tests."""
    from distilkit.cli import main

    folder = tmp_path_factory.mktemp("topic")
    data = write_csv(folder / "topics.csv", topic_rows(240, seed=1))
    out = folder / "runs" / "topic"
    main(
        [
            "finetune",
            "--model",
            str(tiny_model),
            "--data",
            str(data),
            "--output",
            str(out),
            "--epochs",
            "8",
            "--split",
            "0.8,0.1,0.1",
            *FAST,
        ]
    )
    return out


@pytest.fixture(scope="session")
def ner_run(tiny_model, tmp_path_factory):
    """A tiny model fine-tuned on BIO-tagged sentences (PER, LOC): the token-classification run of the tests."""
    from distilkit.cli import main

    folder = tmp_path_factory.mktemp("ner")
    data = write_conll(folder / "ner.conll", ner_sentences(150, seed=3))
    out = folder / "run"
    main(["finetune", "--model", str(tiny_model), "--data", str(data), "--output", str(out), "--epochs", "4", *FAST])
    return out


@pytest.fixture(scope="session")
def topic_data(topic_run) -> Path:
    return topic_run.parent.parent / "topics.csv"


def run_cli(args, capsys=None):
    """Run `distilkit args...`; return (exit code, stdout, stderr)."""
    from distilkit.cli import main

    if capsys:
        capsys.readouterr()  # only the command's own output: not the test's, nor a fixture's that ran in this test
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


@pytest.fixture(autouse=True, scope="session")
def _teacher_cache_in_tmp(tmp_path_factory):
    """No test writes the teacher cache into the user's home (distill also runs inside prune's recovery)."""
    old = os.environ.get("DISTILKIT_CACHE")
    os.environ["DISTILKIT_CACHE"] = str(tmp_path_factory.mktemp("teacher-cache-default"))
    yield
    if old is None:
        os.environ.pop("DISTILKIT_CACHE", None)
    else:
        os.environ["DISTILKIT_CACHE"] = old


@pytest.fixture(autouse=True)
def _progress_bars_as_in_a_fresh_process():
    """Each test starts with datasets' and transformers' progress bars on, as a fresh `distilkit` process does:
    a test that turns them off must not decide what a later test's output shows (a bar before an error line,
    say). load_trained's quiet block restores them itself, even when loading fails."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.enable_progress_bars()
    hf_logging.enable_progress_bar()
    yield


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through selenium (the playground and docs-site tests); skipped where it is not
    installed, and a failure under CI, whose `make test` installs it (`make browser`)."""
    if not Path(CHROMIUM).exists() or not shutil.which(CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and chromium-driver (the Makefile's test target does)")
        pytest.skip(
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
            "apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
