"""Confidence intervals and the paired comparison (evaluation/intervals.py), against reference computations:
scipy's own bootstrap of the plain statistic, scikit-learn's and seqeval's scores, scipy's correlations."""

import numpy as np
import pytest
from scipy.stats import bootstrap, pearsonr, spearmanr
from sklearn.metrics import f1_score

from distilkit.evaluation.intervals import (
    classification_units,
    compare,
    intervals,
    mcnemar,
    regression_units,
    token_units,
)

RNG = np.random.default_rng(7)
GOLD = RNG.integers(0, 4, 500)
PRED = np.where(RNG.random(500) < 0.8, GOLD, RNG.integers(0, 4, 500))


def reference(statistic, *samples, seed=0):
    """scipy.stats.bootstrap of the plain statistic, with the draws intervals() makes (same seed and batch)."""
    ci = bootstrap(
        samples,
        statistic,
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=1000,
        batch=100,
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    return [ci.low, ci.high]


def test_accuracy_interval_is_scipys_bootstrap_of_the_mean():
    units = classification_units(GOLD, PRED, 4)
    got = intervals(units)
    correct = (GOLD == PRED).astype(float)
    assert got["accuracy"] == pytest.approx(reference(lambda c, axis: c.mean(axis=axis), correct), abs=1e-6)
    assert got["accuracy"][0] < correct.mean() < got["accuracy"][1]
    assert got["unit"] == "examples" and got["confidence"] == 0.95


def test_macro_f1_from_sums_is_scikit_learns_and_its_interval_scipys():
    units = classification_units(GOLD, PRED, 6)  # two classes never seen count as 0, as with labels=range(6)
    assert units.point()["macro_f1"] == pytest.approx(
        f1_score(GOLD, PRED, labels=range(6), average="macro", zero_division=0)
    )

    def macro(g, p, axis):
        return np.apply_along_axis(
            lambda r: f1_score(r[: len(r) // 2], r[len(r) // 2 :], labels=range(6), average="macro", zero_division=0),
            -1,
            np.concatenate([g, p], -1),
        )

    got = intervals(units, resamples=1000)["macro_f1"]
    assert got == pytest.approx(reference(macro, GOLD, PRED), abs=1e-6)


def test_regression_metrics_and_their_intervals():
    x = RNG.normal(size=300)
    y = x + RNG.normal(scale=0.5, size=300)
    units = regression_units(x, y)
    point = units.point()
    assert point["mse"] == pytest.approx(np.mean((x - y) ** 2))
    assert point["pearson"] == pytest.approx(pearsonr(x, y)[0])
    assert point["spearman"] == pytest.approx(spearmanr(x, y)[0])
    got = intervals(units)
    assert got["mse"] == pytest.approx(reference(lambda a, b, axis: ((a - b) ** 2).mean(axis=axis), x, y), abs=1e-6)
    assert got["pearson"][0] < point["pearson"] < got["pearson"][1]
    assert got["spearman"][0] < point["spearman"] < got["spearman"][1]


def test_entity_f1_is_seqevals_and_resamples_sentences():
    from seqeval.metrics import f1_score as entity_f1

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"], ["B-LOC", "O", "O"]] * 20
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "B-ORG"], ["B-PER", "O", "O"]] * 20
    units = token_units(gold, pred, bio=True)
    assert units.unit == "sentences" and len(units.table) == 60
    assert units.point()["f1"] == pytest.approx(entity_f1(gold, pred))
    low, high = intervals(units)["f1"]
    assert low < units.point()["f1"] < high


def test_a_student_identical_to_its_teacher_differs_by_nothing():
    teacher = classification_units(GOLD, PRED, 4)
    result = compare(teacher, classification_units(GOLD, PRED.copy(), 4), "accuracy")
    assert result["difference"] == 0 and result["interval"] == [0, 0] and result["p_value"] == 1.0
    assert not result["significant"]


def test_a_student_ten_points_worse_on_1000_examples_is_significant():
    gold = np.arange(1000) % 5
    teacher_pred = np.where(np.arange(1000) < 900, gold, (gold + 1) % 5)  # 90% right
    student_pred = np.where(np.arange(1000) < 800, gold, (gold + 1) % 5)  # 80% right: the teacher's errors and more
    result = compare(
        classification_units(gold, teacher_pred, 5), classification_units(gold, student_pred, 5), "accuracy"
    )
    assert result["difference"] == pytest.approx(-0.1)
    assert result["interval"][1] < 0 and result["p_value"] < 1e-20 and result["significant"]
    assert (result["only_a_right"], result["only_b_right"]) == (100, 0)


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs():
    from scipy.stats import binomtest

    a = np.array([1] * 30 + [0] * 5 + [1] * 60 + [0] * 5)
    b = np.array([0] * 30 + [1] * 5 + [1] * 60 + [0] * 5)
    result = mcnemar(a, b)
    assert (result["only_a_right"], result["only_b_right"]) == (30, 5)
    assert result["p_value"] == pytest.approx(binomtest(30, 35, 0.5).pvalue, abs=1e-6)


def test_evaluate_finetune_and_distill_report_intervals(topic_run, topic_data, tmp_path, capsys):
    """The commands' own results carry the intervals; distill compares its student with the teacher, paired."""
    import json

    from conftest import FAST, run_cli

    test = json.loads((topic_run / "metrics.json").read_text())["test"]
    low, high = test["intervals"]["accuracy"]
    assert low <= test["accuracy"] <= high and test["intervals"]["unit"] == "examples"

    code, out, err = run_cli(
        ["evaluate", "--model", topic_run, "--data", topic_data, "--output", tmp_path / "e"], capsys
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    low, high = metrics["intervals"]["accuracy"]
    assert f"accuracy: {metrics['accuracy']:.4f} [{low:.4f}, {high:.4f}]" in out

    args = ["distill", "--teacher", topic_run, "--data", topic_data, "--student", "1", "--output", tmp_path / "s"]
    code, out, err = run_cli([*args, "--epochs", "1", *FAST], capsys)
    assert code == 0, err
    paired = json.loads((tmp_path / "s" / "metrics.json").read_text())["test"]["paired"]
    assert paired["metric"] == "accuracy" and paired["test"] == "McNemar exact" and 0 <= paired["p_value"] <= 1
    assert paired["interval"][0] <= paired["difference"] <= paired["interval"][1]
    assert "student − teacher (paired): accuracy " in out and "95% paired bootstrap over examples" in out

    args = ["evaluate", "--model", tmp_path / "s", "--data", topic_data, "--compare", topic_run, "--json"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    result = json.loads(out)  # a single file is evaluated whole: both models on all its rows
    again = result["paired"]
    assert again["difference"] == pytest.approx(result["accuracy"] - again["compared_score"], abs=1e-6)
    assert again["compared_with"] == str(topic_run) and again["unit"] == "examples"
    assert again["only_a_right"] - again["only_b_right"] == round(-again["difference"] * result["examples"])


def test_compare_refuses_a_model_of_other_labels(topic_run, topic_data, tiny_model, tmp_path, capsys):
    from conftest import FAST, run_cli, topic_rows, write_csv

    other = write_csv(tmp_path / "two.csv", [r for r in topic_rows(60, seed=2) if r["label"] in ("sport", "music")])
    assert run_cli(["finetune", "--model", tiny_model, "--data", other, "--output", tmp_path / "two", *FAST])[0] == 0
    code, _, err = run_cli(
        ["evaluate", "--model", topic_run, "--data", topic_data, "--compare", tmp_path / "two"], capsys
    )
    assert code == 2 and err.count("\n") == 1 and "compare models of the same labels" in err


def test_spearman_of_a_resample_is_the_correlation_of_its_own_ranks_ties_included():
    from distilkit.evaluation.intervals import _resampled_spearman

    x = RNG.integers(0, 20, 300).astype(float)  # many ties
    y = x + RNG.normal(size=300)
    idx = RNG.integers(0, 300, (50, 300))
    expected = [spearmanr(x[row], y[row])[0] for row in idx]
    assert _resampled_spearman(x, y)(idx) == pytest.approx(expected, abs=1e-12)


def test_grouped_accuracy_is_the_cluster_bootstrap_of_whole_groups():
    """Resampling groups (Field & Welsh 2007): the ratio of correct to examples over the groups drawn, scipy's draws."""
    groups = RNG.integers(0, 40, 500)  # 40 documents of varying size
    units = classification_units(GOLD, PRED, 4).grouped(groups.tolist())
    correct = (GOLD == PRED).astype(float)
    ids = np.unique(groups.astype(str))
    per_group = np.array([[correct[groups.astype(str) == g].sum(), (groups.astype(str) == g).sum()] for g in ids])

    def ratio(rows, axis):
        drawn = per_group[rows]
        return drawn[..., 0].sum(axis=-1) / drawn[..., 1].sum(axis=-1)

    got = intervals(units)
    assert got["unit"] == "groups" and len(units.table) == 40
    assert got["accuracy"] == pytest.approx(reference(ratio, np.arange(40)), abs=1e-6)
    assert units.point() == pytest.approx(classification_units(GOLD, PRED, 4).point())  # the score is the same


def test_examples_that_move_together_get_a_wider_interval_when_grouped():
    """20 documents of 10 examples, each document all right or all wrong: 20 draws' worth of evidence, not 200."""
    right = np.repeat(RNG.random(20) < 0.8, 10)
    gold = np.zeros(200, dtype=int)
    units = classification_units(gold, np.where(right, 0, 1), 2)
    plain, grouped = intervals(units)["accuracy"], intervals(units.grouped(np.repeat(np.arange(20), 10)))["accuracy"]
    assert (grouped[1] - grouped[0]) > 2 * (plain[1] - plain[0])


def test_grouped_comparison_drops_mcnemar():
    student, teacher = classification_units(GOLD, PRED, 4), classification_units(GOLD, GOLD, 4)
    groups = (np.arange(500) // 5).tolist()
    paired = compare(teacher.grouped(groups), student.grouped(groups), "accuracy")
    assert "p_value" not in paired and paired["unit"] == "groups"
    assert paired["difference"] == pytest.approx((GOLD == PRED).mean() - 1)


def test_group_column_in_evaluate_and_folds(topic_run, tiny_model, tmp_path, capsys):
    import json

    from conftest import FAST, run_cli, topic_rows, write_csv

    rows = [{**row, "doc": f"d{i // 4}"} for i, row in enumerate(topic_rows(240, seed=1))]  # 60 documents
    data = write_csv(tmp_path / "docs.csv", rows)
    out = tmp_path / "eval"
    args = ["evaluate", "--model", topic_run, "--data", data, "--group-column", "doc", "--output", out]
    assert run_cli(args, capsys)[0] == 0
    bounds = json.loads((out / "metrics.json").read_text())["intervals"]
    assert bounds["unit"] == "groups"
    code, _, err = run_cli([*args[:-2], "--group-column", "document", "--output", tmp_path / "x"], capsys)
    assert code == 2 and "document" in err and "--group-column" in err
    folds = tmp_path / "folds"
    train = ["finetune", "--model", tiny_model, "--data", data, "--group-column", "doc", "--folds", "3"]
    assert run_cli([*train, "--epochs", "1", "--output", folds, *FAST], capsys)[0] == 0
    seen = [set(json.loads((folds / "folds" / f"fold-{k}" / "predictions_test.json").read_text())["model"]["groups"])
            for k in range(3)]  # fmt: skip
    assert sum(len(s) for s in seen) == 60 and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert json.loads((folds / "metrics.json").read_text())["test"]["intervals"]["unit"] == "groups"
