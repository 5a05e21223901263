"""Readers for the file formats distilkit accepts: CSV, TSV, JSONL, CoNLL, Parquet, Arrow and `save_to_disk` folders.

Each reader returns a list of plain dict rows; every row carries `_where` ("file:line") so that later checks
(empty text, unknown label) can name the exact place to fix. Decoding errors name the line too.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from pathlib import Path

from distilkit.budget import check_file_fits
from distilkit.data.columns import ColumnRows
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
    ".parquet": "parquet",
    ".arrow": "arrow",
}
# Formats `datasets.load_dataset` reads itself (columnar: no line numbers, rows are named by their index).
DATASETS_FORMATS = ("parquet", "arrow")


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
            "pass --format csv|tsv|jsonl|conll|parquet|arrow|disk"
        )
    return EXTENSIONS[ext]


def decode_utf8(raw: bytes, where: str, fix: str) -> str:
    """`raw` as UTF-8 (a BOM is dropped); a byte that is not UTF-8 is one error naming `where:LINE` and the fix."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DistilkitError(f"{where}:{line}: byte 0x{raw[err.start]:02x} is not valid UTF-8; {fix}") from None


def read_text(path: Path) -> str:
    """Read a UTF-8 file (BOM allowed); a missing, empty or non-UTF-8 file is a clear error."""
    if not path.exists():
        raise DistilkitError(f"{path}: data file not found; check the path")
    if path.is_dir():
        raise DistilkitError(f"{path}: is a folder, expected a data file")
    if not path.is_file():  # opening a named pipe waits for a writer, forever if there is none
        raise DistilkitError(
            f"{path}: not a regular file (a named pipe, socket or device); distilkit reads data files from disk: "
            "save the data to a file first"
        )
    check_file_fits(path, "data file")
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # unreadable file, or a truncated/corrupt .gz
        raise DistilkitError(
            f"{path}: cannot read the file ({err}); check it (a .gz must be a complete gzip file)"
        ) from None
    text = decode_utf8(raw, str(path), "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    if "\x00" in text:  # UTF-16 without a BOM decodes as "valid" UTF-8 full of NULs; no text format holds them
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DistilkitError(
            f"{path}:{line}: the file contains a NUL byte (UTF-16 or binary?); re-save it as UTF-8 text "
            "(e.g. iconv -f utf-16 -t utf-8)"
        )
    if not text.strip():
        raise DistilkitError(f"{path}: data file is empty")
    return text


def text_lines(text: str) -> list[str]:
    """Lines as a text editor counts them: split at \\n only (str.splitlines also splits at U+2028, \\x0c,
    \\x85..., which JSON strings may hold raw, and would shift every later line number)."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _open_quote_line(text: str, start_line: int, delimiter: str) -> int:
    """The line of the quote that opened the field the csv module choked on.

    csv reports where it gave up (often the end of the file, or the next quote far below); the user needs the
    line where the unbalanced quote opened. Scans from the start of the failing record with csv's own rules
    (a quote opens a field only at its start; "" inside a quoted field is a literal quote).
    """
    line, pos = 1, 0
    while line < start_line:  # csv counts \r, \n and \r\n as line ends
        nxt = min((i for i in (text.find("\n", pos), text.find("\r", pos)) if i >= 0), default=-1)
        if nxt < 0:
            return start_line
        pos = nxt + 2 if text.startswith("\r\n", nxt) else nxt + 1
        line += 1
    state, opened, n = "start", start_line, len(text)
    while pos < n:
        c = text[pos]
        newline = c in "\r\n"
        if state == "quoted":
            state = "quote" if c == '"' else "quoted"
        elif state == "quote" and c == '"':
            state = "quoted"  # "" is an escaped quote
        elif state == "quote" and not (c == delimiter or newline):
            return opened  # text after a closing quote: the quote did not close the field it opened
        elif c == delimiter or newline:
            state = "start"
        elif state == "start" and c == '"':
            state, opened = "quoted", line
        elif state != "quoted":
            state = "field"
        if c == "\n" or (c == "\r" and not text.startswith("\r\n", pos)):
            line += 1
        pos += 1
    return opened


def read_delimited(path: Path, delimiter: str) -> list[dict]:
    """CSV or TSV with a header row. TSV is read without quoting, as GLUE's files need."""
    text = read_text(path)
    kind = "TSV" if delimiter == "\t" else "CSV"
    # A long text (a whole article) is not malformed: let one field be as long as the file itself
    # (csv's default limit of 131,072 characters rejected 1 MB fields).
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    # strict: a quote that does not close where a field ends is an error at once, instead of silently
    # swallowing the following lines into one field up to the next quote or the end of the file.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    header, rows, start = None, [], 1
    try:
        for fields in reader:
            where, start = f"{path}:{start}", reader.line_num + 1  # a record may span lines: name its first
            if not any(f.strip() for f in fields):
                continue  # blank line
            if header is None:
                header = _check_header(fields, where)
                continue
            if len(fields) > len(header):
                raise DistilkitError(
                    f"{where}: row has {len(fields)} fields but the header has {len(header)}; "
                    "quote fields that contain the delimiter"
                )
            row = dict(zip(header, fields))
            row.update({col: None for col in header[len(fields) :]})  # short rows: missing columns are empty
            row["_where"] = where
            rows.append(row)
    except csv.Error as err:
        if '"' in str(err) or "end of data" in str(err):
            line = _open_quote_line(text, start, delimiter)
            raise DistilkitError(
                f"{path}:{line}: unbalanced quote in the field that starts on this line ({err}); a field that "
                'starts with " must end with ", and a quote inside it must be doubled ("")'
            ) from None
        raise DistilkitError(f"{path}:{start}: malformed {kind}: {err}") from None
    if not rows:
        raise DistilkitError(f"{path}: data file has a header but no rows")
    return rows


def _check_header(fields: list[str], where: str) -> list[str]:
    seen = set()
    for name in fields:
        if name in seen:
            raise DistilkitError(f"{where}: the header names column {name!r} twice; give every column its own name")
        seen.add(name)
    return fields


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per line (a whole-file JSON list is accepted too)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        rows = _read_json_list(path, text)
    else:
        rows = []
        for lineno, line in enumerate(text_lines(text), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except (ValueError, RecursionError) as err:  # ValueError: also ints of over 4,300 digits
                reason = getattr(err, "msg", None) or str(err).split(":")[0]
                raise DistilkitError(
                    f"{path}:{lineno}: invalid JSON ({reason}); each line must be one JSON object"
                ) from None
            if not isinstance(item, dict):
                raise DistilkitError(f"{path}:{lineno}: expected a JSON object per line, got {type(item).__name__}")
            item["_where"] = f"{path}:{lineno}"
            rows.append(item)
    if not rows:
        raise DistilkitError(f"{path}: no JSON objects in the file")
    return rows


def _read_json_list(path: Path, text: str) -> list[dict]:
    try:
        items = json.loads(text)  # the whole text, not a stripped copy: error line numbers count leading lines
    except (ValueError, RecursionError) as err:
        line = getattr(err, "lineno", None) or 1
        raise DistilkitError(f"{path}:{line}: invalid JSON: {getattr(err, 'msg', err)}") from None
    for i, item in enumerate(items):  # a list: the text starts with "[" and parsed
        if not isinstance(item, dict):
            raise DistilkitError(
                f"{path}: item {i + 1} of the JSON list is a {type(item).__name__}, expected an object"
            )
    return [dict(item, _where=f"{path}:item {i + 1}") for i, item in enumerate(items)]


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

    for lineno, line in enumerate(text_lines(text), start=1):
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

    check_file_fits(path, "data folder")
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as err:
        raise DistilkitError(f"{path}: not a datasets save_to_disk folder ({err})") from None
    return dataset_splits(loaded, str(path), "train")


def read_columnar(path: Path, fmt: str) -> list[dict]:
    """A Parquet or Arrow file through `datasets.load_dataset`; each row's `_where` is `file[row N]`."""
    import datasets

    check_file_fits(path, "data file")
    try:
        loaded = datasets.load_dataset(fmt, data_files=str(path), split="train")
    except Exception as err:  # pyarrow and datasets raise many types for a damaged or mislabelled file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistilkitError(f"{path}: cannot read it as {fmt} ({reason}); check the file and --format") from None
    return dataset_splits(loaded, str(path), "all", rows_only=True)["all"]


def dataset_splits(loaded, where: str, single: str, rows_only: bool = False) -> dict[str, ColumnRows]:
    """The rows of a datasets.Dataset (as split `single`) or of each split of a DatasetDict, read on demand
    (data/columns.py), ClassLabel ids shown as their names; each row's `_where` names the dataset, the split and
    the row (`file[row N]` for a file's one table)."""
    import datasets

    parts = loaded if isinstance(loaded, datasets.DatasetDict) else {single: loaded}
    out = {}
    for name, ds in parts.items():
        split = {"validation": "dev", "valid": "dev"}.get(name, name)
        converters = {col: _feature_to_names(feat) for col, feat in ds.features.items()}
        convert = {col: fn for col, fn in converters.items() if fn}
        prefix = where if rows_only else f"{where}[{name}]"
        out[split] = ColumnRows(ds, prefix, convert=convert, row_word="row " if rows_only else "")
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
    if fmt in DATASETS_FORMATS:
        return read_columnar(path, fmt)
    raise DistilkitError(f"{path}: format {fmt!r} needs a folder; pass a folder written by save_to_disk")
