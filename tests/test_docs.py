"""The docs as a reader meets them: the site builds strictly and renders in a browser, the CLI reference is what the
parsers give, every file, link, command and option the docs and the code's comments name exists, and the README's
quick start runs as written."""

from __future__ import annotations

import ast
import csv
import dataclasses
import fnmatch
import functools
import http.server
import io
import json
import os
import random
import re
import shlex
import subprocess
import sys
import threading
import tokenize
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from distilkit.cli import COMMAND_TABLE, main, parse
from distilkit.config_loader import RENAMED
from distilkit.option_aliases import aliases_for

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import cli_reference  # noqa: E402

README = ROOT / "README.md"
USER_DOCS = [README, *sorted((ROOT / "docs").rglob("*.md"))]  # what users read: its commands and options are checked
ALL_DOCS = [*USER_DOCS, ROOT / "CONTRIBUTING.md"]  # their paths and links are checked too


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `make docs` builds it: strict, so a broken link, anchor or API reference fails."""
    folder = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder


def test_the_docs_build_strictly(site):
    assert (site / "index.html").exists() and (site / "reference" / "cli" / "index.html").exists()


def test_the_cli_reference_is_what_the_parsers_give():
    assert cli_reference.main(["--check"]) == 0, "docs/reference/cli.md is stale: run python scripts/cli_reference.py"


# --- every path, link, command and option named exists ----------------------------------------------------------

# A path from the repository root: only these folders, so that what a run writes (runs/..., metrics.json, model/)
# is not taken for a file of the repository. A file needs its extension, a folder its trailing slash (so
# `examples/s`, a unit, is no path); `*` is a glob (tests/test_fuzz_*.py) that must match something.
REPO_PATH = re.compile(r"(?<![\w./-])((?:src|tests|benchmarks|scripts|docs|recipes|examples|requirements)/[\w.*/-]*)")
# A module named from inside the package (losses/registry.py, as docstrings in distillation/ do): in src/distilkit/
MODULE_PATH = re.compile(r"(?<![\w./-])((?:[a-z_]\w*/)+[a-z_]\w*\.py)\b")
# DESIGN.md, CONTRIBUTING.md: a file at the root. README.md is left out: it is also every model folder's card.
ROOT_DOC = re.compile(r"(?<![\w./-])((?!README\.md)[A-Z][A-Z_]+\.md)\b")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def comments_and_docstrings(path: Path) -> str:
    source = path.read_text(encoding="utf-8")
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    texts = [token.string for token in tokens if token.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            texts.append(ast.get_docstring(node, clean=False) or "")
    return "\n".join(texts)


@functools.cache
def ignored_patterns() -> list[str]:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def written_by_a_run(path: str) -> bool:
    """Paths git ignores (benchmarks/runs/..., benchmarks/.venv-textbrewer/) are made by runs, not kept in the
    repository."""
    for pattern in ignored_patterns():
        anchored, pattern = "/" in pattern.rstrip("/"), pattern.strip("/")
        parts = path.strip("/").split("/")
        if anchored and any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))):
            return True
        if not anchored and any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def missing_paths(text: str) -> list[str]:
    missing = []
    for found in REPO_PATH.findall(text):
        path = found.rstrip(".,:;")
        if not (path.endswith("/") or "." in path.rsplit("/", 1)[-1]) or written_by_a_run(path):
            continue
        if not any(ROOT.glob(path.rstrip("/"))):
            missing.append(path)
    for path in MODULE_PATH.findall(text):
        if not (REPO_PATH.match(path) or written_by_a_run(path) or (ROOT / "src" / "distilkit" / path).exists()):
            missing.append(path)
    missing += [name for name in ROOT_DOC.findall(text) if not (ROOT / name).exists()]
    return missing


def test_files_named_in_the_code_and_the_docs_exist():
    """Every repository path (src/..., tests/..., docs/..., a module such as losses/registry.py, DESIGN.md) in a
    docstring or comment under src/, and in README.md, CONTRIBUTING.md and docs/."""
    named = {path: comments_and_docstrings(path) for path in sorted((ROOT / "src").rglob("*.py"))}
    named.update({path: path.read_text(encoding="utf-8") for path in ALL_DOCS})
    missing = [f"{path.relative_to(ROOT)}: {name}" for path, text in named.items() for name in missing_paths(text)]
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


def without_code(text: str) -> str:
    """Markdown with its fenced code blocks blanked (line numbers kept)."""
    return re.sub(r"^\s*```.*?^\s*```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.M | re.S)


@functools.cache
def anchors(page: Path) -> set[str]:
    """The heading ids Python-Markdown's toc gives the page (duplicates numbered), and explicit {#id}s."""
    found: set[str] = set()
    for title in re.findall(r"^#{1,6}\s+(.*?)\s*$", without_code(page.read_text(encoding="utf-8")), flags=re.M):
        explicit = re.search(r"\{#([\w-]+)\}", title)
        title = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", re.sub(r"\{.*?\}", "", title)).replace("`", "")
        slug = explicit.group(1) if explicit else slugify(title, "-")
        while slug in found:  # as toc numbers a repeated heading: slug, slug_1, slug_2
            numbered = re.match(r"(.*)_(\d+)$", slug)
            slug = f"{numbered.group(1)}_{int(numbered.group(2)) + 1}" if numbered else f"{slug}_1"
        found.add(slug)
    return found


def test_links_between_the_docs_resolve():
    """Every relative Markdown link of README.md, CONTRIBUTING.md and docs/ reaches a file, and its #anchor a heading
    of that page (mkdocs --strict checks the links inside docs/; README.md and CONTRIBUTING.md are outside it)."""
    broken = []
    for page in ALL_DOCS:
        for target in MD_LINK.findall(without_code(page.read_text(encoding="utf-8"))):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


# An invocation written in code: `distilkit CMD` (python -m / accelerate launch -m / torchrun -m included), or another
# tool, whose options are its own.
INVOCATION = re.compile(
    r"(?<![\w./-])(?:(?<!from )(?<!import )distilkit\s+(?P<command>[a-z][\w-]*)"
    r"|(?P<other>pip|make|mkdocs|pytest|ruff|mypy|uv|accelerate|torchrun|tensorboard|textbrewer\S*"
    r"|(?:\.venv/bin/)?python\S*))\b"
)
OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]*+)(?!: did you mean)")  # a misspelt name quoted in an error is skipped
# Other tools' options that the docs name on their own, away from the tool's command line
FOREIGN = {
    "--no-deps": "pip install",
    "--multi_gpu": "accelerate launch",
    "--only": "the benchmark scripts (benchmarks/general_scale.py, tinybert_ablation.py)",
    "--tag": "benchmarks/tinybert_ablation.py",
}


@functools.cache
def accepted(command: str | None) -> set[str]:
    """The options a command's parser takes (any command's for None): its fields but a positional one, their
    Hugging Face names, and an old name it answers with the new one (--recipe: now --method)."""
    names = {"help", "config", "print_config", "version"}
    for name in [command] if command else COMMAND_TABLE:
        entry = COMMAND_TABLE[name]
        fields = [f.name for f in dataclasses.fields(entry.config) if f.name != (entry.positional or ("",))[0]]
        names |= set(fields) | set(aliases_for(fields)) | {old for old, new in RENAMED.items() if new in fields}
    return {"--" + name.replace("_", "-") for name in names}


def code_segments(page: Path) -> list[tuple[int, str, list[tuple[int, int]]]]:
    """(line number, line, spans of code in it) for each line of a page; a fenced line is code all along, and a
    line continued with a backslash is joined to the next."""
    out, fenced, joined = [], False, ""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            line = re.sub(r"(^|\s)#.*$", "", joined + line)  # a shell or Python comment is prose
            joined = line[:-1] if line.endswith("\\") else ""
            if not joined:
                out.append((number, line, [(0, len(line))]))
        else:
            out.append((number, line, [m.span(1) for m in re.finditer(r"`([^`]+)`", line)]))
    return out


def unknown_names(page: Path) -> list[str]:
    """The commands and options of `page` that the CLI does not have (the rule: see the test below)."""
    every, wrong = accepted(None), []
    for number, line, spans in code_segments(page):
        calls = [(span, m) for span in spans for m in INVOCATION.finditer(line, *span)]
        wrong += [f"{number}: distilkit {m['command']}" for _, m in calls if m["command"] not in (None, *COMMAND_TABLE)]
        for option in OPTION.finditer(line):
            owners = [(span, m) for span, m in calls if m.start() < option.start()]
            span, owner = owners[-1] if owners else ((0, 0), None)
            if owner is not None and owner["other"]:
                continue  # another tool's option
            command = owner["command"] if owner and span[0] <= option.start() < span[1] else None
            name, known = option.group(1), accepted(command) if command in COMMAND_TABLE else every
            if "--" + name[2:].replace("_", "-") not in known and name not in FOREIGN:
                wrong.append(f"{number}: {name}" + (f" (distilkit {command})" if command else ""))
    return [f"{page.relative_to(ROOT)}:{entry}" for entry in wrong]


def test_commands_and_options_named_in_the_docs_exist():
    """Every `distilkit WORD` written in code (a fenced line or a `span`) of README.md and docs/ is a command of
    cli.COMMAND_TABLE, and every --option written there (prose included) exists. An option belongs to the nearest
    invocation before it on its line: after another tool's (pip, make, mkdocs, accelerate launch, torchrun, a
    script run with python, ...) it is that tool's and not checked; after `distilkit CMD` in the same span or fenced
    line, CMD's parser must take it (or take it as a Hugging Face name, or answer it with its new name: --recipe);
    elsewhere (prose, a table cell, a span of its own) some command must take it, unless FOREIGN names it as another
    tool's. A misspelt name quoted in an error message (`--x: did you mean --y?`) is skipped, and shell and Python
    comments in code blocks are prose."""
    wrong = [name for page in USER_DOCS for name in unknown_names(page)]
    assert not wrong, "no such command or option:\n" + "\n".join(wrong)


# --- the README's quick start, verbatim -----------------------------------------------------------------------

# Added to the quick start's training commands: faster on a tiny CSV, the same meaning (the CPU threads matter when
# other processes share the cores).
SPEED = ["--max-length", "32", "--batch-size", "16", "--threads", "1"]
QUICK_START = "Quick start on your own CSV"


def readme_block(heading: str, language: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(f"## {heading}") :]
    return re.search(rf"^```{language}\n(.*?)^```", section, flags=re.M | re.S).group(1)


def write_my_csv(folder: Path) -> None:
    """60 reviews whose sentiment words decide the label: learnable by MiniLM in the quick start's 3 epochs."""
    rng = random.Random(0)
    words = {
        "good": "wonderful excellent great lovely superb delightful",
        "bad": "terrible awful poor dreadful bad dull",
    }
    filler = "the film was really and story acting very quite overall music plot".split()
    with open(folder / "my.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(60):
            label = ("good", "bad")[i % 2]
            text = rng.sample(filler, 4) + rng.sample(words[label].split(), 2)
            rng.shuffle(text)
            writer.writerow([" ".join(text), label])


@pytest.fixture
def one_thread():
    """torch on one thread for the quick start (SPEED's --threads sets it for the whole process anyway), then the
    threads it had, for the next tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_readme_quick_start_runs_as_written(tmp_path, monkeypatch, capsys, one_thread):
    """Each line of the bash block under QUICK_START through distilkit.cli.main, in a folder holding my.csv, with
    SPEED added to the training commands (the README's 3 epochs stay: distill refuses a teacher that learnt
    nothing); `distilkit serve` blocks, so its command line is only parsed, and its model must be there."""
    write_my_csv(tmp_path)
    monkeypatch.chdir(tmp_path)
    block = readme_block(QUICK_START, "bash")
    lines = [argv for argv in (shlex.split(line, comments=True) for line in block.splitlines()) if argv]
    assert [argv[1] for argv in lines] == ["finetune", "distill", "export", "quantize", "predict", "serve"]
    for argv in lines:
        assert argv[0] == "distilkit"
        if argv[1] == "serve":
            _, config, _ = parse(argv[1:])
            assert Path(config.model).is_dir(), config.model
            continue
        speed = SPEED if argv[1] in ("finetune", "distill") else []
        capsys.readouterr()
        try:
            main(argv[1:] + speed)
        except SystemExit as stop:
            pytest.fail(f"{shlex.join(argv)}: exit {stop.code}: {capsys.readouterr().err[-2000:]}")
    prediction = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert prediction["text"] == "a text to classify" and prediction["label"] in ("good", "bad")
    metrics = json.loads((tmp_path / "runs" / "student" / "metrics.json").read_text())
    assert "retention" in metrics["test"]


def test_the_readme_python_quick_start_runs_as_written(tmp_path, monkeypatch, capsys, one_thread):
    """The Python block under the same heading, executed as written in a folder holding my.csv; it prints the
    student's retention, then the predicted label."""
    write_my_csv(tmp_path)
    monkeypatch.chdir(tmp_path)
    code = readme_block(QUICK_START, "python")
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    retention, label = capsys.readouterr().out.strip().splitlines()[-2:]
    assert 0 < float(retention) <= 2 and label in ("good", "bad")
    assert (tmp_path / "runs" / "student" / "onnx-int8-dynamic").is_dir()


# --- the site in a browser ----------------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served_site(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("page, title", [("", "distilkit"), ("guides/distillation/", "Distillation")])
def test_the_site_renders_in_headless_chromium(served_site, browser, page, title, tmp_path):
    import matplotlib.image
    import numpy as np

    browser.set_window_size(1200, 1600)
    browser.get(f"{served_site}/{page}")
    assert title in browser.title
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    pixels = matplotlib.image.imread(shot)[..., :3]
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(int), axis=0)
    assert pixels.shape[0] >= 1000 and len(colours) > 50  # text, navigation and tables, not a blank or error page
    background = np.all(pixels == pixels[-1, -1], axis=-1).mean()
    assert background < 0.97, f"{background:.1%} of the page is one colour"


def test_formulas_render_offline_with_the_vendored_katex(served_site, browser):
    """The concepts page's formulas become KaTeX markup in the browser (docs/assets/katex, no CDN): none is left
    as raw `$$` TeX source."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served_site}/concepts/distillation/")
    WebDriverWait(browser, 20).until(lambda b: b.find_elements("css selector", ".katex-display"))
    displayed = browser.find_elements("css selector", ".katex-display")
    blocks = (ROOT / "docs" / "concepts" / "distillation.md").read_text(encoding="utf-8").count("$$") // 2
    assert blocks >= 5 and len(displayed) == blocks  # every $$...$$ block rendered
    assert not browser.find_elements("css selector", ".katex-error")
    assert "$$" not in browser.find_element("css selector", "article").text
