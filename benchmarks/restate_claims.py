"""The README's earlier single-split claims re-stated with 95% intervals, from the counts their results JSON hold.

    python benchmarks/restate_claims.py

Those runs kept scores, not predictions, so what can be re-stated from them is what counts alone determine:
- a model's accuracy on n test examples with its 95% percentile bootstrap interval (distilkit's own intervals():
  for accuracy the bootstrap depends on the number correct and n only), and the retention that interval allows
  with the teacher's score held fixed;
- for two models scored on the same n examples (a student and its teacher, two recipes, two tools), the difference
  in examples, and the smallest p-value McNemar's exact test could give it over every possible split into
  discordant pairs: a difference of d examples can never reach p < 0.05 when 2 * 0.5**d >= 0.05, i.e. d <= 5.
The paired intervals themselves need the predictions: the demo's pair is re-scored in full by
`distilkit distill --seeds` (benchmarks/results/restated.json "demo-3L-seeds"), and methods are compared on pooled
cross-validation predictions by benchmarks/folds_methods.py. Writes benchmarks/results/restated.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from common import RESULTS, save
from scipy.stats import binomtest

from distilkit.evaluation.intervals import classification_units, intervals

N = 213  # bbc-news test split
# claims of the README that rest on bbc-news test accuracies: (name, results file, entries, the claim)
CLAIMS = [
    ("ablation a-e, seed 42", "tinybert_ablation", ["a", "b", "c", "d", "e"], "methods ranked by one split"),
    ("e-t2, seeds 42/1/2", "tinybert_ablation", ["e-t2.xeon", "e-t2.xeon@seed1", "e-t2.xeon@seed2"], "target met"),
    ("e-t2, seeds 3/4/5", "tinybert_ablation", [f"e-t2.epyc2@seed{s}" for s in (3, 4, 5)], "target not met"),
    ("d-aug4, seeds 3/4/5", "tinybert_ablation", [f"d-aug4.epyc3@seed{s}" for s in (3, 4, 5)], "target not met"),
    ("d-aug4-g3, seeds 3/4/5", "tinybert_ablation", [f"d-aug4-g3.epyc5@seed{s}" for s in (3, 4, 5)], "target met"),
    ("MPNet teacher → 4L-312 (task-e)", "tinybert_mpnet", ["task-e", "task-e@seed1", "task-e@seed2"], "retention"),
    ("bbc-news 3L and 4L312 students", "distill_builtin", ["bbc-tinybert-3L", "bbc-tinybert-4L312"], "retention"),
]


def interval_of(correct: int, n: int) -> list[float]:
    """The 95% bootstrap interval of correct / n, by distilkit's intervals() (seed 0, 1,000 resamples)."""
    gold = np.zeros(n, dtype=int)
    return intervals(classification_units(gold, (np.arange(n) >= correct).astype(int), 2))["accuracy"]


def smallest_mcnemar_p(difference: int, n: int) -> float:
    """The smallest two-sided exact McNemar p-value a difference of `difference` examples can have on n."""
    d = abs(difference)
    if d == 0:
        return 1.0
    return min(binomtest(d + k, d + 2 * k, 0.5).pvalue for k in range(0, (n - d) // 2 + 1))


def row(name: str, entry: dict, target: float = 0.985) -> dict:
    teacher, student = round(entry["teacher_test"] * N), round(entry["student_test"] * N)
    low, high = interval_of(student, N)
    t = teacher / N
    return {
        "run": name,
        "teacher_correct": teacher,
        "student_correct": student,
        "student_accuracy": round(student / N, 4),
        "interval": [round(low, 4), round(high, 4)],
        "retention_range": [round(low / t, 4), round(high / t, 4)],
        "target_inside_interval": low / t <= target <= high / t,
        "difference_examples": student - teacher,
        "smallest_mcnemar_p": round(smallest_mcnemar_p(student - teacher, N), 4),
    }


def seeds_summary(folder: Path) -> dict:
    """A `distill --seeds` run folder's seeds, each with its full paired comparison against the teacher."""
    block = json.loads((folder / "metrics.json").read_text())["seeds"]
    runs = []
    for run in block["runs"]:
        test = json.loads((folder / "seeds" / run["run"] / "metrics.json").read_text())["test"]
        paired = test["paired"]
        runs.append(
            {
                "run": run["run"],
                "dev": round(run["dev"], 4),
                "student": round(test["student"]["accuracy"], 4),
                "interval": test["student"]["intervals"]["accuracy"],
                "difference": paired["difference"],
                "difference_interval": paired["interval"],
                "only_teacher_right": paired["only_a_right"],
                "only_student_right": paired["only_b_right"],
                "p_value": paired["p_value"],
                "significant": paired["significant"],
            }
        )
    teacher = json.loads((folder / "seeds" / block["chosen"] / "metrics.json").read_text())["test"]["teacher"]
    import yaml

    config = yaml.safe_load((folder / "config.yaml").read_text())
    keys = (
        "teacher",
        "student",
        "method",
        "intermediate_epochs",
        "epochs",
        "lr",
        "data",
        "max_length",
        "seed",
        "seeds",
    )
    return {
        "options": {k: config[k] for k in keys},
        "teacher": round(teacher["accuracy"], 4),
        "teacher_interval": teacher["intervals"]["accuracy"],
        "runs": runs,
        "mean": block["mean"],
        "sd": block["sd"],
        "chosen": block["chosen"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds-run", type=Path, help="a `distill --seeds` run folder to summarise as well")
    args = parser.parse_args()
    if args.seeds_run:
        print(f"written to {save('restated', 'demo-3L-seeds', seeds_summary(args.seeds_run))}")
    out: dict = {"examples": N, "claims": []}
    for title, source, names, claim in CLAIMS:
        results = json.loads((RESULTS / f"{source}.json").read_text())
        rows = [row(name, results[name]) for name in names]
        median = statistics.median(r["student_correct"] for r in rows)
        out["claims"].append({"claim": title, "as_stated": claim, "runs": rows, "median_correct": median})
    peers = json.loads((RESULTS / "peer_textbrewer.json").read_text())
    for setting, result in peers.items():
        tools = result["median"]
        a, b = round(tools["textbrewer"]["test_accuracy"] * N), round(tools["distilkit"]["test_accuracy"] * N)
        out["claims"].append(
            {
                "claim": f"distilkit vs TextBrewer, {setting}",
                "as_stated": "accuracy difference",
                "textbrewer": {"correct": a, "interval": interval_of(a, N)},
                "distilkit": {"correct": b, "interval": interval_of(b, N)},
                "difference_examples": b - a,
                "smallest_mcnemar_p": round(smallest_mcnemar_p(b - a, N), 4),
            }
        )
    print(json.dumps(out, indent=2))
    print(f"written to {save('restated', 'counts', out)}")


if __name__ == "__main__":
    main()
