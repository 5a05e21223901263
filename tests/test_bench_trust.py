"""Honest timings: bench flags numbers taken on a busy machine or with a wide spread, and the report then
claims no speed-up. The machine's load and the timed rounds are injected, so no test burns CPU to be busy."""

import json

import pytest

from distilkit.evaluation.options import BenchConfig, ReportConfig

UNDISTURBED = {"p50": 20.2, "p95": 22.8}  # the README demo's teacher
DISTURBED = {"p50": 166.0, "p95": 913.0}  # the same teacher benched while another job ran


def test_spread_rule():
    from distilkit.evaluation.bench import SPREAD_LIMIT, spread_warning

    assert SPREAD_LIMIT == 2.0
    assert spread_warning(UNDISTURBED["p50"], UNDISTURBED["p95"]) is None
    assert spread_warning(10.0, 20.0) is None  # exactly at the limit: still fine
    warning = spread_warning(DISTURBED["p50"], DISTURBED["p95"])
    assert "p95 913.0 ms is 5.5x p50 166.0 ms" in warning and "limit 2x" in warning
    assert spread_warning(10.0, 20.1) is not None


@pytest.mark.parametrize(
    "before, after, cores, threads, busy",
    [
        (0.9, 1.9, 2, 2, False),  # our own two threads: a quiet machine
        (None, None, 2, 2, False),  # no load average on this OS: nothing to say
        (0.9, 3.1, 2, 2, True),  # a second job joined while measuring
        (4.0, 1.0, 2, 2, True),  # busy when measuring began
        (3.0, 3.0, 4, 1, False),  # one thread on four cores: others have spare cores
        (4.2, 4.4, 2, 4, False),  # four threads on two cores: the load is ours
        (4.6, 4.6, 2, 4, True),
    ],
)
def test_load_rule(before, after, cores, threads, busy):
    from distilkit.evaluation.bench import load_warning

    warning = load_warning(before, after, cores, threads)
    assert (warning is not None) == busy
    if busy:
        assert (
            warning.startswith("machine busy: 1-minute load average")
            and f"({cores} cores, {threads} threads)" in warning
        )


def test_judge_timings_flags_rows_and_summarises():
    from distilkit.evaluation.bench import judge_timings

    rows = [
        {"model": "teacher", "latency_p50_ms": DISTURBED["p50"], "latency_p95_ms": DISTURBED["p95"]},
        {"model": "student", "latency_p50_ms": 9.5, "latency_p95_ms": 10.1},
    ]
    summary = judge_timings(rows, 0.5, 1.5, cores=2, threads=2)
    assert [r["trustworthy"] for r in rows] == [False, True] and rows[1]["warnings"] == []
    assert summary["trustworthy"] is False and summary["warnings"] == ["teacher: " + rows[0]["warnings"][0]]
    assert summary["load"] == {"before": 0.5, "after": 1.5, "limit": 2.5, "cores": 2, "threads": 2}
    busy = judge_timings(rows, 6.0, 7.5, cores=2, threads=2)
    assert all(not r["trustworthy"] and r["warnings"][0].startswith("machine busy") for r in rows)
    assert len(busy["warnings"]) == 2  # the machine once, the teacher's spread once


