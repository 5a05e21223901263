"""The "Speed" section of a model card: what `bench` measured, added to the cards of the models a pipeline
(`distilkit run`) benchmarked, once its bench stage has run.

Cards are written when their folder is (cards.write_card); speed is measured later, of several models side by side
on one machine, so the section is added to the card afterwards, replacing an earlier one, and only to cards distilkit
wrote (tagged `distilkit`). The numbers are the machine's: the section names the CPU, the threads and the inputs.
"""

from __future__ import annotations

import platform
from pathlib import Path

from distilkit.files import write_atomic
from distilkit.hub.cards import CARD_FILE, TAG, load_card
from distilkit.runs import model_folder_of

SPEED = "## Speed"
BEFORE = "## How to use"  # the section goes just above this one


def card_file(folder: Path) -> Path:
    """A model's card: in a run folder's model/, else in the (model, ONNX or int8) folder itself."""
    return model_folder_of(folder) / CARD_FILE


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "an unknown CPU"


def speed_lines(row: dict, result: dict, baseline: str, cpu: str) -> list[str]:
    """The section's lines for one model (`row` of bench's result) against the first model benched (`baseline`)."""
    lines = [
        f"Batch-1 latency: {row['latency_p50_ms']:.2f} ms median, {row['latency_p95_ms']:.2f} ms p95",
        f"Throughput: {row['throughput_per_s']:,.1f} examples/s at batch {result['batch_size']}",
    ]
    if row.get("peak_memory_mb"):
        lines.append(f"Peak memory while predicting: {row['peak_memory_mb']:,.0f} MB")
    if row["model"] != baseline:
        lines.append(f"{row['speedup']:.2f}x the batch-1 speed of `{baseline}`, measured beside it")
    lines.append(
        f"Measured by `distilkit bench` ({row['backend']}, {row['precision']}) on {cpu} with {result['threads']} "
        f"threads: {result['rounds']} interleaved rounds, {result['inputs']} inputs of {result['seq_len']} tokens "
        "on average. Expect other numbers on another machine."
    )
    if not row.get("trustworthy", True):
        lines.append("Warning: other work was running while this was measured; these timings may be too slow.")
    return lines


def with_section(content: str, lines: list[str]) -> str:
    """`content` (a whole card) with its Speed section replaced by, or given, `lines`."""
    section = f"{SPEED}\n\n" + "\n".join(f"- {x}" for x in lines) + "\n\n"
    start = content.find(f"\n{SPEED}\n")
    if start >= 0:
        end = content.find("\n## ", start + 1)
        return content[: start + 1] + section + (content[end + 1 :] if end >= 0 else "")
    at = content.find(f"\n{BEFORE}\n")
    if at < 0:
        return content.rstrip("\n") + "\n\n" + section
    return content[: at + 1] + section + content[at + 1 :]


def add_speed(folder: Path, row: dict, result: dict, baseline: str, cpu: str | None = None) -> bool:
    """Add bench's numbers for `folder` to its card; False (nothing written) where it has no card of distilkit's."""
    path = card_file(Path(folder))
    card = load_card(path)
    if card is None or TAG not in (card.data.to_dict().get("tags") or []):
        return False
    write_atomic(path, with_section(card.content, speed_lines(row, result, baseline, cpu or cpu_name())))
    return True
