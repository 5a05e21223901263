"""benchmarks/suite.py: the tasks keep documents apart, the decision rule, and the suite run small end to end
(a 4-layer tiny teacher, a few dozen examples) with its gate passing on its own results and failing on a drop."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import build_tiny_model

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import suite  # noqa: E402
import suite_tasks  # noqa: E402


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    return suite_tasks.build_all(tmp_path_factory.mktemp("suite-data"), suite_tasks.Sizes(40, 20, 20))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_task_keeps_its_documents_in_one_split(task_files):
    assert set(task_files) == set(suite_tasks.TASKS)
    for task, files in task_files.items():
        splits = {s: rows(files[s]) for s in suite_tasks.SPLITS}
        assert [len(splits[s]) for s in suite_tasks.SPLITS] == [40, 20, 20], task
        groups = {s: {r["group"] for r in splits[s]} for s in splits}
        assert not groups["train"] & groups["test"] and not groups["train"] & groups["dev"], task
        assert not groups["dev"] & groups["test"], task


def test_task_shapes(task_files):
    titles = rows(task_files["titles"]["train"])
    articles = {r["group"]: r for r in rows(task_files["articles"]["train"])}
    assert all(len(r["text"].split()) < 20 for r in titles)  # a title, not its article
    assert all(r["group"] in articles and articles[r["group"]]["label"] == r["label"] for r in titles)
    genres = {r["label"] for r in rows(task_files["genre"]["train"])}
    assert genres <= set(suite_tasks.GENRES.values()) and len(genres) > 5
    pairs = rows(task_files["pairs"]["train"])
    assert sorted({r["label"] for r in pairs}) == ["match", "other"]
    assert sum(r["label"] == "match" for r in pairs) == len(pairs) // 2
    assert all(set(r) == {"text_a", "text_b", "label", "group"} for r in pairs)
    pos = rows(task_files["pos"]["dev"])
    assert all(len(r["tokens"]) == len(r["tags"]) for r in pos)


def result(retention: dict[str, float], half_width: float = 0.01) -> dict:
    tasks = {
        t: {"kd": {"dev": {"retention": r, "half_width": half_width}, "test": {"retention": r, "half_width": 0.02}}}
        for t, r in retention.items()
    }
    return {"seeds": 3, "tasks": tasks}


def test_decision_rule():
    current = result({"a": 0.98, "b": 0.99, "c": 0.97})
    better = result({"a": 0.99, "b": 0.995, "c": 0.975})
    assert suite.decide(current, better, "kd")["verdict"] == "candidate"
    assert suite.decide(better, current, "kd")["verdict"] == "current"
    # within 0.1 point on the mean: the current default stays
    assert suite.decide(current, result({"a": 0.981, "b": 0.99, "c": 0.97}), "kd")["verdict"] == "current"
    # a higher mean that costs one task beyond its interval: the smaller worst loss wins
    # (the current default's worst loss is its largest deficit against the candidate)
    lopsided = result({"a": 0.992, "b": 1.0, "c": 0.955})  # +1.2, +1, -1.5 points: the current loses at most 1.2
    decision = suite.decide(current, lopsided, "kd")
    assert decision["verdict"] == "current" and "worst loss" in decision["reason"]
    assert decision["dev_gain"]["c"] == pytest.approx(-0.015)
    assert suite.decide(current, result({"a": 1.0, "b": 0.99, "c": 0.955}), "kd")["verdict"] == "candidate"


def test_gate_compares_with_the_accepted_results():
    accepted = result({"a": 0.98, "b": 0.99})
    assert suite.gate_failures(result({"a": 0.965, "b": 0.99}), accepted) == []  # within ±2 points
    failures = suite.gate_failures(result({"a": 0.95, "b": 0.99}), accepted)
    assert len(failures) == 1 and failures[0].startswith("a/kd: test retention 95.00% < 96.00%")
    assert "not in the current results" in suite.gate_failures(result({"a": 0.98}), accepted)[0]


def test_suite_runs_small_and_gates(tmp_path, capsys):
    teacher = build_tiny_model(tmp_path / "tiny4", layers=4)
    common = ["--work", tmp_path / "work", "--results", tmp_path / "results", "--teacher-model", teacher]
    common += ["--sizes", "200,20,20", "--tasks", "titles", "pos", "--students", "kd", "--seeds", "2", "--force"]
    common = [str(a) for a in common]
    assert suite.main(["run", *common]) == 0
    stored = json.loads((tmp_path / "results" / "suite.json").read_text())["defaults"]
    assert stored["seeds"] == 2 and set(stored["tasks"]) == {"titles", "pos"}
    for task in ("titles", "pos"):
        kd = stored["tasks"][task]["kd"]
        assert set(kd["seeds"]) == {"42", "43"}
        assert kd["test"]["retention"] > 0 and kd["test"]["half_width"] >= 0  # tiny teachers: often 0
        assert "--group-column group" in kd["command"]
    assert suite.main(["accept", *common]) == 0
    assert suite.main(["gate", *common]) == 0
    accepted = json.loads((tmp_path / "results" / "suite_accepted.json").read_text())
    accepted["defaults"]["tasks"]["pos"]["kd"]["test"]["retention"] += 1.0  # as if the accepted run were far better
    (tmp_path / "results" / "suite_accepted.json").write_text(json.dumps(accepted))
    capsys.readouterr()
    assert suite.main(["gate", *common]) == 1
    out = capsys.readouterr().out
    assert "gate: pos/kd: test retention" in out and "titles" not in out and "gate: FAILED" in out


def test_precision_pairs_fp32_with_bf16_runs(tmp_path):
    teacher = build_tiny_model(tmp_path / "tiny4", layers=4)
    common = ["--work", tmp_path / "work", "--results", tmp_path / "results", "--teacher-model", teacher]
    common += ["--sizes", "60,20,20", "--tasks", "titles", "--students", "kd", "--seeds", "2", "--force"]
    common = [str(a) for a in common]
    assert suite.main(["run", *common]) == 0
    assert suite.main(["run", "--variant", "fp32", *common]) == 0
    assert (tmp_path / "work" / "titles" / "teacher-fp32" / "metrics.json").is_file()  # its own teacher
    assert suite.main(["precision", *common]) == 0
    stored = json.loads((tmp_path / "results" / "suite_precision.json").read_text())["titles"]
    assert set(stored) >= {"teacher", "kd@seed-42", "kd@seed-43"}
    for pair in ("teacher", "kd@seed-43"):
        assert set(stored[pair]) == {"dev", "test"}
        assert stored[pair]["test"]["difference"] == pytest.approx(
            stored[pair]["test"]["model"] - stored[pair]["test"]["reference"], abs=1e-4
        )
