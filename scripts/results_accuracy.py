"""Sections of docs/results.md for the benchmarks of accuracy: re-stated claims, folds, fine-tuning, distillation,
TinyBERT's method, PEFT, continual learning, compression, augmentation candidates (scripts/results_sections.py
lists every section in page order)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from results_format import (
    cell,
    commands,
    compact,
    default,
    done,
    each,
    heading,
    interval,
    keyed_table,
    load,
    machines,
    num,
    pct,
    pt,
    table,
    times,
)


def restated_section(results: Path) -> str:
    data = load(results, "restated")
    if not data:
        return ""
    counts = data["counts"]
    about = (
        f"Earlier single-split claims on {counts['examples']} test examples, re-stated from their counts: each accuracy"
        " with its 95% bootstrap interval, the retention that interval allows with the teacher's score held fixed, the"
        " difference in examples, and the smallest p McNemar's exact test could give it. Target inside: whether"
        f" {pct(default('restate_claims', 'row', 'target'))} retention lies inside the retention range."
    )
    lines = heading("Single-split claims with intervals", "restate_claims", "restate-claims", about)
    rows = []
    for claim in counts["claims"]:
        name = f"{claim['claim']} (median {claim['median_correct']})" if "median_correct" in claim else claim["claim"]
        for r in claim.get("runs", []):
            low, high = r["retention_range"]
            rows.append(
                f"{name} | {claim['as_stated']} | {r['run']} | {r['student_correct']} / {r['teacher_correct']} | "
                f"{pct(r['student_accuracy'])} {interval(r['interval'])} | {100 * low:.2f}–{pct(high)} | "
                f"{'yes' if r['target_inside_interval'] else 'no'} | {r['difference_examples']:+d} | "
                f"{r['smallest_mcnemar_p']}"
            )
        for tool in (t for t in ("textbrewer", "distilkit") if t in claim):
            last = (
                f"{claim['difference_examples']:+d} | {claim['smallest_mcnemar_p']}" if tool == "distilkit" else " | "
            )
            rows.append(
                f"{name} | {claim['as_stated']} | {tool} | {claim[tool]['correct']} | "
                f"{interval(claim[tool]['interval'])} |  |  | {last}"
            )
    header = (
        "claim | as stated | run | right (student / teacher) | accuracy [95% interval] | retention range | "
        "target inside | difference (examples) | smallest McNemar p"
    )
    lines += table(header, rows) + demo_seeds(data.get("demo-3L-seeds"))
    return done(lines + machines((k, v["machine"]) for k, v in data.items()))


def demo_seeds(entry: dict | None) -> list[str]:
    if not entry:
        return []
    options = ", ".join(f"{k} {v}" for k, v in entry["options"].items())
    lines = ["", "### The demo's 3-layer student over seeds (`demo-3L-seeds`)", ""]
    lines += [
        f"`distilkit distill` with {cell(options)}; teacher {pct(entry['teacher'])} "
        f"{interval(entry['teacher_interval'])}; kept (best dev): {entry['chosen']}.",
        "",
    ]
    rows = [
        f"{r['run']} | {pct(r['dev'])} | {pct(r['student'])} {interval(r['interval'])} | {pt(r['difference'])} "
        f"{interval(r['difference_interval'], signed=True)} | {r['only_teacher_right']} / {r['only_student_right']} | "
        f"{r['p_value']} | {'yes' if r['significant'] else 'no'}"
        for r in entry["runs"]
    ]
    mean, sd = entry["mean"], entry["sd"]
    rows.append(
        f"mean ± sd | {100 * mean['dev']:.2f} ± {100 * sd['dev']:.2f}% | "
        f"{100 * mean['test']:.2f} ± {100 * sd['test']:.2f}% |  |  |  | "
    )
    header = "run | dev | test [95% interval] | student − teacher (paired) | only teacher / only student right | "
    return lines + table(header + "McNemar p | significant", rows)


def folds_section(results: Path) -> str:
    data = load(results, "folds_methods")
    if not data:
        return ""
    about = (
        "Every article of bbc-news predicted once by each model, by models that never trained on it (`--folds`);"
        " pooled accuracy with its 95% interval, and paired differences with McNemar's exact test."
    )
    lines = heading("Methods compared on pooled folds", "folds_methods", "folds-methods", about)
    header = "model | accuracy [95% interval] | difference (paired) | right only by each | McNemar p"
    for key, entry in data.items():
        lines += [f"### {key} ({entry['folds']} folds, {entry['examples']:,} examples)", ""]
        models = {"teacher": entry["teacher"], "teacher (finetune's own run)": entry["teacher_finetune_run"]}
        models |= {f"student {m}": s for m, s in entry["students"].items()}
        rows = {name: f"{name} | {pct(m['accuracy'])} {interval(m['interval'])}" for name, m in models.items()}
        pairs = [(f"student {m}", ("teacher", m), c) for m, c in entry["student_vs_teacher"].items()]
        pairs += [(name, tuple(reversed(name.split(" - "))), c) for name, c in entry["method_vs_method"].items()]
        for name, (a, b), c in pairs:
            rows[name] = (
                f"{rows.get(name, name + ' | ')} | {pt(c['difference'])} {interval(c['interval'], signed=True)} | "
                f"{a} {c['only_a_right']} / {b} {c['only_b_right']} | {c['p_value']:.2f}"
            )
        seconds = {k: v for k, v in entry["seconds"].items() if k != "note"}
        note = f" ({cell(entry['seconds']['note'])})" if "note" in entry["seconds"] else ""
        rows = [row if row.count(" | ") == 4 else row + " |  |  | " for row in rows.values()]
        lines += table(header, rows) + ["", f"Seconds: {compact(seconds)}{note}."]
    return done(lines + machines((k, v["machine"]) for k, v in data.items()))


# --- fine-tuning and distillation ------------------------------------------------------------------------------


def finetune_section(results: Path) -> str:
    title = heading("Fine-tuning the packaged MiniLM-L6", "finetune_builtin", "finetune-builtin")
    header = (
        "dataset | train examples | test examples | test accuracy | test macro F1 | dev accuracy | "
        "truncated (train / dev / test) | training s | wall s"
    )
    return keyed_table(
        results,
        "finetune_builtin",
        title,
        header,
        lambda key, e: (
            f"{e['dataset']} | {e['train_examples']:,} | {e['test_examples']:,} | {pct(e['test_accuracy'])} | "
            f"{pct(e['test_macro_f1'])} | {pct(e['dev_accuracy'])} | {each(e['truncated'].values())} | "
            f"{e['train_seconds']} | {e['wall_seconds']}"
        ),
    )


def distill_builtin_section(results: Path) -> str:
    title = heading("Distillation on real data", "distill_builtin", "distill-builtin")
    header = (
        "job | teacher | student | retention | agreement | teacher params | student params | train / test examples | "
        "epoch s (intermediate; prediction) | wall s"
    )
    return keyed_table(
        results,
        "distill_builtin",
        title,
        header,
        lambda key, e: (
            f"{key} | {pct(e['teacher_test'])} | {pct(e['student_test'])} | {pct(e['retention'])} | "
            f"{pct(e['agreement'])} | {e['teacher_parameters']:,} | {e['student_parameters']:,} | "
            f"{e['train_examples']:,} / {e['test_examples']:,} | "
            f"{'; '.join(each(s['epoch_seconds']) for s in e['stage_timings'].values())} | {e['wall_seconds']}"
        ),
    )


# --- TinyBERT's whole method -----------------------------------------------------------------------------------


SEEDED = re.compile(r"^(?P<row>.*?)(?:@seed(?P<seed>\d+))?$")


def seed_groups(data: dict) -> dict[str, list[tuple[int, dict]]]:
    """Runs stored as `job[.TAG][@seedN]` (no @seed: seed 42), grouped by `job[.TAG]`, seed 42 first."""
    groups: dict[str, list[tuple[int, dict]]] = {}
    for key, entry in data.items():
        match = SEEDED.match(key)
        groups.setdefault(match["row"], []).append((int(match["seed"] or 42), entry))
    ordered = sorted(groups.items(), key=lambda item: item[0].split(".", 1))  # a job's tagged rows follow it
    return {row: sorted(runs, key=lambda r: (r[0] != 42, r[0])) for row, runs in ordered}


def test_accuracy(entry: dict) -> float | None:
    """A student's, an int8 model's or a fine-tuned teacher's test accuracy."""
    test = entry.get("test")
    return entry.get("student_test", entry.get("int8_test", test["accuracy"] if isinstance(test, dict) else test))


