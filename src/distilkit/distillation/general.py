"""General (task-agnostic) distillation on raw text: TinyBERT's first phase, MiniLM's only phase.

The corpus is plain text (one text per line; blank lines skipped), JSONL or CSV/TSV with a text column, in one
or many files (comma-separated, globs, a folder) or a `save_to_disk` folder. It is never read into memory: the
`datasets` library writes it once to Arrow files that are memory-mapped, and the texts are packed into blocks of
`--max-length` tokens (concatenated, cut, each block wrapped in [CLS] … [SEP]), as BERT's and TinyBERT's
pre-training data are, so no batch carries padding. The teacher is a bare encoder, or a masked-LM model when its
folder holds a trained MLM head: then the MLM logits are distilled per token as well. The packaged MiniLM has no
trained MLM head, so offline runs use intermediate losses only.
"""

from __future__ import annotations

from pathlib import Path

from distilkit.budget import check_disk
from distilkit.errors import DistilkitError
from distilkit.models import resolve_model

# Arrow files written for a corpus, per byte of its text: the texts themselves, then the packed token ids.
CACHE_BYTES_PER_BYTE = 3
MLM_HEAD_PREFIXES = ("cls.predictions.", "lm_head.", "vocab_projector.", "generator_lm_head.")


def has_mlm_head(path: str) -> bool:
    """True when the saved weights include a masked-LM head (not just an encoder)."""
    folder = Path(path)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return False
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            if any(
                k.startswith(MLM_HEAD_PREFIXES) or ".".join(k.split(".")[1:]).startswith(MLM_HEAD_PREFIXES)
                for k in handle.keys()
            ):
                return True
    return False


TEXT_SUFFIXES = (".txt", ".text")
JSON_SUFFIXES = (".jsonl", ".json")
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_KNOWN = (*TEXT_SUFFIXES, *JSON_SUFFIXES, *CSV_SUFFIXES)


def corpus_files(data: str) -> list[Path]:
    """The files of `--data` for general distillation: one file, several (comma-separated; globs allowed), or a
    folder of text/JSONL/CSV files. Every file must exist and share one format."""
    import glob

    files: list[Path] = []
    for part in (p.strip() for p in data.split(",") if p.strip()):
        path = Path(part)
        if any(c in part for c in "*?["):
            matched = sorted(Path(m) for m in glob.glob(part) if Path(m).is_file())
            if not matched:
                raise DistilkitError(f"--data {part}: no file matches this pattern")
            files += matched
        elif path.is_dir():
            inside = sorted(f for f in path.iterdir() if f.is_file() and _suffix(f) in _KNOWN)
            if not inside:
                raise DistilkitError(f"--data {part}: the folder holds no .txt, .jsonl, .csv or .tsv file")
            files += inside
        elif path.is_file():
            files.append(path)
        elif path.exists():  # opening a named pipe waits for a writer, forever if there is none
            raise DistilkitError(
                f"--data {part}: not a regular file (a named pipe, socket or device); save it to a file"
            )
        else:
            raise DistilkitError(f"--data {part}: no such file or folder (general distillation reads raw text)")
    if not files:
        raise DistilkitError("no data given: pass --data with a raw-text corpus (files, a folder or a glob)")
    kinds = {_kind(f) for f in files}
    if len(kinds) > 1:
        raise DistilkitError(f"--data: the corpus mixes formats ({', '.join(sorted(kinds))}); give one format")
    return files


def check_corpus_file(path: Path, chunk: int = 1 << 20) -> bool:
    """Read `path` once, a chunk at a time (a corpus may not fit in memory), and refuse what `datasets` would only
    report as "An error occurred while generating the dataset": bytes that are not UTF-8 (named by line and byte),
    NUL bytes (a binary or UTF-16 file), an unreadable .gz. Returns whether the file holds any non-blank text."""
    import codecs
    import gzip
    import zlib

    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    line, has_text = 1, False
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            while True:
                raw = f.read(chunk)
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as err:
                    at = line + raw[: err.start].count(b"\n")
                    raise DistilkitError(
                        f"--data {path}:{at}: byte 0x{raw[err.start]:02x} is not valid UTF-8; re-save the corpus as "
                        "UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                    ) from None
                if "\x00" in text:
                    at = line + text.count("\n", 0, text.index("\x00"))
                    raise DistilkitError(
                        f"--data {path}:{at}: a NUL byte (a binary or UTF-16 file?); give UTF-8 text, one text per line"
                    )
                has_text = has_text or bool(text.strip())
                line += text.count("\n")
                if not raw:
                    return has_text
    except (OSError, EOFError, zlib.error) as err:
        raise DistilkitError(
            f"--data {path}: cannot read the file ({err}); a .gz must be a complete gzip file"
        ) from None


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s != ".gz"]
    return suffixes[-1] if suffixes else ""


def _kind(path: Path) -> str:
    ext = _suffix(path)
    return "json" if ext in JSON_SUFFIXES else "csv" if ext in CSV_SUFFIXES else "text"


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("dataset_dict.json", "dataset_info.json"))


