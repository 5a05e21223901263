"""The `distilkit` command, built from the typed config dataclasses (jsonargparse, as litgpt does).

Every dataclass field becomes an option with its type, default and help line; `--config FILE.yaml` reads the
same keys (command line wins), checked by the one loader of distilkit.config_loader. Hugging Face's spellings
(`--learning-rate`, `--output-dir`, ...) are taken as aliases (distilkit.option_aliases) and named in --help. Usage
errors and `DistilkitError`s print one line and exit with status 2. `COMMAND_TABLE` below is the only list of
commands.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter

from distilkit import __version__
from distilkit.compress.options import ExportConfig, MergeConfig, PruneConfig, QuantizeConfig
from distilkit.config import DistillConfig, FinetuneConfig
from distilkit.config_loader import RENAMED, load_options, read_yaml, renamed_message
from distilkit.distillation.options import AugmentConfig
from distilkit.errors import DistilkitError
from distilkit.evaluation.options import BenchConfig, EvaluateConfig, ReportConfig
from distilkit.files import write_failure
from distilkit.hub.options import PushConfig
from distilkit.inference.options import PredictConfig
from distilkit.noise import quiet_library_logs
from distilkit.option_aliases import also_known_as, nearest, resolve_argv
from distilkit.option_groups import MAIN, grouped
from distilkit.pipeline.options import PipelineConfig, SearchConfig
from distilkit.serving.options import ServeConfig


class UsageError(DistilkitError):
    """A bad command line or config file."""


def _dashed(text: str) -> str:
    return re.sub(r"--\w+", lambda m: m.group(0).replace("_", "-"), text)


class DashedHelpFormatter(DefaultHelpFormatter):
    """Print options as the docs write them (--batch-size), not as jsonargparse names them after the dataclass
    fields (--batch_size). Only the printed text changes: _normalise_argv takes both spellings, and a dash and an
    underscore are one character each, so argparse's columns and line wrapping stay as they were."""

    main: tuple[str, ...] = ()  # the command's main options (Parser.main), the only ones its usage line names

    def _format_action_invocation(self, action) -> str:
        return _dashed(super()._format_action_invocation(action))

    def _format_usage(self, usage, actions, *args, **kwargs) -> str:
        """A command's usage line names its positional arguments and main options, then `[options]`: listing all
        of distill's 80 options there pushed the first group of its --help 75 lines down."""
        if usage is None and self.main:
            actions = [a for a in actions if not a.option_strings or a.dest in self.main]
            actions.sort(key=lambda a: self.main.index(a.dest) if a.dest in self.main else len(self.main))
            return _dashed(super()._format_usage(usage, actions, *args, **kwargs)).rstrip() + " [options]\n\n"
        return _dashed(super()._format_usage(usage, actions, *args, **kwargs))

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Wrap help lines at spaces only: an option named in the text (also: --per-device-train-batch-size) stays
        whole."""
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(ArgumentParser):
    """An ArgumentParser that raises instead of printing usage, so main() can print one clear line."""

    main: tuple[str, ...] = ()  # a command's main options (option_groups.MAIN), set by show_in_groups

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DashedHelpFormatter)
        super().__init__(*args, **kwargs)

    def _get_formatter(self):
        formatter = super()._get_formatter()
        formatter.main = self.main
        return formatter

    def error(self, message, ex=None):  # noqa: D401 - jsonargparse's hook
        raise UsageError(_one_line(message, self))


def _one_line(message: str, parser: ArgumentParser) -> str:
    """Squeeze jsonargparse's (often multi-line) message into one line that names the option and the fix."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    text = lines[0] if lines else "invalid arguments"
    key = re.match(r'Parser key "([\w.-]+)":', text)
    if key:  # a value of the wrong type: 'Parser key "epochs":\n Expected a <class 'float'>. Got value: abc'
        detail = " ".join(lines[1:])
        detail = re.sub(r"<class '(\w+)'>", r"\1", detail)
        detail = re.sub(r"a typing\.Literal\[(.*?)\]", lambda m: "one of " + m.group(1).replace("'", ""), detail)
        if "Union subtypes" in detail:  # Optional[...] options: keep the non-None expectation and the value
            expected = [
                e.strip()
                for e in re.findall(r"- Expected (.*?)(?= - Expected| Given value|$)", detail)
                if "NoneType" not in e
            ]
            given = re.search(r"Given value: (.*)$", detail)
            detail = f"Expected {' or '.join(expected)}. Got value: {given.group(1) if given else '?'}"
        text = f"--{key.group(1)}: {detail}"
    if "nrecognized" in text:  # name the options as the user wrote them (argv was normalised to underscores)
        text = _dashed(text)
    unknown = re.findall(r"--[\w.-]+", text) if "nrecognized" in text else []
    hints = [h for h in (_suggest(opt, parser) for opt in unknown) if h]
    prog = parser.prog.replace(" [options]", "")
    return text + (" (" + "; ".join(hints) + ")" if hints else "") + f" — see {prog} --help"