RUN_COLUMNS: dict[str, tuple[Callable, Callable]] = {  # column: (the value in a run's entry, its format)
    "test accuracy": (test_accuracy, pct),
    "retention": (lambda e: e.get("retention", e.get("int8_retention")), pct),
    "agreement": (lambda e: e.get("agreement"), pct),
    "student dev": (lambda e: e.get("student_dev"), pct),
    "tokens/s": (lambda e: e.get("train", {}).get("tokens_per_second"), lambda v: num(v, 0)),
    "wall s": (lambda e: e.get("wall_seconds"), lambda v: "–" if v is None else str(v)),
}


def runs_table(groups: dict[str, list[tuple[int, dict]]]) -> list[str]:
    """One row per `job[.TAG]`: the seeds, the teacher's test accuracy, and each seed's values in the seeds' order
    (a column no run has is left out)."""
    columns = {name: [[get(e) for _, e in runs] for runs in groups.values()] for name, (get, _) in RUN_COLUMNS.items()}
    columns = {name: found for name, found in columns.items() if any(v is not None for vs in found for v in vs)}
    rows = []
    for i, (row, runs) in enumerate(groups.items()):
        teachers = each(dict.fromkeys(e.get("teacher_test") for _, e in runs), pct)
        cells = [
            each(v[i], RUN_COLUMNS[name][1]) if any(x is not None for x in v[i]) else "–" for name, v in columns.items()
        ]
        rows.append([row, each(seed for seed, _ in runs), teachers, *cells])
    return table(" | ".join(["row", "seeds", "teacher", *columns]), rows)