def check_corpus(data: str, cache_dir: Path) -> None:
    """Refuse a corpus that `datasets` could not read (not UTF-8, NUL bytes, no text at all: named by file, line and
    byte) or whose Arrow files would not fit on the cache disk, from one streaming pass over its files."""
    if is_saved_dataset(Path(data)):
        return
    files = corpus_files(data)
    if not [f for f in files if check_corpus_file(f)]:
        raise DistilkitError(f"--data {data}: the corpus has no text (its files are empty or blank)")
    check_disk(
        CACHE_BYTES_PER_BYTE * sum(f.stat().st_size for f in files),
        cache_dir,
        f"--data {data}: writing the corpus as Arrow files (its texts, then its tokens)",
        "free some space, or point --cache-dir (or DISTILKIT_CACHE) at a larger disk",
    )


def load_corpus(data: str, text_column: str, cache_dir: Path, max_texts: int | None = None, checked: bool = False):
    """The corpus as a `datasets.Dataset` with one `text` column, memory-mapped from Arrow files that `datasets`
    writes once under `cache_dir` (never read into memory whole). A `save_to_disk` folder is used as it is.
    `checked`: `check_corpus` ran already."""
    import datasets

    path = Path(data)
    if not checked:
        check_corpus(data, cache_dir)
    if is_saved_dataset(path):
        corpus, column = datasets.load_from_disk(str(path)), text_column
        if isinstance(corpus, datasets.DatasetDict):
            corpus = corpus["train"] if "train" in corpus else next(iter(corpus.values()))
    else:
        files = corpus_files(data)
        kind = _kind(files[0])
        options = {"sep": CSV_SUFFIXES[_suffix(files[0])]} if kind == "csv" else {}
        column = "text" if kind == "text" else text_column  # the text builder names its one column "text"
        try:
            corpus = datasets.load_dataset(
                kind, data_files=[str(f) for f in files], split="train", cache_dir=str(cache_dir), **options
            )
        except Exception as err:  # datasets' parse errors sit deep in a traceback; say them in one line
            cause = err.__cause__ or err
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
            raise DistilkitError(f"--data {data}: cannot read the corpus ({type(cause).__name__}: {first})") from None
    if column not in corpus.column_names:
        found = ", ".join(corpus.column_names)
        raise DistilkitError(f"--data {data}: no column {column!r}; columns found: {found}; pass --text-column")
    corpus = corpus.select_columns([column])
    if column != "text":
        corpus = corpus.rename_column(column, "text")
    if max_texts and len(corpus) > max_texts:
        corpus = corpus.select(range(max_texts))
    return corpus


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one text ([CLS] … [SEP] for BERT, <s> … </s> for RoBERTa)."""
    core = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello")["input_ids"]
    for start in range(len(full) - len(core) + 1):
        if full[start : start + len(core)] == core:
            return full[:start], full[start + len(core) :]
    return [], []


def _pack_batch(batch, tokenizer, block: int, prefix: list[int], suffix: list[int]):
    """Concatenate a batch of texts' tokens and cut them into blocks of `block` tokens, each wrapped in the
    special tokens; the last, shorter block is kept (padded later)."""
    stream: list[int] = []
    texts = [t for t in batch["text"] if t and t.strip()]
    if not texts:  # the tokenizer refuses an empty list
        return {"input_ids": [], "attention_mask": []}
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:  # long texts are cut below
        stream.extend(ids)
    blocks = [prefix + stream[i : i + block] + suffix for i in range(0, len(stream), block)]
    return {"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks]}


def corpus_tokens(packed) -> int:
    """Tokens in a packed corpus (special tokens included), summed by Arrow without reading rows into Python."""
    import pyarrow.compute as pc

    return int(pc.sum(pc.list_value_length(packed.data.column("input_ids"))).as_py() or 0)


def pack_corpus(corpus, tokenizer, max_length: int, texts_per_batch: int = 1000):
    """Token blocks of `max_length` (special tokens included) from the corpus: no padding inside a batch, no
    text cut short. Written by `datasets.map` to Arrow next to the corpus and memory-mapped; a second run with
    the same corpus, tokenizer and length finds it there."""
    import datasets

    prefix, suffix = special_tokens_around(tokenizer)
    block = max_length - len(prefix) - len(suffix)
    features = datasets.Features(
        {"input_ids": datasets.List(datasets.Value("int32")), "attention_mask": datasets.List(datasets.Value("int8"))}
    )
    return corpus.map(
        _pack_batch,
        batched=True,
        batch_size=texts_per_batch,
        remove_columns=corpus.column_names,
        fn_kwargs=dict(tokenizer=tokenizer, block=block, prefix=prefix, suffix=suffix),
        features=features,
        desc=f"packing into {max_length}-token blocks",
    )


def load_general_teacher(name_or_path: str):
    """(model, tokenizer, uses_mlm) for general distillation."""
    from transformers import AutoModel, AutoModelForMaskedLM

    from distilkit.models import load_tokenizer

    path = resolve_model(name_or_path)
    uses_mlm = has_mlm_head(path)
    auto = AutoModelForMaskedLM if uses_mlm else AutoModel
    try:
        model = auto.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise DistilkitError(f"{path}: cannot load the teacher ({str(err).splitlines()[0]})") from None
    model.eval()
    return model, load_tokenizer(path), uses_mlm, path
