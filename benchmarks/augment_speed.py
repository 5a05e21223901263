"""Benchmark: batched augmentation (`distilkit augment`) vs a naive one-lookup-per-word reference.

    python benchmarks/augment_speed.py [--articles 300] [--words 60] [--copies 4] [--repeats 3]

Both implementations do the same job on the same sentences (BBC News, first N words of each article, the
packaged MiniLM-L6 embeddings, p = 0.4, K = 15): replace each eligible word with one of its nearest
neighbours in the input-embedding matrix. The naive reference is what TinyBERT's script does, with the
neighbour search in place of its per-word forward pass: one search per word per sentence copy. Runs are
interleaved (naive, batched, naive, batched, ...); medians are reported. Writes
benchmarks/results/augment_speed.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from common import save

from distilkit.data import builtin
from distilkit.distillation.augment import load_augment_model
from distilkit.distillation.augmentation import Augmenter, eligible


def naive_augment(sentences, copies, model, tokenizer, p=0.4, top_k=15, seed=42):
    """Reference: for every word of every copy, one tokenization + one similarity search + one top-k."""
    rng = random.Random(seed)
    embeddings = torch.nn.functional.normalize(model.get_input_embeddings().weight.detach().float(), dim=-1)
    vocab = tokenizer.get_vocab()
    id_to_token = {i: t for t, i in vocab.items()}
    out = []
    for words in sentences:
        for _ in range(copies):
            new = list(words)
            for w, word in enumerate(words):
                if not (eligible(word) and rng.random() < p):
                    continue
                ids = tokenizer(word.lower(), add_special_tokens=False)["input_ids"]
                vector = torch.nn.functional.normalize(embeddings[ids].mean(0), dim=-1)
                top = (embeddings @ vector).topk(top_k * 3).indices.tolist()
                options = [id_to_token[i] for i in top if id_to_token[i].isalpha() and id_to_token[i] != word.lower()]
                if options:
                    new[w] = rng.choice(options[:top_k])
            out.append(new)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = builtin.load("bbc-news")["train"][: args.articles]
    sentences = [r["text"].split()[: args.words] for r in rows]
    model, tokenizer, _ = load_augment_model("minilm-l6")
    n_examples = len(sentences) * args.copies
    times = {"naive": [], "batched": []}
    for _ in range(args.repeats):
        started = time.perf_counter()
        naive_augment(sentences, args.copies, model, tokenizer)
        times["naive"].append(time.perf_counter() - started)
        started = time.perf_counter()
        Augmenter(model, tokenizer, p=0.4, top_k=15, seed=42).augment_sentences(sentences, args.copies)  # fresh cache
        times["batched"].append(time.perf_counter() - started)
    naive, batched = statistics.median(times["naive"]), statistics.median(times["batched"])
    result = {
        "command": "python benchmarks/augment_speed.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "augmented_examples": n_examples,
        "naive_seconds": [round(t, 3) for t in times["naive"]],
        "batched_seconds": [round(t, 3) for t in times["batched"]],
        "naive_examples_per_second": round(n_examples / naive, 1),
        "batched_examples_per_second": round(n_examples / batched, 1),
        "speedup": round(naive / batched, 1),
    }
    path = save("augment_speed", "bbc-news", result)
    print(f"naive   {result['naive_examples_per_second']:>8} examples/s (median of {args.repeats})")
    print(f"batched {result['batched_examples_per_second']:>8} examples/s")
    print(f"speed-up {result['speedup']}x   → {path}")


if __name__ == "__main__":
    main()