def tags(data: dict) -> list[tuple[str, str]]:
    """(tag, machine) of each stored run: `job.TAG@seedN` → `.TAG`, an untagged one → `no tag`."""
    return [
        (("." + SEEDED.match(k)["row"].split(".", 1)[1]) if "." in k else "no tag", e["machine"])
        for k, e in data.items()
    ]


def ablation_section(results: Path) -> str:
    data = load(results, "tinybert_ablation")
    if not data:
        return ""
    about = (
        "The TinyBERT-4 shape distilled from the fine-tuned MiniLM-L6 by one schedule; the jobs (a, b, ..., e-t2, the"
        " few-label and POS jobs, the general distillations) are defined in the script's docstring. Rows are"
        " `job[.TAG]`; values per seed, in the order of the seeds column; teacher is the teacher's test accuracy,"
        " tokens/s that of general distillation."
    )
    lines = heading("TinyBERT's whole method", "tinybert_ablation", "tinybert-ablation", about)
    groups = seed_groups(data)
    lines += runs_table(groups)
    lines += commands(((row, runs[0][1]["command"]) for row, runs in groups.items()), collapsed=True)
    return done(lines + machines(tags(data)))


def mpnet_section(results: Path) -> str:
    data = load(results, "tinybert_mpnet")
    if not data:
        return ""
    about = (
        "all-mpnet-base-v2 fine-tuned on bbc-news and distilled into the 4L-312 MPNet student; `int8@JOB` is that"
        " job's student int8-quantized (ONNX Runtime dynamic), `bench@JOB` its speed against the teacher at batch 1."
    )
    lines = heading("A 12-layer, 768-wide teacher", "tinybert_mpnet", "tinybert-mpnet", about)
    runs = seed_groups({k: e for k, e in data.items() if "wall_seconds" in e or "int8_test" in e})
    lines += runs_table(runs) + ["", "### Speed at batch 1", ""]
    rows = [
        f"{key} | {m['model']} | {m['backend']} {m['precision']} | {m['size_mb']} | {m['latency_p50_ms']} | "
        f"{m['latency_p95_ms']} | {times(m['speedup'])}"
        for key, e in data.items()
        for m in e.get("models", [])
    ]
    rows += [
        f"{key}, run {i} | {model} |  |  | {t['p50_ms']} |  | {times(t['speedup'])}"
        for key, e in data.items()
        if isinstance(e.get("runs"), list)
        for i, run in enumerate(e["runs"], 1)
        for model, t in run.items()
    ]
    lines += table("entry | model | backend | size MB | p50 ms | p95 ms | speed-up", rows) + [""]
    lines += [f"- `{key}`: {cell(e['note'])}" for key, e in data.items() if "note" in e]
    medians = [(key, e.get("speedup_median", e.get("int8_speedup_median"))) for key, e in data.items()]
    lines += [f"- `{key}` median speed-up: {compact(median)}" for key, median in medians if median]
    lines += commands(((row, runs[0][1]["command"]) for row, runs in runs.items()), collapsed=True)
    return done(lines + machines(tags(data)))


