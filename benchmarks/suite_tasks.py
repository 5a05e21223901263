"""The tasks of the benchmark suite (benchmarks/suite.py), built only from data distilkit already ships.

Each task is written once to `benchmarks/runs/suite/data/<task>/{train,dev,test}.jsonl` with fixed splits that do
not depend on any run's seed, and every split keeps whole groups (an article, a Brown document), so no text of a
test document is seen in training. Sizes are capped (`Sizes`) so that the whole suite fits a 2-core CPU:

| task | texts | labels | max length | group |
|---|---|---|---|---|
| `articles` | bbc-news articles (long) | 5 topics | 128 | article |
| `titles` | each article's first line (about 8 words) | 5 topics | 32 | article |
| `genre` | Brown passages of about 100 words | 15 genres (cats.txt) | 128 | document |
| `pairs` | (title, article): does this title belong to it? | 2 | 128 | article |
| `pos` | Brown sentences, universal POS tags | 12 tags | 64 | document |

`titles`, `articles` and `pairs` use the same split of the articles; `genre` and `pos` the same split of the
Brown documents (its 500 files ca01..cr09: the second letter is the genre, as in the corpus's cats.txt).
"""

from __future__ import annotations

import gzip
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from distilkit.data import builtin

SEED = 13  # the splits and samples: fixed, whatever seed a run uses
# Brown's genre letters as cats.txt names them
GENRES = {
    "a": "news",
    "b": "editorial",
    "c": "reviews",
    "d": "religion",
    "e": "hobbies",
    "f": "lore",
    "g": "belles_lettres",
    "h": "government",
    "j": "learned",
    "k": "fiction",
    "l": "mystery",
    "m": "science_fiction",
    "n": "adventure",
    "p": "romance",
    "r": "humor",
}


@dataclass(frozen=True)
class Sizes:
    """At most this many examples per split (a seeded sample; whole groups are never split across splits)."""

    train: int = 1000
    dev: int = 500
    test: int = 500


@dataclass(frozen=True)
class Task:
    name: str
    max_length: int
    kind: str  # sequence-classification, pair or token-classification
    # the demo's 2 epochs, except where the teacher was still far from fitted on dev after them (genre: 30% dev
    # accuracy after 2 epochs): the suite judges students, and a teacher at a third of its reach says little
    teacher_epochs: int = 2


TASKS = {
    t.name: t
    for t in (
        Task("articles", 128, "sequence-classification"),
        Task("titles", 32, "sequence-classification"),
        Task("genre", 128, "sequence-classification", teacher_epochs=5),
        Task("pairs", 128, "pair"),
        Task("pos", 64, "token-classification"),
    )
}


def _group_split(groups_by_label: dict[str, list[str]], rng: random.Random) -> dict[str, str]:
    """Group → split: per label, 10% of its groups to dev and 10% to test (at least one each), the rest to train."""
    where = {}
    for label in sorted(groups_by_label):
        groups = sorted(groups_by_label[label])
        rng.shuffle(groups)
        k = max(1, round(0.1 * len(groups)))
        for i, g in enumerate(groups):
            where[g] = "dev" if i < k else "test" if i < 2 * k else "train"
    return where


def _cap(rows: list[dict], n: int, rng: random.Random) -> list[dict]:
    rows = list(rows)
    rng.shuffle(rows)
    return rows[:n]


def _articles() -> list[dict]:
    """Every bbc-news article (built-in, deduplicated) with its title: the first line of its file."""
    titled = builtin.bbc_news_titled()
    keep = ("text", "title", "label", "group")
    return [{k: r[k] for k in keep} for split in ("train", "dev", "test") for r in titled[split]]


