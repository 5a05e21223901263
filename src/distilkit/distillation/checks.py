"""Checks that stop a distillation run before it wastes hours, each with a one-line error and the fix.

- the teacher must be fine-tuned: TinyBERT users distilled from a raw BERT and got chance-level students;
- teachers must share one label set; student and teacher must share a tokenizer (unless asked otherwise);
- the attention loss needs equal head counts (MiniLM relations do not).
"""

from __future__ import annotations

import numpy as np

from distilkit.data.encode import collator_for, encode_rows
from distilkit.errors import DistilkitError
from distilkit.evaluation.evaluate import predictions_and_labels
from distilkit.evaluation.metrics import task_metrics
from distilkit.inference.loading import run_batches

MAX_CHECK_EXAMPLES = 512


def check_same_labels(teachers) -> None:
    first = teachers[0]
    for other in teachers[1:]:
        if other.task != first.task or other.labels != first.labels or other.regression != first.regression:
            raise DistilkitError(
                f"teachers disagree: {first.path} is {first.task} with labels {first.labels}, {other.path} is "
                f"{other.task} with labels {other.labels}; multi-teacher KD needs one task and label set"
            )


def same_tokenizer(a, b) -> bool:
    if a.get_vocab() != b.get_vocab():
        return False
    probe = "Distillation keeps 97% of BERT's accuracy, 2x faster!"
    return a(probe)["input_ids"] == b(probe)["input_ids"]


def check_tokenizers(teacher_tokenizer, student_tokenizer, separate_allowed: bool, logits_only: bool, task: str):
    if same_tokenizer(teacher_tokenizer, student_tokenizer):
        return False
    if not separate_allowed:
        raise DistilkitError(
            "the student's tokenizer differs from the teacher's; intermediate losses need identical tokens — "
            "use a student built from the teacher (a size spec or layers:...), or pass --separate-tokenization "
            "for logit-only KD (--method kd)"
        )
    if not logits_only or task != "sequence-classification":
        raise DistilkitError(
            "--separate-tokenization works only for logit KD (losses ce and kd) on sequence classification; "
            "token-level and intermediate losses need the same tokens in teacher and student"
        )
    return True


def check_heads(student, teacher, uses_attention_loss: bool) -> None:
    if not uses_attention_loss:
        return
    s, t = student.config.num_attention_heads, teacher.config.num_attention_heads
    if s != t:
        raise DistilkitError(
            f"attention_mse compares attention maps head by head, but the student has {s} heads and the teacher "
            f"{t}; give the student {t} heads (e.g. 4L-312H-{t}A-1200F) or use minilm_relations (--method minilm), "
            "which works with any head counts"
        )


def teacher_quality(trained, rows: list[dict], data, max_length: int, batch_size: int = 64) -> dict:
    """Teacher metrics on up to 512 rows spread evenly over `rows`, with the chance level (majority class share).
    Spread, not the first 512: in a file sorted by label those would all be one class, chance 100%, and a trained
    teacher would look untrained. Only those rows are tokenized: the check runs before the whole set is augmented
    and tokenized, so a refusal comes at once."""
    label2id = {name: i for i, name in enumerate(data.labels)}
    rows = rows[:: -(-len(rows) // MAX_CHECK_EXAMPLES) or 1]
    dataset, _ = encode_rows(
        rows, data.task, trained.tokenizer, max_length, label2id, data.regression, check_unknown=False
    )
    if "word_ids" in dataset.column_names:
        dataset = dataset.remove_columns("word_ids")
    logits = run_batches(trained.model, dataset, collator_for(data.task, trained.tokenizer), batch_size)
    preds, labels = predictions_and_labels(logits, dataset, data.task, trained.regression)
    metrics = task_metrics(data.task, trained.regression, trained.labels, preds, labels, data.is_bio)
    if not trained.regression:
        gold = np.asarray(labels).reshape(-1)
        gold = gold[gold != -100]
        metrics["chance"] = float(np.bincount(gold).max() / len(gold)) if len(gold) else 0.0
    return metrics


def check_teacher_trained(trained, metrics: dict, split: str, force: bool) -> str | None:
    """Refuse a teacher whose score is within 10% of chance (of the way from chance to perfect)."""
    if trained.regression:
        score, chance, looks_untrained = metrics.get("pearson", 0.0), 0.0, not abs(metrics.get("pearson") or 0) >= 0.2
        what = f"Pearson r {score:.2f}"
    else:
        score, chance = metrics["accuracy"], metrics["chance"]
        looks_untrained = score <= chance + 0.1 * (1 - chance)
        what = f"accuracy {100 * score:.1f}% (chance: {100 * chance:.1f}%)"
    if not looks_untrained:
        return None
    message = (
        f"teacher {trained.path} looks untrained: {split} {what}; fine-tune it first "
        "(distilkit finetune --model ... --data ...) or pass --force to distil from it anyway"
    )
    if not force:
        raise DistilkitError(message)
    return message