def _options(parser: ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--")]


def _closest(given: str, names: list[str]) -> str | None:
    """The option most like `given`, Hugging Face's spellings included (distilkit.option_aliases.nearest)."""
    return nearest(given, names)


def _suggest(option: str, parser: ArgumentParser) -> str:
    names = [o[2:].replace("-", "_") for o in _options(parser)]
    close = _closest(option.replace("-", "_").lstrip("_"), names)
    return f"{option}: did you mean --{close.replace('_', '-')}?" if close else ""


def _read_config_file(path: str, cls) -> str:
    """Check a --config YAML with the one loader first, so a bad file, key or value is one line naming the file.

    Returns the options as YAML text with keys underscored (batch-size → batch_size) for jsonargparse.
    """
    import yaml

    options = load_options(cls, read_yaml(path, f"--config {path}: file not found"), path)
    return yaml.safe_dump(options)


def _normalise_argv(argv: list[str], cls) -> list[str]:
    """Accept --batch-size as well as --batch_size, and a bare boolean flag (--resume) as --resume true."""
    bools = {f.name for f in dataclasses.fields(cls) if f.type in (bool, "bool")}
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
            out.append(arg)
            following = argv[i + 1] if i + 1 < len(argv) else None
            if (
                name.replace("-", "_") in bools
                and not eq
                and (following is None or following.lower() not in ("true", "false", "yes", "no", "1", "0"))
            ):
                out.append("true")
        else:
            out.append(arg)
    return out


@dataclass(frozen=True)
class Command:
    """One `distilkit` command: its options, what runs it, its help line, and an option also taken positionally.

    Every runner is called as runner(config, resolved), resolved being the options as a dict (written to the
    run folder's config.yaml by the commands that write one; the others ignore it).
    """

    config: type
    runner: str  # "module:function", imported only when the command runs (torch stays out of --help)
    help: str
    positional: tuple[str, str, str] | None = None  # (field, nargs, help): `distilkit bench runs/a runs/b`


COMMAND_TABLE: dict[str, Command] = {
    "finetune": Command(
        FinetuneConfig,
        "distilkit.training.finetune:finetune",
        "fine-tune a model on labelled data (writes a run folder)",
    ),
    "distill": Command(
        DistillConfig,
        "distilkit.distillation.distill:distill",
        "distil fine-tuned teacher(s) into a smaller student (writes a run folder)",
    ),
    "augment": Command(
        AugmentConfig,
        "distilkit.distillation.augment:augment",
        "write an augmented copy of a data file (TinyBERT-style)",
    ),
    "evaluate": Command(
        EvaluateConfig, "distilkit.evaluation.evaluate:evaluate", "evaluate a saved model on a dataset"
    ),
    "search": Command(
        SearchConfig,
        "distilkit.pipeline.search:search",
        "hyper-parameter search over finetune or distill options (Optuna)",
    ),
    "merge": Command(
        MergeConfig,
        "distilkit.compress.merge:merge",
        "fold a LoRA or BitFit adapter into its base model (plain model folder)",
    ),
    "predict": Command(
        PredictConfig,
        "distilkit.inference.predict:predict",
        "predict labels for texts (JSONL out)",
        ("texts", "*", "texts to classify (a tab separates the two texts of a pair)"),
    ),
    "prune": Command(
        PruneConfig,
        "distilkit.compress.prune:prune",
        "remove attention heads, FFN neurons or weights (writes a run folder)",
    ),
    "export": Command(
        ExportConfig,
        "distilkit.compress.export:export",
        "export a model to ONNX, checked against PyTorch (ONNX folder)",
    ),
    "quantize": Command(
        QuantizeConfig,
        "distilkit.compress.quantize:quantize",
        "int8-quantize a model (ONNX Runtime dynamic/static, or torchao)",
    ),
    "bench": Command(
        BenchConfig,
        "distilkit.evaluation.bench:bench",
        "measure size, FLOPs, latency, throughput and memory of models side by side",
        ("models", "*", "models to measure (the first is the baseline)"),
    ),
    "report": Command(
        ReportConfig,
        "distilkit.evaluation.report:report",
        "write report.html + report.md (plots) for pipeline runs",
        ("runs", "*", "pipeline run folders"),
    ),
    "run": Command(
        PipelineConfig,
        "distilkit.pipeline.run:run_pipeline",
        "run a recipe: teacher → students → prune → int8 → evaluate → bench → report",
        ("recipe", "?", "recipe YAML file (see recipes/)"),
    ),
    "serve": Command(
        ServeConfig,
        "distilkit.serving.serve:serve",
        "serve a model over HTTP: /predict (micro-batched), /health, /metrics, a playground",
    ),
    "push": Command(
        PushConfig,
        "distilkit.hub.push:push",
        "upload a model folder to the Hugging Face Hub: its model files and card, nothing else",
    ),
}
# name → (config class, help): derived from COMMAND_TABLE, for code written against that older shape (the tests)
COMMANDS = {name: (command.config, command.help) for name, command in COMMAND_TABLE.items()}


def description(config: type) -> str:
    """The first paragraph of a config class's docstring: what the command does (--help, docs/reference/cli.md)."""
    return " ".join((config.__doc__ or "").split("\n\n")[0].split())


def build_parser() -> ArgumentParser:
    parser = Parser(prog="distilkit", description="distilkit: fine-tune, distil, compress and evaluate BERT models.")
    parser.add_argument("--version", action="version", version=f"distilkit {__version__}")
    subcommands = parser.add_subcommands(dest="command")
    for name, command in COMMAND_TABLE.items():
        subcommands.add_subcommand(name, command_parser(name), help=command.help)
    return parser


def command_parser(name: str) -> Parser:
    """The parser of one command (its --help; scripts/cli_reference.py documents it)."""
    command = COMMAND_TABLE[name]
    sub = Parser(prog=f"distilkit {name}", description=description(command.config))
    sub.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below")
    skip = set()
    if command.positional:  # e.g. `distilkit predict "some text"`, `distilkit bench runs/a runs/b`
        field_name, nargs, help_line = command.positional
        skip = {field_name}
        sub.add_argument(field_name, nargs=nargs, help=help_line)
    sub.add_class_arguments(command.config, nested_key=None, skip=skip, fail_untyped=True, sub_configs=False)
    also = also_known_as(f.name for f in dataclasses.fields(command.config))
    for action in sub._actions:  # Hugging Face's names of the option: "(also: --learning-rate)"
        if action.dest in also and action.help:
            action.help += f" (also: {', '.join(also[action.dest])})"
    show_in_groups(sub, name, command.config)
    return sub


def show_in_groups(sub: Parser, name: str, config: type) -> None:
    """Show a command's options in the groups of distilkit.option_groups, its main options first (the CLI
    reference, scripts/cli_reference.py, reads the same groups off this parser). Only --help changes: parsing
    reads parser._actions, whose order stays, and an argparse group is nothing but a heading in --help."""
    fields = [f.name for f in dataclasses.fields(config)]
    actions = {a.dest: a for a in sub._actions if a.dest in fields}
    for group in sub._action_groups:
        group._group_actions[:] = [a for a in group._group_actions if a.dest not in actions]
    for title, options in grouped(name, [f for f in fields if f in actions]):
        sub.add_argument_group(title)._group_actions.extend(actions[option] for option in options)
        if title == MAIN:
            sub.main = tuple(options)
    sub._action_groups[:] = [group for group in sub._action_groups if group._group_actions]


def parse(argv: list[str]) -> tuple[str, object, dict]:
    """Parse argv into (command, config dataclass, resolved dict for config.yaml)."""
    parser = build_parser()
    if argv and argv[0] in COMMAND_TABLE:
        cls = COMMAND_TABLE[argv[0]].config
        if argv[0] in ("serve", "push") and len(argv) > 1 and not argv[1].startswith("-"):
            argv = [argv[0], "--model", *argv[1:]]  # distilkit serve|push RUN_OR_MODEL [options]
        fields = {f.name for f in dataclasses.fields(cls)}
        argv = [argv[0]] + _normalise_argv(resolve_argv(argv[1:], fields), cls)
        for arg in argv[1:]:
            old = arg[2:].partition("=")[0] if arg.startswith("--") else ""
            if old in RENAMED and old not in fields and RENAMED[old] in fields:
                raise UsageError(renamed_message(old))
        for i, arg in enumerate(argv[:-1]):
            if arg == "--config":
                argv[i + 1] = _read_config_file(argv[i + 1], cls)
    ns = parser.parse_args(argv)
    command = ns.command
    cls = COMMAND_TABLE[command].config
    values = ns[command]
    kwargs = {f.name: values.get(f.name, f.default) for f in dataclasses.fields(cls)}
    config = cls(**kwargs)
    return command, config, dataclasses.asdict(config)


def run(argv: list[str]) -> object:
    """Parse and run one command; raises DistilkitError for user errors."""
    import importlib

    command, config, resolved = parse(argv)
    module, function = COMMAND_TABLE[command].runner.split(":")
    return getattr(importlib.import_module(module), function)(config, resolved)


TRACEBACK_ENV = "DISTILKIT_TRACEBACK"


def unexpected(err: BaseException) -> tuple[str, int]:
    """The one line (and exit status) for an exception that is not a DistilkitError: a failed write or another OS
    error and running out of memory are the user's to fix (2); anything else is a bug in distilkit or in the
    user's plugin (1), named by its type, message and the innermost frame of distilkit's or the user's code."""
    import traceback

    from distilkit.files import free_space

    if write_failure(err):
        target = getattr(err, "filename", None) or "a file"
        return f"cannot write {target}: {write_failure(err)} ({free_space(Path(target))} free there)", 2
    if isinstance(err, OSError):
        return f"{err.filename or 'a file'}: {err.strerror or err}", 2
    if isinstance(err, MemoryError):
        return "out of memory: use a smaller --batch-size or --max-length, fewer examples, or more memory", 2
    frames = traceback.extract_tb(err.__traceback__)
    own = [f for f in frames if "site-packages" not in f.filename and "/lib/python" not in f.filename]
    frame = (own or frames or [None])[-1]
    at = f" (at {frame.filename}:{frame.lineno} in {frame.name})" if frame else ""
    first = (str(err).strip().splitlines() or [""])[0][:300]
    return (
        f"unexpected {type(err).__name__}: {first}{at}; this is a bug in distilkit or in a plugin: rerun with "
        f"{TRACEBACK_ENV}=1 for the traceback, and report it"
    ), 1


def close_progress_bars() -> None:
    """End the progress bars a failure left open (the Trainer's, mid-epoch), so the error starts a line of its own."""
    import tqdm

    for bar in list(getattr(tqdm.tqdm, "_instances", [])):
        bar.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_library_logs()
    if os.environ.get("RANK", "0") != "0" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout = open(os.devnull, "w")  # under several processes the main one reports; errors still reach stderr
    if not argv:
        build_parser().print_help()
        sys.exit(2)
    try:
        run(argv)
    except DistilkitError as err:
        close_progress_bars()
        print(f"distilkit: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        close_progress_bars()
        print("distilkit: interrupted; rerun with --resume to continue a training run", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - every failure ends as one line; a bug's traceback on request
        bug = not isinstance(err, (OSError, MemoryError)) and not write_failure(err)
        if bug and os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0"):
            raise
        close_progress_bars()
        line, status = unexpected(err)
        print(f"distilkit: error: {line}", file=sys.stderr)
        sys.exit(status)
