"""Readers for the file formats distilkit accepts: CSV, TSV, JSONL, CoNLL and `save_to_disk` folders.

Each reader returns a list of plain dict rows; every row carries `_where` ("file:line") so that later checks
(empty text, unknown label) can name the exact place to fix. Decoding errors name the line too.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from distilkit.errors import DistilkitError

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".conll": "conll",
    ".conllu": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".txt": "conll",
}


def detect_format(path: Path, fmt: str) -> str:
    """Return the format of `path`: the given one, or one chosen from the extension."""
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "disk"
    suffixes = [s for s in path.suffixes if s != ".gz"]
    ext = suffixes[-1].lower() if suffixes else ""
    if ext not in EXTENSIONS:
        raise DistilkitError(
            f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; "
            "pass --format csv|tsv|jsonl|conll|disk"
        )
    return EXTENSIONS[ext]


def read_text(path: Path) -> str:
    """Read a UTF-8 file (BOM allowed); a missing, empty or non-UTF-8 file is a clear error."""
    if not path.exists():
        raise DistilkitError(f"{path}: data file not found; check the path")
    if path.is_dir():
        raise DistilkitError(f"{path}: is a folder, expected a data file")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DistilkitError(
            f"{path}:{line}: byte 0x{raw[err.start]:02x} is not valid UTF-8; "
            "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    if not text.strip():
        raise DistilkitError(f"{path}: data file is empty")
    return text


def read_delimited(path: Path, delimiter: str) -> list[dict]:
    """CSV or TSV with a header row. TSV is read without quoting, as GLUE's files need."""
    text = read_text(path)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    rows = []
    try:
        for row in reader:
            if None in row:  # more fields than header columns
                raise DistilkitError(
                    f"{path}:{reader.line_num}: row has {len(reader.fieldnames) + len(row[None])} fields but the "
                    f"header has {len(reader.fieldnames)}; quote fields that contain the delimiter"
                )
            if all((v or "").strip() == "" for v in row.values()):
                continue  # blank line
            row["_where"] = f"{path}:{reader.line_num}"
            rows.append(row)
    except csv.Error as err:
        raise DistilkitError(f"{path}:{reader.line_num}: malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {err}")
    if not rows:
        raise DistilkitError(f"{path}: data file has a header but no rows")
    return rows


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per line (a whole-file JSON list is accepted too)."""
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise DistilkitError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
        return [dict(item, _where=f"{path}:item {i + 1}") for i, item in enumerate(items)]
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise DistilkitError(f"{path}:{lineno}: invalid JSON ({err.msg}); each line must be one JSON object") from None
        if not isinstance(item, dict):
            raise DistilkitError(f"{path}:{lineno}: expected a JSON object per line, got {type(item).__name__}")
        item["_where"] = f"{path}:{lineno}"
        rows.append(item)
    return rows


def read_conll(path: Path) -> list[dict]:
    """CoNLL: one token per line, the tag in the last column, a blank line between sentences.

    `-DOCSTART-` lines (CoNLL-2003) are skipped; any line with a single column is an error.
    """
    text = read_text(path)
    rows: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 1

    def flush():
        if tokens:
            rows.append({"tokens": list(tokens), "tags": list(tags), "_where": f"{path}:{start}"})
        tokens.clear()
        tags.clear()

    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            flush()
            continue
        if parts[0] == "-DOCSTART-":
            flush()
            continue
        if len(parts) < 2:
            raise DistilkitError(
                f"{path}:{lineno}: malformed CoNLL line {line.strip()!r}: expected a token and a tag separated by "
                "whitespace (tag in the last column), or a blank line between sentences"
            )
        if not tokens:
            start = lineno
        tokens.append(parts[0])
        tags.append(parts[-1])
    flush()
    if not rows:
        raise DistilkitError(f"{path}: no sentences found in the CoNLL file")
    return rows


def read_disk(path: Path) -> dict[str, list[dict]]:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`.

    ClassLabel features are turned back into their names so labels look the same as in text formats.
    Split names `validation` and `dev` are both accepted.
    """
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as err:
        raise DistilkitError(f"{path}: not a datasets save_to_disk folder ({err})") from None
    parts = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    out = {}
    for name, ds in parts.items():
        split = {"validation": "dev", "valid": "dev"}.get(name, name)
        rows = []
        converters = {col: _feature_to_names(feat) for col, feat in ds.features.items()}
        for i, row in enumerate(ds):
            row = {col: converters[col](val) if converters[col] else val for col, val in row.items()}
            row["_where"] = f"{path}[{name}][{i}]"
            rows.append(row)
        out[split] = rows
    return out


def _feature_to_names(feature):
    """A function that maps ClassLabel ids (or lists of them) to names; None for other features."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return feature.int2str
    inner = getattr(feature, "feature", None)
    if isinstance(feature, (datasets.Sequence, datasets.List)) and isinstance(inner, datasets.ClassLabel):
        return lambda ids: [inner.int2str(i) for i in ids]
    return None


def read_file(path: Path, fmt: str) -> list[dict]:
    """Read one data file in the given (or detected) format."""
    fmt = detect_format(path, fmt)
    if fmt == "csv":
        return read_delimited(path, ",")
    if fmt == "tsv":
        return read_delimited(path, "\t")
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "conll":
        return read_conll(path)
    raise DistilkitError(f"{path}: format {fmt!r} needs a folder; pass a folder written by save_to_disk")
