"""The support matrix: every encoder family × every operation, on tiny random models, through the CLI.

A cell either works (✓: the command finishes and its output is checked) or refuses with the one-line
DistilkitError given in `REFUSED` (the reason shown in the docs). No cell may end in a traceback. The support table
of docs/reference/support-matrix.md is rendered from the same data (`render_table`) and checked by
`test_readme_table_is_the_matrix`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ner_sentences, topic_rows, write_conll, write_csv
from families import FAMILIES, build_family_model

from distilkit.cli import main

TABLE_PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "support-matrix.md"
FAST = ["--lr", "1e-3", "--batch-size", "16", "--warmup", "0", "--epochs", "1", "--max-length", "32"]
SPLIT = ["--split", "0.8,0.1,0.1"]
COLUMNS = {  # column id → the support table's heading
    "finetune-seq": "fine-tune (sequence)",
    "finetune-token": "fine-tune (token)",
    "kd": "distil kd",
    "tinybert": "distil tinybert",
    "minilm": "distil minilm",
    "distilbert": "distil distilbert",
    "lora": "LoRA",
    "prune-heads": "prune heads",
    "prune-ffn": "prune FFN",
    "export": "ONNX export + parity",
    "int8": "int8",
    "serve": "serve (engine)",
}
# Cells that refuse: (family, column) → the reason, as the support table shows it; the error must contain its key
# phrase.
REFUSED = {
    ("albert", "prune-heads"): ("one layer's weights shared by all layers", "shares one layer's weights"),
    ("albert", "prune-ffn"): ("one layer's weights shared by all layers", "shares one layer's weights"),
    ("mpnet", "prune-heads"): ("one position bias shared by all layers; FFN only", "relative-position bias"),
}
TABLE_NAMES = {"deberta-v2": "deberta-v2 / v3"}


def render_table() -> str:
    """The support table (docs/reference/support-matrix.md): ✓ or the reason for every family × operation."""
    head = "| family | " + " | ".join(COLUMNS.values()) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    rows = [
        f"| {TABLE_NAMES.get(f, f)} | "
        + " | ".join(REFUSED[(f, c)][0] if (f, c) in REFUSED else "✓" for c in COLUMNS)
        + " |"
        for f in FAMILIES
    ]
    return "\n".join([head, rule, *rows])


def test_readme_table_is_the_matrix():
    assert render_table() in TABLE_PAGE.read_text(), (
        "docs/reference/support-matrix.md's support table differs; paste render_table()'s output"
    )


def cli(*args) -> None:
    main([str(a) for a in args])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("matrix")
    return {
        "root": folder,
        "seq": write_csv(folder / "topics.csv", topic_rows(64, seed=1)),
        "token": write_conll(folder / "ner.conll", ner_sentences(40, seed=3)),
        "runs": {},
    }


def family_run(workspace, family: str, what: str) -> Path:
    """Build (once per module) the tiny base model and its fine-tuned sequence / token classifiers."""
    key = (family, what)
    if key not in workspace["runs"]:
        root = workspace["root"] / family
        if what == "base":
            workspace["runs"][key] = build_family_model(root / "base", family)
        elif what == "onnx":
            teacher = family_run(workspace, family, "seq")
            cli("export", "--model", teacher, "--data", workspace["seq"], "--output", root / "onnx", *SPLIT)
            workspace["runs"][key] = root / "onnx"
        else:
            base = family_run(workspace, family, "base")
            data = workspace["seq" if what == "seq" else "token"]
            cli("finetune", "--model", base, "--data", data, "--output", root / what, *SPLIT, *FAST)
            workspace["runs"][key] = root / what
    return workspace["runs"][key]


def run_cell(workspace, family: str, column: str, out: Path) -> None:
    data = workspace["seq"]
    if column in ("finetune-seq", "finetune-token"):
        run = family_run(workspace, family, column.removeprefix("finetune-"))
        assert json.loads((run / "metrics.json").read_text())["test"]
        return
    teacher = family_run(workspace, family, "seq")
    if column in ("kd", "tinybert", "minilm", "distilbert"):
        args = ["--student", "1", "--method", column, "--force", "--output", out, *SPLIT, *FAST]
        cli("distill", "--teacher", teacher, "--data", data, *args)
        assert json.loads((out / "metrics.json").read_text())["test"]
    elif column == "lora":
        base = family_run(workspace, family, "base")
        cli("finetune", "--model", base, "--data", data, "--peft", "lora", "--output", out, *SPLIT, *FAST)
        assert (out / "model" / "adapter_config.json").exists()
    elif column in ("prune-heads", "prune-ffn"):
        flag = "--heads" if column == "prune-heads" else "--ffn"
        cli("prune", "--model", teacher, "--data", data, flag, "0.25", "--output", out, *SPLIT, "--max-length", "32")
        metrics = json.loads((out / "metrics.json").read_text())
        key = "attention_heads" if column == "prune-heads" else "intermediate_sizes"
        assert sum(metrics["pruned"][key]) < sum(metrics["before"][key])
    elif column == "export":  # export checks parity with PyTorch itself and fails beyond its tolerance
        assert (family_run(workspace, family, "onnx") / "model.onnx").exists()
    elif column == "int8":
        cli("quantize", "--model", teacher, "--data", data, "--output", out, *SPLIT)
        assert any(out.glob("*.onnx"))
    elif column == "serve":
        serve_cell(teacher, family_run(workspace, family, "onnx"))


def serve_cell(teacher: Path, exported: Path) -> None:
    """The server's engine predicts the same labels from the torch model and its ONNX export."""
    from distilkit.serving.engine import Engine

    rows = [{"text": "the team scored a goal"}, {"text": "a new album by the band"}, {"text": "bread and soup"}]
    torch_labels = [r["label"] for r in Engine.load(str(teacher), None, max_length=32).predict(rows)]
    onnx = Engine.load(str(exported), None, max_length=32)
    assert onnx.backend == "onnx"
    assert [r["label"] for r in onnx.predict(rows)] == torch_labels


@pytest.mark.parametrize("column", list(COLUMNS))
@pytest.mark.parametrize("family", FAMILIES)
def test_cell(workspace, family, column, tmp_path, capsys):
    out = tmp_path / "out"
    if (family, column) in REFUSED:
        with pytest.raises(SystemExit) as exit_:
            run_cell(workspace, family, column, out)
        message = capsys.readouterr().err.strip()
        assert exit_.value.code == 2
        assert message.startswith("distilkit: error: ") and "\n" not in message, message
        assert REFUSED[(family, column)][1] in message and family in message
        assert not out.exists()  # nothing half-written
        return
    run_cell(workspace, family, column, out)
