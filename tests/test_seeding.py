"""`--seed` alone decides a distillation: the learned projections and a new task head come from it, not from what
the process drew before (benchmarks run many jobs in one process)."""

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISTILKIT_CACHE", str(tmp_path_factory.getbasetemp() / "teacher-cache"))


@pytest.fixture
def student_folder(topic_run, tmp_path):
    """A 16-wide encoder saved as a folder (as general distillation writes one): task distillation gives it a new
    task head, and its hidden states need projections to the 32-wide teacher."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig.from_pretrained(topic_run / "model")
    config.update({"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32, "num_hidden_layers": 2})
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tmp_path / "student")
    AutoTokenizer.from_pretrained(topic_run / "model").save_pretrained(tmp_path / "student")
    return tmp_path / "student"


def distilled(topic_run, topic_data, student, out, capsys, *extra):
    """Final student weights of a short two-stage tinybert run."""
    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", student]
    args += ["--method", "tinybert", "--intermediate-epochs", "1", "--epochs", "1", "--max-train-samples", "48"]
    args += ["--batch-size", "16", "--warmup", "0", "--output", out, *extra]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    return load_file(out / "model" / "model.safetensors")


def test_same_seed_same_student_whatever_ran_before(topic_run, topic_data, student_folder, tmp_path, capsys):
    torch.manual_seed(1)
    first = distilled(topic_run, topic_data, student_folder, tmp_path / "a", capsys)
    torch.manual_seed(2)
    torch.rand(1000)  # another job's draws
    second = distilled(topic_run, topic_data, student_folder, tmp_path / "b", capsys)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = distilled(topic_run, topic_data, student_folder, tmp_path / "c", capsys, "--seed", "7")
    assert not all(torch.equal(first[k], other[k]) for k in first)  # the seed does reach the run
