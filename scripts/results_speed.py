"""Sections of docs/results.md for the benchmarks of speed and memory: export fusions, general distillation at scale,
teacher cache, augmentation, serving, the API's overhead, the TextBrewer comparison, embedding models against their
peers, data memory, intervals (scripts/results_sections.py lists every section in page order)."""

from __future__ import annotations

from pathlib import Path

from results_format import (
    cell,
    commands,
    compact,
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


def onnx_fusions_section(results: Path) -> str:
    data = load(results, "onnx_fusions")
    if not data:
        return ""
    about = (
        "Each graph change on and off, int8 dynamic, timed against all-mpnet-base-v2 (fp32 PyTorch) in the same"
        " `distilkit bench` runs: the median over runs of each model's p50 latency and speed-up over the teacher."
    )
    lines = heading("What each export change is worth", "onnx_fusions", "onnx-fusions", about)
    rows, other = [], []
    for key, e in data.items():
        nested = "p50_ms" not in next(iter(e["medians"].values()))  # bench-settle: by --settle-ms, then by model
        medians = {f"{s}: {m}": v for s, ms in e["medians"].items() for m, v in ms.items()} if nested else e["medians"]
        for model, median in medians.items():
            runs = e["runs"][model.split(": ")[0]] if nested else e["runs"]
            per_run = each((r[model.split(": ")[-1]]["speedup"] for r in runs), times)
            rows.append(f"{key} | {model} | {median['p50_ms']} | {times(median['speedup'])} | {per_run}")
        known = {"command", "rounds", "runs", "medians", "date", "machine"}
        other += [f"- `{key}` {field}: {compact(value)}" for field, value in e.items() if field not in known]
    lines += table("key | model | median p50 ms | median speed-up | speed-up per run", rows) + [""] + other
    lines += commands((k, e["command"]) for k, e in data.items())
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def grown(entry: dict, field: str, digits: int = 1) -> str:
    return f"{num(entry['median']['1x'][field], digits)} → {num(entry['median']['4x'][field], digits)}"


def general_scale_section(results: Path) -> str:
    data = load(results, "general_scale")
    if not data:
        return ""
    lines = heading("General distillation at scale", "general_scale", "general-scale")
    pairs: list[tuple[str, str]] = []
    for key, e in (item for item in data.items() if "tokens_per_second" in item[1]):
        rows = [f"{p} | {each(t)} | {e['median_tokens_per_second'][p]}" for p, t in e["tokens_per_second"].items()]
        lines += [f"### Throughput (`{key}`, {e['steps']} steps, global batch {e['global_batch']})", ""]
        lines += table("processes | tokens/s per round | median tokens/s", rows)
        lines += [
            "",
            f"Two processes / one: {times(e['speedup_2_processes'])}. Peak RSS MB: "
            f"{compact(e['peak_rss_mb'])}; 4x / 1x {times(e['rss_ratio_4x_to_1x'])}.",
            "",
        ]
        pairs += [(f"{key}, 1 process", e["command_1_process"]), (f"{key}, 2 processes", e["command_2_processes"])]
    header = (
        "key | steps | peak RSS MB 1x → 4x | 4x / 1x | anonymous MB 1x → 4x | 4x / 1x | file-backed MB 1x → 4x | "
        "tokens 1x → 4x"
    )
    memory = [
        f"{key} | {e['steps']} | {grown(e, 'peak_rss_mb')} | {times(e['rss_ratio_4x_to_1x'])} | "
        f"{grown(e, 'peak_anon_mb')} | {times(e['anon_ratio_4x_to_1x'])} | {grown(e, 'peak_file_mb')} | "
        f"{grown(e, 'tokens', 0)}"
        for key, e in data.items()
        if "median" in e
    ]
    lines += ["### Memory, corpus at 1x and 4x (medians of the runs)", ""] + table(header, memory)
    pairs += [(k, e["command"]) for k, e in data.items() if "command" in e]
    return done(lines + commands(pairs) + machines((k, e["machine"]) for k, e in data.items()))


# --- teacher cache, augmentation, PEFT, continual learning ------------------------------------------------------


def distill_cache_section(results: Path) -> str:
    data = load(results, "distill_cache")
    if not data:
        return ""
    lines = heading("Teacher cache", "distill_cache", "distill-cache", "Seconds per epoch, evaluation excluded.")
    for key, e in data.items():
        ratios = {"kd_cached": e["cached_vs_student_only"], "kd_no_cache": e["live_teacher_vs_student_only"]}
        rows = [
            f"{name} | {each(seconds)} | {e['median_epoch_seconds'][name]} | {times(ratios.get(name, 1.0))}"
            for name, seconds in e["epoch_seconds"].items()
        ]
        lines += [f"### {key}", ""] + table("set-up | epoch s | median epoch s | vs. student only", rows)
        lines += ["", f"Building the cache: {e['cache_build_seconds']} s."] + commands(e["commands"].items())
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def augment_speed_section(results: Path) -> str:
    about = "The batched `Augmenter` against the naive one-search-per-word reference in the script, interleaved runs."
    header = "data | augmented examples | naive s | batched s | naive examples/s | batched examples/s | speed-up"
    return keyed_table(
        results,
        "augment_speed",
        heading("Augmentation speed, embedding neighbours", "augment_speed", "augment-speed", about),
        header,
        lambda key, e: (
            f"{key} | {e['augmented_examples']:,} | {each(e['naive_seconds'])} | {each(e['batched_seconds'])} | "
            f"{e['naive_examples_per_second']} | {num(e['batched_examples_per_second'])} | {times(e['speedup'])}"
        ),
    )


def mlm_head_section(results: Path) -> str:
    data = load(results, "mlm_head_at_masks")
    if not data:
        return ""
    about = "The masked-LM head at every position (`all`) against at the masks only (`masks`), interleaved runs."
    lines = heading("Augmentation speed, masked-LM candidates", "mlm_head_at_masks", "mlm-head-at-masks", about)
    header = (
        "model | articles | masked words | threads | all s | masks s | median all / masks s | median speed-up | "
        "same candidates"
    )
    rows = [
        f"{key} | {e['articles']} | {e['masked_words']:,} | {e['threads']} | {each(e['seconds']['all'])} | "
        f"{each(e['seconds']['masks'])} | {e['median_s']['all']} / {e['median_s']['masks']} | "
        f"{times(e['median_speedup'])} | {'yes' if e['same_candidates'] else 'no'}"
        for key, e in data.items()
    ]
    lines += table(header, rows) + [""] + [f"- `{key}`: {cell(e['note'])}" for key, e in data.items() if "note" in e]
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def serve_load_section(results: Path) -> str:
    data = load(results, "serve_load")
    if not data:
        return ""
    lines = heading("Serving load", "serve_load", "serve-load")
    for key, e in data.items():
        alone = e["model_alone"]
        lines += [f"### {key} (`{e['model']}`; {e['texts']} texts of at most {e['max_tokens']} tokens)", ""]
        lines += [
            f"Modes: {', '.join(f'{m} `{args}`' for m, args in e['modes'].items())}. The model alone, ms per"
            f" text at batch {compact(alone['ms_per_text'])}; gain over batch 1 at batch {compact(alone['gain'])}.",
            "",
        ]
        rows = [
            f"{mode} | {c} | {r['requests']} | {r['errors']} | {r['throughput_rps']} | {r['p50_ms']} / {r['p99_ms']} | "
            f"{r['mean_batch']} | {'yes' if r['stopped_by_time_limit'] else 'no'}"
            for mode, by_concurrency in e["results"].items()
            for c, r in by_concurrency.items()
        ]
        lines += table(
            "mode | concurrency | requests | errors | req/s | p50 / p99 ms | mean batch | time limit hit", rows
        )
        lines += ["", f"Throughput, micro-batched / batch size 1, by concurrency: {compact(e['throughput_speedup'])}."]
    lines += commands((k, e["command"]) for k, e in data.items())
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def api_overhead_section(results: Path) -> str:
    data = load(results, "api_overhead")
    if not data:
        return ""
    lines = heading("Your own script vs the CLI", "api_overhead", "api-overhead")
    for key, e in data.items():
        rows = [
            f"{method} | {each(m['cli_samples_per_second'])} | {each(m['script_samples_per_second'])} | "
            f"{m['median_ratio_script_over_cli']} | {'yes' if m['within_5_percent'] else 'no'}"
            for method, m in e["methods"].items()
        ]
        lines += [f"### {key}: {e['job']} ({e['rounds']} rounds)", ""]
        lines += table("method | CLI samples/s | script samples/s | median script / CLI | within 5%", rows)
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def peer_section(results: Path) -> str:
    data = load(results, "peer_textbrewer")
    if not data:
        return ""
    about = (
        "Medians over one run per training seed; samples/s = training examples × epochs / training wall time"
        " (distilkit's includes building its teacher cache; also given without it, and over the epochs alone)."
    )
    lines = heading("Peer comparison: TextBrewer", "peer_textbrewer", "peer-textbrewer", about)
    ratios = {"distilkit": "ratio_samples_per_second", "distilkit-fp32": "ratio_samples_per_second_fp32"}
    rows, pairs, versions = [], [], {}
    for key, e in data.items():
        for tool, m in e["median"].items():
            seeds = each(e["runs"][tool], lambda r: f"{r['train_seed']}: {pct(r['test_accuracy'])}")
            rows.append(
                f"{key} | {tool} | {m['samples_per_second']} | {m.get('samples_per_second_without_cache', '–')} | "
                f"{m['samples_per_second_epochs']} | {times(e[ratios[tool]]) if tool in ratios else ''} | "
                f"{pct(m['test_accuracy'])} | {seeds} | {pct(m['test_accuracy_mean'])} | {m['wall_seconds']}"
            )
        pairs += [(f"{key}, {tool}", command) for tool, command in e["commands"].items()]
        versions |= e["versions"]
    header = (
        "setting | tool | samples/s | without cache | epochs only | vs TextBrewer | test accuracy | per seed | mean | "
        "training s"
    )
    lines += table(header, rows) + ["", f"Versions: {'; '.join(f'{t}: {compact(v)}' for t, v in versions.items())}."]
    return done(lines + commands(pairs, collapsed=True) + machines((k, e["machine"]) for k, e in data.items()))


def embeddings_section(results: Path) -> str:
    data = load(results, "embeddings")
    if not data:
        return ""
    about = (
        "Embedding students of one teacher against sentence-transformers' distillation recipe at the same shape and"
        " budget and against model2vec: nDCG@10 on bbc-news test titles → all article bodies, each model paired with"
        " the teacher on the same queries (scores × 100, 95% interval over queries), and speed in interleaved rounds"
        " on the same threads (batch-1 latency over test titles, texts/s at batch 32 over test articles; ratios to"
        " the teacher in torch). Training samples/s = texts × epochs / training wall seconds (the teacher's"
        " embeddings included)."
    )
    lines = heading("Embedding models against the peers", "embeddings", "embeddings", about)
    for teacher, e in data.items():
        s = e["settings"]
        lines += [
            f"### Teacher {teacher}: {s['texts']:,} training texts, {s['epochs']:g} epoch(s), every model scored at"
            f" {s['eval_max_length']} tokens",
            "",
        ]
        rows = []
        for name, q in e["quality"].items():
            model = e["models"][name.rsplit(" (", 1)[0]]
            speed = e.get("speed", {}).get(name, {})
            vs = q.get("vs_teacher", {})
            rows.append(
                [
                    name,
                    f"{100 * q['ndcg@10']:.2f} {interval(q['intervals']['ndcg@10'])}",
                    f"{pct(q.get('retention', 1))} {interval(vs.get('interval'), signed=True)}",
                    f"{100 * q['mrr@10']:.2f}",
                    f"{100 * q['recall@10']:.2f}",
                    f"{num(speed.get('batch1_ms'), 2)} ({times(speed.get('batch1_speedup'))})",
                    f"{num(speed.get('texts_per_second_batch32'))} ({times(speed.get('throughput_speedup'))})",
                    trained(model) if name.endswith("(torch)") else "",
                ]
            )
        header = (
            "model (form) | nDCG@10 [95%] | retention [paired difference, pt] | MRR@10 | recall@10 | batch-1 ms"
            " (vs teacher) | texts/s batch 32 (vs teacher) | training samples/s"
        )
        lines += table(header, rows)
        for name, q in e["quality"].items():
            if "vs_sentence_transformers" in q:
                d = q["vs_sentence_transformers"]
                lines += [
                    "",
                    f"{name} − sentence-transformers at the same shape: nDCG@10 {pt(d['difference'])}"
                    f" {interval(d.get('interval'), signed=True)} ({'' if d['significant'] else 'not '}significant).",
                ]
        lines += ["", "Not run: " + "; ".join(f"{k}: {v}" for k, v in e["not_run"].items()) + "."]
        lines += commands(
            (f"student {n.split(' ', 1)[1]}", m["command"]) for n, m in e["models"].items() if "command" in m
        )
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def trained(model: dict) -> str:
    """Training samples/s, and over how many texts when the results say."""
    texts = model.get("train_texts")
    return num(model.get("samples_per_second")) + (f" ({texts:,} texts)" if texts else "")


# --- data memory and interval speed ----------------------------------------------------------------------------


def data_memory_section(results: Path) -> str:
    data = load(results, "data_memory")
    if not data:
        return ""
    about = "Peak memory of `distilkit finetune` of a tiny model on generated Parquet rows, one epoch."
    lines = heading("Data memory", "data_memory", "data-memory", about)
    rows = [
        f"{key} | {r['rows']:,} | {r['parquet_mb']} | {r['peak_rss_mb']} | {r['peak_anon_mb']} | {r['seconds']}"
        for key, e in data.items()
        for r in e["runs"]
    ]
    ratios = [f"`{key}`: RSS {times(e['rss_ratio'])}, anonymous {times(e['anon_ratio'])}" for key, e in data.items()]
    lines += table("label | rows | Parquet MB | peak RSS MB | peak anonymous MB | seconds", rows)
    lines += ["", "Largest over smallest: " + "; ".join(ratios) + "."]
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))


def intervals_speed_section(results: Path) -> str:
    data = load(results, "intervals_speed")
    if not data:
        return ""
    lines = heading("Interval speed", "intervals_speed", "intervals-speed", "Seconds, best of 3 calls.")
    sizes = each(dict.fromkeys(f"{e['examples']:,} examples, {e['resamples']:,} resamples" for e in data.values()))
    measures = dict.fromkeys(m for e in data.values() for m in e["seconds"])
    rows = [[m, *(e["seconds"].get(m, "–") for e in data.values())] for m in measures]
    lines += [sizes + ":", ""] + table(" | ".join(["measure", *data]), rows)
    return done(lines + machines((k, e["machine"]) for k, e in data.items()))