def _article_splits(sizes: Sizes) -> dict[str, list[dict]]:
    rows = _articles()
    rng = random.Random(SEED)
    by_label = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r["group"])
    # articles are plentiful: dev and test get ~20% each here, then every split is capped
    where = {}
    for label in sorted(by_label):
        groups = sorted(by_label[label])
        rng.shuffle(groups)
        k = round(0.2 * len(groups))
        where.update({g: "dev" if i < k else "test" if i < 2 * k else "train" for i, g in enumerate(groups)})
    return {s: _cap([r for r in rows if where[r["group"]] == s], getattr(sizes, s), rng) for s in SPLITS}


SPLITS = ("train", "dev", "test")


def _pairs(articles: list[dict], rng: random.Random) -> list[dict]:
    """One positive (its own title) and one negative per article: half the negatives from the same topic."""
    by_label = defaultdict(list)
    for a in articles:
        by_label[a["label"]].append(a)
    rows = []
    for i, a in enumerate(articles):
        rows.append({"text_a": a["title"], "text_b": a["text"], "label": "match", "group": a["group"]})
        same = i % 2 == 0 and len(by_label[a["label"]]) > 1
        pool = by_label[a["label"]] if same else [b for b in articles if b["label"] != a["label"]]
        other = rng.choice([b for b in pool if b["group"] != a["group"]])
        rows.append({"text_a": other["title"], "text_b": a["text"], "label": "other", "group": a["group"]})
    return rows


def _brown_documents() -> dict[str, list[dict]]:
    """Brown file id (ca01..) → its sentences (tokens and universal tags), in order."""
    docs = defaultdict(list)
    with gzip.open(builtin.ASSETS / "brown_pos.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            docs[item["id"].split("-")[0]].append(item)
    return dict(docs)


def _passages(sentences: list[dict], words: int = 100) -> list[str]:
    """Consecutive sentences joined until a passage has at least `words` tokens."""
    out, current = [], []
    for s in sentences:
        current.extend(s["tokens"])
        if len(current) >= words:
            out.append(" ".join(current))
            current = []
    return out


def _brown_splits(sizes: Sizes) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    docs = _brown_documents()
    by_genre = defaultdict(list)
    for doc in docs:
        by_genre[doc[1]].append(doc)
    where = _group_split(by_genre, random.Random(SEED))
    # each task samples with its own generator: changing one task's data leaves the other's as it was
    genre_rng, pos_rng = random.Random(f"{SEED}-genre"), random.Random(f"{SEED}-pos")
    genre, pos = {}, {}
    for split in SPLITS:
        names = sorted(d for d in docs if where[d] == split)
        passages = [{"text": text, "label": GENRES[d[1]], "group": d} for d in names for text in _passages(docs[d])]
        genre[split] = _cap(passages, getattr(sizes, split), genre_rng)
        sentences = [{"tokens": s["tokens"], "tags": s["tags"], "group": d} for d in names for s in docs[d]]
        pos[split] = _cap(sentences, getattr(sizes, split), pos_rng)
    return genre, pos


def build_all(folder: Path, sizes: Sizes = Sizes()) -> dict[str, dict[str, Path]]:
    """Write every task's splits under `folder/<task>/`; return task → split → file."""
    articles = _article_splits(sizes)
    rng = random.Random(SEED)
    # the pair task has two rows per article: half as many articles per split keeps its size within the caps
    pairs = {s: _pairs(articles[s][: getattr(sizes, s) // 2], rng) for s in SPLITS}
    titles = {s: [{"text": a["title"], "label": a["label"], "group": a["group"]} for a in articles[s]] for s in SPLITS}
    texts = {s: [{"text": a["text"], "label": a["label"], "group": a["group"]} for a in articles[s]] for s in SPLITS}
    genre, pos = _brown_splits(sizes)
    tables = {"articles": texts, "titles": titles, "genre": genre, "pairs": pairs, "pos": pos}
    files: dict[str, dict[str, Path]] = {}
    for task, splits in tables.items():
        files[task] = {}
        for split, rows in splits.items():
            path = folder / task / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            files[task][split] = path
    return files
