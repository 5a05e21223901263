"""`distilkit report`: one page that says which model to ship, as self-contained HTML and as Markdown.

Inputs are what a pipeline run folder holds: eval/<model>.json (test metrics), bench.json (size, latency,
FLOPs), and the TensorBoard logs of the training runs. The recommendation is the fastest model (batch-1 p50)
that keeps at least --min-retention of the teacher's score: by default judged on the lower end of the retention's
95% interval, from the paired comparison with the teacher on the same test examples (--retention-rule point: the
point estimate). The verdict says whether the chosen model is distinguishable from the teacher.

When bench flagged its timings as untrustworthy (a busy machine, or p95 far above p50; see evaluation/bench.py),
the verdict claims no speed-up and says why, a caveat names each problem, and the flagged cells are starred.
A bench.json from before those flags is judged by the spread rule alone, which its p50 and p95 allow.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from distilkit.console import show
from distilkit.errors import DistilkitError
from distilkit.evaluation.bench import SPREAD_LIMIT, spread_warning
from distilkit.evaluation.intervals import describe, retention_lower
from distilkit.evaluation.metrics import headline, plot_confusion_matrix
from distilkit.evaluation.options import ReportConfig
from distilkit.files import check_writable_folder, listing, mark, marker_kind, record_files, write_atomic
from distilkit.runs import make_folder

COLUMNS = ["model", "score", "retention", "params", "size MB", "p50 ms", "p95 ms", "ex/s", "speed-up", "FLOPs speed-up"]


def _metric_name(evaluation: dict) -> str:
    if "ndcg@10" in evaluation:  # an embedding model, ranked by retrieval (pipeline/embedding.py)
        return "ndcg@10"
    if "mse" in evaluation:
        return "mse"
    return "f1" if "entity" in evaluation else "accuracy"


def collect(run: Path) -> tuple[list[dict], str]:
    """One row per model, in the bench order (teacher first), with score, retention and speed columns."""
    bench_file, eval_dir = run / "bench.json", run / "eval"
    if not bench_file.exists() or not eval_dir.is_dir():
        raise DistilkitError(
            f"{run}: not a finished pipeline run (needs bench.json and eval/); run distilkit run RECIPE.yaml first"
        )
    bench = json.loads(bench_file.read_text())
    rows, metric = [], None
    for b in bench["models"]:
        eval_file = eval_dir / f"{b['model']}.json"
        if not eval_file.exists():
            raise DistilkitError(f"{eval_file}: missing; rerun the pipeline's evaluate stage")
        evaluation = json.loads(eval_file.read_text())
        metric = metric or _metric_name(evaluation)
        score = headline(evaluation, metric)
        rows.append({**b, "score": score, "evaluation": evaluation, "run": str(run)})
    teacher = rows[0]["score"]
    for r in rows:
        r["retention"] = (teacher / r["score"] if metric == "mse" else r["score"] / teacher) if teacher else None
        r["interval"] = (r["evaluation"].get("intervals") or {}).get(metric)
        r["paired"] = r["evaluation"].get("paired") if r is not rows[0] else None  # vs this run's teacher
        r["retention_low"] = 1.0 if r is rows[0] else retention_lower(r["paired"] or {}, teacher, metric)
    return rows, metric


def judged_retention(row: dict, rule: str) -> float | None:
    """The retention --min-retention is compared with: the lower end of its interval (rule "lower", where the row
    has a paired comparison with the teacher), else the point estimate."""
    low = row.get("retention_low")
    return low if rule == "lower" and low is not None else row["retention"]


def recommend(rows: list[dict], min_retention: float, rule: str = "point") -> dict:
    good = [r for r in rows if (judged_retention(r, rule) or 0) >= min_retention]
    return min(good, key=lambda r: r["latency_p50_ms"]) if good else max(rows, key=lambda r: r["retention"] or 0)


def timing_warnings(row: dict) -> list[str]:
    """Why a row's timings cannot be trusted (empty when they can)."""
    if "warnings" in row:
        return row["warnings"]
    spread = spread_warning(row["latency_p50_ms"], row["latency_p95_ms"])  # bench.json older than the flags
    return [spread] if spread else []


