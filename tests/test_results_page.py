"""docs/results.md is generated from benchmarks/results/*.json: it is up to date, and a changed number changes it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
import results_page  # noqa: E402


def test_the_page_is_what_the_json_gives():
    assert results_page.main(["--check"]) == 0, "docs/results.md is stale: run python scripts/results_page.py"


def test_a_changed_number_changes_the_page(tmp_path):
    for name in ("suite.json", "suite_decisions.json"):
        if (results_page.RESULTS / name).exists():
            shutil.copy(results_page.RESULTS / name, tmp_path / name)
    data = json.loads((tmp_path / "suite.json").read_text())
    variant = next(iter(data.values()))
    task = next(iter(variant["tasks"].values()))
    student = task.get("tinybert", task.get("kd"))
    before = results_page.render(tmp_path)
    assert f"| {100 * student['test']['retention']:.2f}%" in before
    student["test"]["retention"] = 0.5
    (tmp_path / "suite.json").write_text(json.dumps(data))
    after = results_page.render(tmp_path)
    assert "| 50.00% ± " in after and after != before