def augment_candidates_section(results: Path) -> str:
    data = load(results, "augment_candidates")
    if not data:
        return ""
    about = "Candidates for a masked word: their share seen in Brown, and seen there with the masked word's tag."
    lines = heading("Quality of augmentation candidates", "augment_candidates", "augment-candidates", about)
    for key, e in data.items():
        rows = [
            f"{name} | {s['positions']:,} | {s['candidates']:,} | {pct(s['seen_in_brown'])} | "
            f"{pct(s['tag_consistent'])} | {s['most_common']} | {pct(s['most_common_share_of_lists'])}"
            for name, s in e.items()
            if isinstance(s, dict)
        ]
        header = "source | positions | candidates | seen in Brown | tag-consistent | most common | its share of lists"
        lines += [f"### {key} ({e['sentences']} sentences, top {e['top_k']})", ""] + table(header, rows)
        examples = [
            f"{cell(x['sentence'])} | {x['tag']} | {', '.join(x['mlm'])} | {', '.join(x['embedding'])}"
            for x in e["examples"]
        ]
        lines += ["", "Examples:", ""] + table("sentence | tag | mlm | embedding", examples)
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def peft_section(results: Path) -> str:
    about = "Each run a separate process under `/usr/bin/time`: peak memory is its max RSS; saved = the model folder."
    header = "method | test accuracy | trainable params | of all | saved MB | training s | wall s | peak RSS MB"
    return keyed_table(
        results,
        "peft_methods",
        heading("PEFT methods", "peft_methods", "peft-methods", about),
        header,
        lambda key, e: (
            f"{key} | {pct(e['test_accuracy'])} | {e['trainable_parameters']:,} | "
            f"{pct(e['trainable_parameters'] / e['parameters'])} | {e['saved_bytes'] / 1e6:.2f} | "
            f"{e['train_seconds']} | {e['wall_seconds']} | {num(e['peak_rss_mb'])}"
        ),
    )


def continual_section(results: Path) -> str:
    about = "Accuracy on the old topics' test articles before and after continuing on the new topics, and on the new."
    header = (
        "continuation | old topics before | old topics after | forgetting | new topics after | "
        "old / new test examples | wall s"
    )
    return keyed_table(
        results,
        "continual",
        heading("Continual learning", "continual", "continual", about),
        header,
        lambda key, e: (
            f"{key} | {pct(e['old_task_before'])} | {pct(e['old_task_after'])} | {pct(e['forgetting'])} | "
            f"{pct(e['new_task_after'])} | {e['old_test_examples']} / {e['new_test_examples']} | {e['wall_seconds']}"
        ),
    )


# --- compression, serving, the API, the peer ------------------------------------------------------------------


def compress_section(results: Path) -> str:
    data = load(results, "compress")
    if not data:
        return ""
    lines = heading("Compression", "compress", "compress")
    for key, e in data.items():
        lines += [
            f"### {key} ({e['test_examples']} test examples; {e['threads']} threads, length {e['seq_len']}, "
            f"{e['rounds']} rounds)",
            "",
        ]
        header = "variant | weights MB | latency b1 ms | throughput b32 /s | speed-up b1 vs fp32 torch | test accuracy"
        rows = [
            f"{name} | {v['weights_mb']} | {v['latency_b1_ms']} | {v['throughput_b32_per_s']} | "
            f"{times(v['speedup_vs_fp32_torch_b1'])} | {pct(v['test_accuracy'])}"
            for name, v in e["variants"].items()
        ]
        pruned = [
            f"{name} | {' '.join(map(str, v['heads_per_layer']))} | {v['macs_ratio']} | {v['latency_ratio']}"
            for name, v in e["variants"].items()
            if "heads_per_layer" in v
        ]
        lines += table(header, rows) + ["", "Head pruning:", ""]
        lines += table("variant | heads per layer | encoder MACs ratio | latency ratio", pruned)
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))