@pytest.fixture(scope="module")
def two_models(tiny_model, tmp_path_factory):
    """Two tiny classifiers (teacher, student) bench can load; their weights do not matter here."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    root = tmp_path_factory.mktemp("bench-trust")
    labels = {0: "a", 1: "b", 2: "c"}
    config = BertConfig.from_pretrained(tiny_model, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    model, tokenizer = BertForSequenceClassification(config), AutoTokenizer.from_pretrained(tiny_model)
    for name in ("teacher", "student"):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return [str(root / "teacher"), str(root / "student")]


def fake_rounds(calls, singles, many, rounds, settle_ms=0):
    """The teacher stalls on a quarter of its calls; the student is steady: p50 166 / p95 913 ms vs 9.5 ms."""
    teacher = [0.166] * 15 + [0.913] * 5
    return [teacher, [0.0095] * 20][: len(calls)], [[0.5] * 3 for _ in calls]


def run_bench(models, tmp_path):
    from distilkit.evaluation.bench import bench

    out = tmp_path / "bench.json"
    bench(BenchConfig(models=models, rounds=2, warmup=1, seq_len=8, batch_size=2, memory=False, output=str(out)))
    return json.loads(out.read_text())


def test_bench_json_flags_a_wide_spread(two_models, tmp_path, monkeypatch, capsys):
    import distilkit.evaluation.bench as bench_module

    monkeypatch.setattr(bench_module, "timed_rounds", fake_rounds)
    monkeypatch.setattr(bench_module, "machine_load", lambda: 0.1)
    monkeypatch.setattr(bench_module, "usable_cores", lambda: 2)
    result = run_bench(two_models, tmp_path)
    teacher, student = result["models"]
    assert (teacher["latency_p50_ms"], teacher["latency_p95_ms"], student["speedup"]) == (166.0, 913.0, 17.47)
    assert teacher["trustworthy"] is False and "5.5x p50" in teacher["warnings"][0]
    assert student["trustworthy"] is True and student["warnings"] == []
    assert result["trustworthy"] is False and result["warnings"] == [f"teacher: {teacher['warnings'][0]}"]
    assert result["spread_limit"] == 2.0 and result["load"]["before"] == 0.1
    printed = capsys.readouterr().out
    assert "warning: these timings cannot be trusted" in printed and "warning: teacher: p95 913.0 ms" in printed


def test_bench_json_flags_a_machine_that_got_busy_while_measuring(two_models, tmp_path, monkeypatch, capsys):
    import distilkit.evaluation.bench as bench_module

    samples = iter([0.3, 6.5])  # quiet before the timed rounds, busy after: both samples count
    monkeypatch.setattr(bench_module, "machine_load", lambda: next(samples))
    monkeypatch.setattr(bench_module, "usable_cores", lambda: 2)
    monkeypatch.setattr(bench_module.torch, "get_num_threads", lambda: 2)
    result = run_bench(two_models, tmp_path)
    assert result["trustworthy"] is False and result["load"] == {
        "before": 0.3,
        "after": 6.5,
        "limit": 2.5,
        "cores": 2,
        "threads": 2,
    }
    for row in result["models"]:
        assert row["trustworthy"] is False
        assert row["warnings"][0] == (
            "machine busy: 1-minute load average 0.3 before and 6.5 after measuring, "
            "above 2.5 (2 cores, 2 threads): other processes took CPU time"
        )
    assert "warning: machine busy" in capsys.readouterr().out


def pipeline_run(tmp_path, teacher: dict, student: dict):
    """The files report reads from a pipeline run: bench.json and eval/<model>.json."""
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    models = []
    for name, timing, size, score in (("teacher", teacher, 90.9, 0.9671), ("student", student, 17.5, 0.9531)):
        row = {
            "model": name,
            "path": name,
            "backend": "torch",
            "precision": "fp32",
            "parameters": 22_700_000,
            "size_mb": size,
            "gflops_per_example": 2.9,
            "latency_p50_ms": timing["p50"],
            "latency_p95_ms": timing["p95"],
            "throughput_per_s": 60.0,
            "peak_memory_mb": None,
            "speedup": round(teacher["p50"] / timing["p50"], 2),
            "speedup_flops": 1.0,
            **{k: v for k, v in timing.items() if k in ("trustworthy", "warnings")},
        }
        models.append(row)
        (run / "eval" / f"{name}.json").write_text(json.dumps({"split": "test", "accuracy": score}))
    bench = {"seq_len": 128, "inputs": "synthetic", "batch_size": 32, "rounds": 30, "threads": 2, "models": models}
    (run / "bench.json").write_text(json.dumps(bench))
    return run


def verdict_of(run):
    from distilkit.evaluation.report import report

    report(ReportConfig(runs=[str(run)], min_retention=0.98), quiet=True)
    md = (run / "report.md").read_text()
    return md.split("\n")[2], md, (run / "report.html").read_text()


def test_report_is_confident_only_about_trusted_timings(tmp_path):
    trusted = pipeline_run(
        tmp_path,
        {**UNDISTURBED, "trustworthy": True, "warnings": []},
        {"p50": 10.0, "p95": 10.8, "trustworthy": True, "warnings": []},
    )
    verdict, md, page = verdict_of(trusted)
    assert verdict.startswith("Ship **student**") and "(2.0x faster)" in verdict
    assert "Caveat" not in md and "timing-caveat" not in page


def test_report_on_a_wide_spread_claims_no_speedup(tmp_path):
    from distilkit.evaluation.bench import spread_warning

    wide = spread_warning(DISTURBED["p50"], DISTURBED["p95"])
    run = pipeline_run(
        tmp_path,
        {**DISTURBED, "trustworthy": False, "warnings": [wide]},
        {"p50": 9.5, "p95": 10.1, "trustworthy": True, "warnings": []},
    )
    verdict, md, page = verdict_of(run)
    assert "faster" not in verdict and "17.5x faster" not in md  # the seen, confident claim is gone
    assert "could not be measured reliably" in verdict and "p95 latency was over 2x p50 for teacher" in verdict
    assert f"> **Caveat.** Timings not trustworthy (starred in the table): teacher: {wide}" in md
    assert "| teacher | 0.9671 | 100.0% | 22.7M | 90.9 | 166.0 * | 913.0 * |" in md
    assert 'id="timing-caveat"' in page and "could not be measured reliably" in page


def test_report_on_a_busy_machine_names_it(tmp_path):
    busy = (
        "machine busy: 1-minute load average 5.9 before and 7.2 after measuring, above 2.5 (2 cores, 2 threads): "
        "other processes took CPU time"
    )
    run = pipeline_run(
        tmp_path,
        {**UNDISTURBED, "trustworthy": False, "warnings": [busy]},
        {"p50": 10.0, "p95": 10.8, "trustworthy": False, "warnings": [busy]},
    )
    verdict, md, _ = verdict_of(run)
    assert "faster" not in verdict and "other processes were busy on the machine" in verdict
    assert md.count("machine busy") == 1  # named once, not once per model


def test_report_judges_an_old_bench_json_by_its_spread(tmp_path):
    run = pipeline_run(tmp_path, DISTURBED, {"p50": 9.5, "p95": 10.1})  # written before bench had the flags
    verdict, md, _ = verdict_of(run)
    assert "faster" not in verdict and "could not be measured reliably" in verdict


@pytest.mark.parametrize("settle_ms, untimed", [(50, {"teacher": 1, "student": 4}), (0, {"teacher": 0, "student": 0})])
def test_each_timed_call_comes_after_its_own_models_untimed_calls(monkeypatch, settle_ms, untimed):
    """Right after another model a call is slow (that model's threads still spin, its data fills the caches):
    bench runs each model untimed for settle_ms first, and times its calls only then."""
    import distilkit.evaluation.bench as bench_module

    clock, log = [0.0], []

    def model(name: str, seconds: float):
        def call(batch):
            log.append((name, batch["id"]))
            clock[0] += seconds if batch["id"] == "one" else 4 * seconds

        return call

    monkeypatch.setattr(bench_module.time, "perf_counter", lambda: clock[0])
    calls = [model("teacher", 0.125), model("student", 1 / 64)]
    latency, throughput = bench_module.timed_rounds(calls, [{"id": "one"}], {"id": "many"}, 2, settle_ms)
    per_round = []
    for name in ("teacher", "student"):
        per_round += [(name, "one")] * (untimed[name] + 1) + [(name, "many")]
    assert log == per_round * 2
    assert latency == [[0.125] * 2, [1 / 64] * 2] and throughput == [[0.5] * 2, [1 / 16] * 2]
