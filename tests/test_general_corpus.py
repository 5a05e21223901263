"""General distillation at corpus scale: reading a corpus from many files without loading it, packing it into
token blocks, checkpoints within an epoch and resuming from them."""

import json

import datasets
import pytest
from conftest import run_cli, topic_rows, write_csv, write_jsonl

from distilkit.distillation import distiller
from distilkit.distillation.general import corpus_tokens, load_corpus, pack_corpus
from distilkit.errors import DistilkitError
from distilkit.models import load_tokenizer

QUICK = ["--batch-size", "8", "--warmup", "0", "--logging-steps", "5", "--max-length", "16"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path_factory.getbasetemp() / "teacher-cache"))


def texts(n, seed=0):
    return [r["text"] for r in topic_rows(n, seed)]


def test_corpus_from_files_globs_folders_and_saved_datasets(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("\n".join(texts(30)) + "\n\n\n")  # blank lines are skipped
    (folder / "b.txt").write_text("\n".join(texts(20, seed=1)) + "\n")
    cache = tmp_path / "cache"
    assert len(load_corpus(str(folder), "text", cache)) == len(load_corpus(str(folder / "*.txt"), "text", cache))
    both = load_corpus(f"{folder / 'a.txt'},{folder / 'b.txt'}", "text", cache)
    assert [t for t in both["text"] if t.strip()] == texts(30) + texts(20, seed=1)
    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"body": t, "id": i} for i, t in enumerate(texts(10))])
    assert load_corpus(str(jsonl), "body", cache)["text"] == texts(10)
    csv = write_csv(tmp_path / "d.csv", [{"text": t, "label": "x"} for t in texts(10)])
    assert load_corpus(str(csv), "text", cache, max_texts=4)["text"] == texts(4)
    datasets.Dataset.from_dict({"text": texts(7)}).save_to_disk(str(tmp_path / "saved"))
    assert load_corpus(str(tmp_path / "saved"), "text", cache)["text"] == texts(7)
    on_disk = load_corpus(str(folder), "text", cache)
    assert on_disk.cache_files, "the corpus must be memory-mapped Arrow, not an in-memory table"


@pytest.mark.parametrize(
    "data, message",
    [
        ("missing.txt", "--data missing.txt: no such file or folder"),
        ("*.nothing", "--data *.nothing: no file matches this pattern"),
        ("mixed", "the corpus mixes formats (json, text)"),
        ("c.jsonl", "no column 'text'; columns found: body"),
    ],
)
def test_corpus_errors(tmp_path, monkeypatch, data, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.txt").write_text("words\n")
    write_jsonl(tmp_path / "mixed" / "b.jsonl", [{"text": "words"}])
    write_jsonl(tmp_path / "c.jsonl", [{"body": "words"}])
    with pytest.raises(DistilkitError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        load_corpus(data, "text", tmp_path / "cache")


def test_packing_makes_full_blocks_with_special_tokens(tiny_model, tmp_path):
    tokenizer = load_tokenizer(str(tiny_model))
    corpus = datasets.Dataset.from_dict({"text": texts(40) + ["", "   "]})
    packed = pack_corpus(corpus, tokenizer, max_length=16, texts_per_batch=1000)
    ids = packed["input_ids"]
    assert all(len(b) == 16 for b in ids[:-1]) and 2 < len(ids[-1]) <= 16
    assert all(b[0] == tokenizer.cls_token_id and b[-1] == tokenizer.sep_token_id for b in ids)
    inner = [t for b in ids for t in b[1:-1]]
    expected = [t for text in texts(40) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    assert inner == expected  # every token once, in order: nothing cut, nothing padded
    assert corpus_tokens(packed) == len(expected) + 2 * len(ids)
    assert all(sum(m) == len(b) for m, b in zip(packed["attention_mask"], ids))


def test_general_distillation_of_a_corpus_resumes_mid_epoch(tiny_model, tmp_path, capsys, monkeypatch):
    from transformers import AutoModel

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k in range(3):
        (corpus / f"part{k}.txt").write_text("\n".join(texts(100, seed=k)) + "\n")
    out = tmp_path / "general"
    args = ["distill", "--general", "--method", "tinybert", "--teacher", tiny_model, "--data", corpus]
    args += ["--student", "1", "--epochs", "1", "--save-steps", "4", "--output", out, *QUICK]
    calls = {"n": 0}
    original = distiller.Distiller.compute_loss

    def crash_at_step_10(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(distiller.Distiller, "compute_loss", crash_at_step_10)
    code, stdout, _ = run_cli(args, capsys)
    assert code == 130, stdout
    blocks = int(stdout.split(" texts → ")[1].split()[0])
    steps = -(-blocks // 8)
    assert steps > 10 and "corpus: 300 texts →" in stdout
    assert (tmp_path / ".general.partial" / "checkpoints" / "general" / "checkpoint-8").is_dir()
    calls["n"] = -1000  # no crash on the second run; count its steps
    code, stdout, err = run_cli(args + ["--resume"], capsys)
    assert code == 0, err
    assert calls["n"] + 1000 == steps - 8  # it went on from step 8, within the epoch
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["examples"] == blocks and metrics["train"]["tokens"] > 300 * 6
    assert AutoModel.from_pretrained(out / "model").config.num_hidden_layers == 1