def timing_caveat(rows: list[dict]) -> tuple[str, str] | None:
    """(short reason for the verdict, full caveat) when any row's timings are flagged, else None.

    Any flagged row is enough: the recommendation weighs every model's latency against the others'.
    """
    machine, wide, full = [], [], []
    for r in rows:
        spread = spread_warning(r["latency_p50_ms"], r["latency_p95_ms"])
        for w in timing_warnings(r):
            if w == spread:
                wide.append(r["model"])
                full.append(f"{r['model']}: {w}")
            elif w not in machine:  # a busy machine is reported on every row of its bench
                machine.append(w)
    if not machine and not wide:
        return None
    short = ["other processes were busy on the machine while it was measured"] if machine else []
    short += [f"p95 latency was over {SPREAD_LIMIT:g}x p50 for {', '.join(wide)}"] if wide else []
    return " and ".join(short), (
        "Timings not trustworthy (starred in the table): "
        + "; ".join(machine + full)
        + ". Rerun distilkit bench on an idle machine before choosing a model by speed."
    )


def table_rows(rows: list[dict]) -> list[list[str]]:
    """Table cells; the timings of a flagged row, and every speed-up when the baseline (first row) is flagged,
    carry a star."""
    base_flagged = bool(rows and timing_warnings(rows[0]))
    out = []
    for r in rows:
        star = " *" if timing_warnings(r) else ""
        speed_star = " *" if star or base_flagged else ""
        out.append(
            [
                r["model"],
                f"{r['score']:.4f}" + (f" [{r['interval'][0]:.3f}, {r['interval'][1]:.3f}]" if has_interval(r) else ""),
                f"{100 * r['retention']:.1f}%",
                f"{r['parameters'] / 1e6:.1f}M",
                f"{r['size_mb']:.1f}",
                f"{r['latency_p50_ms']:.1f}{star}",
                f"{r['latency_p95_ms']:.1f}{star}",
                f"{r['throughput_per_s']:.0f}{star}",
                f"{r['speedup']:.2f}x{speed_star}",
                f"{r.get('speedup_flops', 0):.2f}x",
            ]
        )
    return out


def has_interval(row: dict) -> bool:
    bounds = row.get("interval") or [None, None]
    return bounds[0] is not None and bounds[1] is not None


def markdown_table(rows: list[dict], metric: str) -> str:
    header = [c if c != "score" else metric for c in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines)


def against_teacher(rows: list[dict], best: dict, rule: str) -> str:
    """What the chosen model's paired comparison with the teacher says, and how --min-retention was judged."""
    if best is rows[0]:
        return ""
    if best.get("paired") is None:
        return " (--min-retention judged on the point estimate: no paired comparison with the teacher.)"
    low = best.get("retention_low")
    judged = (
        f"at least {100 * low:.1f}% at 95%, the lower end that --min-retention was judged on"
        if rule == "lower" and low is not None
        else "--min-retention judged on the point estimate"
    )
    paired = best["paired"]
    word = "measurably worse than" if paired["significant"] and paired["difference"] < 0 else "not distinguishable from"
    if paired["significant"] and paired["difference"] > 0:
        word = "measurably better than"
    return f" Retention {judged}. On the same test examples it is {word} the teacher: {describe(paired)}."


def verdict_text(
    rows: list[dict], best: dict, metric: str, min_retention: float, rule: str = "point"
) -> tuple[str, str | None]:
    """The recommendation and, when timings are flagged, the caveat shown under it (else None).

    With flagged timings the verdict still names the model that scores well enough and is fastest as measured,
    but quotes neither its latency nor a speed-up: those numbers are what the flags put in doubt.
    """
    caveat = timing_caveat(rows)
    full = caveat[1] if caveat else None
    if (judged_retention(best, rule) or 0) < min_retention:
        how = "at the lower end of its 95% interval" if rule == "lower" else "as a point estimate"
        return (
            f"No model keeps {100 * min_retention:.0f}% of the teacher's {metric} {how}; the best is "
            f"{best['model']} ({100 * best['retention']:.1f}%).",
            full,
        )
    bounds = f" [{best['interval'][0]:.4f}, {best['interval'][1]:.4f}]" if has_interval(best) else ""
    kept = f"{metric} {best['score']:.4f}{bounds} ({100 * best['retention']:.1f}% of the teacher)"
    after = against_teacher(rows, best, rule)
    if caveat is None:
        return (
            f"Ship **{best['model']}**: {kept}, {best['latency_p50_ms']:.1f} ms at batch 1 "
            f"({best['speedup']:.1f}x faster), {best['size_mb']:.1f} MB.{after}"
        ), None
    return (
        f"Ship **{best['model']}**, provisionally: {kept}, {best['size_mb']:.1f} MB. Its speed-up could not be "
        f"measured reliably — {caveat[0]} — so none is claimed.{after}"
    ), full


def final_table(run: Path) -> str:
    """The table printed at the end of `distilkit run`, with the timing caveat under it when there is one."""
    rows, metric = collect(Path(run))
    caveat = timing_caveat(rows)
    return markdown_table(rows, metric) + (f"\n\n* {caveat[1]}" if caveat else "")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_plot(rows: list[dict], metric: str, best: dict, path: Path) -> None:
    """Score against batch-1 latency; the Pareto front (nothing both faster and better) is joined by a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs, ys = [r["latency_p50_ms"] for r in rows], [r["score"] for r in rows]
    higher = metric != "mse"
    front = [
        r
        for r in rows
        if not any(
            o["latency_p50_ms"] <= r["latency_p50_ms"]
            and (o["score"] > r["score"] if higher else o["score"] < r["score"])
            for o in rows
        )
    ]
    front.sort(key=lambda r: r["latency_p50_ms"])
    ax.plot(
        [r["latency_p50_ms"] for r in front],
        [r["score"] for r in front],
        "-",
        color="#9ecae1",
        zorder=1,
        label="Pareto front",
    )
    colors = ["#d62728" if r is best else ("#1f77b4" if r in front else "#7f7f7f") for r in rows]
    ax.scatter(xs, ys, c=colors, s=[90 if r is best else 45 for r in rows], zorder=2)
    for r in rows:
        ax.annotate(
            r["model"], (r["latency_p50_ms"], r["score"]), textcoords="offset points", xytext=(6, 4), fontsize=8
        )
    ax.set_xscale("log")
    from matplotlib.ticker import FormatStrFormatter

    for axis_format in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):  # "4", "6", "10", not "4×10⁰"
        axis_format(FormatStrFormatter("%g"))
    ax.set_xlabel("latency, batch 1, p50 (ms, log scale)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{metric} against latency (red: recommended)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def size_speed_plot(rows: list[dict], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.6))
    names = [r["model"] for r in rows][::-1]
    axes[0].barh(names, [r["size_mb"] for r in rows][::-1], color="#6baed6")
    axes[0].set_xlabel("weights on disk (MB)")
    axes[1].barh(names, [r["speedup"] for r in rows][::-1], color="#74c476", label="measured")
    axes[1].scatter(
        [r.get("speedup_flops", np.nan) for r in rows][::-1],
        names,
        color="black",
        marker="|",
        s=200,
        label="from FLOPs",
        zorder=3,
    )
    axes[1].set_xlabel("speed-up over the teacher, batch 1")
    axes[1].legend(fontsize=8, loc="lower right")
    axes[1].set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(run: Path, path: Path) -> bool:
    """Training loss and dev score over steps for every training run in the folder (TensorBoard logs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = []
    for log in sorted(run.glob("**/logs/**/events.out.tfevents.*")):
        acc = EventAccumulator(str(log))
        acc.Reload()
        tags = acc.Tags().get("scalars", [])
        name = str(log.parent.relative_to(run)).replace("/logs", "")
        loss = [(e.step, e.value) for e in acc.Scalars("train/loss")] if "train/loss" in tags else []
        dev_tag = next((t for t in ("eval/accuracy", "eval/entity_f1", "eval/f1", "eval/mse") if t in tags), None)
        dev = [(e.step, e.value) for e in acc.Scalars(dev_tag)] if dev_tag else []
        if loss:
            curves.append((name, loss, dev, dev_tag))
    if not curves:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, loss, dev, tag in curves:
        axes[0].plot(*zip(*loss), label=name)
        if dev:
            axes[1].plot(*zip(*dev), marker="o", label=f"{name} ({tag.split('/')[-1]})")
    axes[0].set(title="training loss", xlabel="step")
    axes[1].set(title="dev score per evaluation", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def report(cfg: ReportConfig, resolved: dict | None = None, *, quiet: bool = False) -> Path:
    if not cfg.runs:
        raise DistilkitError("no run folders given: distilkit report RUN [RUN ...]")
    rows, metric = [], None
    for run in cfg.runs:
        more, metric = collect(Path(run))
        rows += more if not rows else more[1:]  # one teacher: the first run's
    if len(cfg.runs) > 1:  # retention against the first run's teacher: no paired comparison with that one
        for r in rows:
            r["retention"] = r["score"] / rows[0]["score"] if metric != "mse" else rows[0]["score"] / r["score"]
            if r is not rows[0]:
                r["paired"] = r["retention_low"] = None
    out = Path(cfg.output or cfg.runs[0])
    if cfg.output:  # a folder of its own: new, empty or distilkit's (by default the first pipeline folder)
        check_writable_folder(out, "report")
        make_folder(out)
        if marker_kind(out) is None:
            mark(out, "report")
    before = set(listing(out))
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    best = recommend(rows, cfg.min_retention, cfg.retention_rule)
    pareto_plot(rows, metric, best, plots / "pareto.png")
    size_speed_plot(rows, plots / "size_speed.png")
    figures = [("Accuracy against latency", plots / "pareto.png"), ("Size and speed-up", plots / "size_speed.png")]
    if training_curves(Path(cfg.runs[0]), plots / "training.png"):
        figures.append(("Training curves", plots / "training.png"))
    for r in (rows[0], best):
        if "confusion_matrix" in r["evaluation"] and len(r["evaluation"]["confusion_matrix"]["labels"]) <= 30:
            target = plots / f"confusion_{r['model'].replace(' ', '_')}.png"
            plot_confusion_matrix(r["evaluation"], target, title=f"{r['model']} (test)")
            if (f"Confusion matrix: {r['model']}", target) not in figures:
                figures.append((f"Confusion matrix: {r['model']}", target))
    verdict, caveat = verdict_text(rows, best, metric, cfg.min_retention, cfg.retention_rule)
    bench = json.loads((Path(cfg.runs[0]) / "bench.json").read_text())
    setup = (
        f"Test split of the run's data; latency at batch 1 and throughput at batch {bench['batch_size']} on "
        f"{bench['inputs']} inputs (mean length {bench['seq_len']}), {bench['threads']} threads, "
        f"{bench['rounds']} interleaved rounds, medians."
    )
    md = [f"# distilkit report: {', '.join(Path(r).name for r in cfg.runs)}", "", verdict, ""]
    md += [f"> **Caveat.** {caveat}", ""] if caveat else []
    md += [setup, "", markdown_table(rows, metric), ""]
    md += [f"## {title}\n\n![{title}](plots/{p.name})\n" for title, p in figures]
    write_atomic(out / "report.md", "\n".join(md))
    page = render_html(rows, metric, verdict, caveat, setup, figures, cfg.runs, best)
    write_atomic(out / "report.html", page)
    record_files(out, new_since=before)
    if not quiet:
        show(markdown_table(rows, metric))
        show(f"\n{verdict.replace('**', '')}" + (f"\nwarning: {caveat}" if caveat else ""))
        show(f"written: {out / 'report.html'}, {out / 'report.md'}")
    return out


def render_html(rows, metric, verdict, caveat, setup, figures, runs, best) -> str:
    head = "".join(f"<th>{html.escape(c if c != 'score' else metric)}</th>" for c in COLUMNS)
    body = ""
    for r, cells in zip(rows, table_rows(rows)):
        cls = ' class="best"' if r is best else ""
        body += f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>\n"
    verdict_html = html.escape(verdict).replace("**", "")
    caveat_html = f'<p class="caveat" id="timing-caveat">{html.escape(caveat)}</p>' if caveat else ""
    figs = "".join(f"<section><h2>{html.escape(t)}</h2>{_img(p)}</section>" for t, p in figures)
    title = html.escape(", ".join(Path(r).name for r in runs))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>distilkit report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
.verdict {{ background: #eef6ee; border-left: 6px solid #2ca02c; padding: .8rem 1rem; font-size: 1.15rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: .92rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.best td {{ background: #fff3e0; font-weight: 600; }}
.caveat {{ background: #fff4e0; border-left: 6px solid #e6550d; padding: .6rem 1rem; }}
img {{ max-width: 100%; }} .setup {{ color: #555; }}
</style></head><body>
<h1>distilkit report: {title}</h1>
<p class="verdict" id="verdict">{verdict_html}</p>
{caveat_html}
<p class="setup">{html.escape(setup)}</p>
<table id="models"><thead><tr>{head}</tr></thead><tbody>
{body}</tbody></table>
{figs}
</body></html>
"""
