"""The `distilkit` command, built from the typed config dataclasses (jsonargparse, as litgpt does).

Every dataclass field becomes an option with its type, default and help line; `--config FILE.yaml` reads the
same keys (command line wins). Usage errors and `DistilkitError`s print one line and exit with status 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys

from jsonargparse import ActionConfigFile, ArgumentParser

from distilkit import __version__
from distilkit.config import (AugmentConfig, DistillConfig, EvaluateConfig, FinetuneConfig, MergeConfig,
                              PredictConfig, SearchConfig)
from distilkit.compress.options import ExportConfig, PruneConfig, QuantizeConfig
from distilkit.errors import DistilkitError
from distilkit.serve.options import ServeConfig
from distilkit.evaluate.options import BenchConfig, ReportConfig
from distilkit.pipeline_options import PipelineConfig


class UsageError(DistilkitError):
    """A bad command line or config file."""


class Parser(ArgumentParser):
    """An ArgumentParser that raises instead of printing usage, so main() can print one clear line."""

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
            expected = [e.strip() for e in re.findall(r"- Expected (.*?)(?= - Expected| Given value|$)", detail)
                        if "NoneType" not in e]
            given = re.search(r"Given value: (.*)$", detail)
            detail = f"Expected {' or '.join(expected)}. Got value: {given.group(1) if given else '?'}"
        text = f"--{key.group(1)}: {detail}"
    unknown = re.findall(r"--[\w.-]+", text) if "nrecognized" in text else []
    hints = [h for h in (_suggest(opt, parser) for opt in unknown) if h]
    prog = parser.prog.replace(" [options]", "")
    return text + (" (" + "; ".join(hints) + ")" if hints else "") + f" — see {prog} --help"


def _options(parser: ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--")]


def _suggest(option: str, parser: ArgumentParser) -> str:
    close = difflib.get_close_matches(option.replace("-", "_").lstrip("_"), [o[2:] for o in _options(parser)], 1, 0.6)
    return f"{option}: did you mean --{close[0]}?" if close else ""


def _check_config_file(path: str, cls, parser: ArgumentParser) -> str:
    """Read a --config YAML ourselves first, so a bad file or key gets an error naming the file and the key.

    Returns the config as YAML text with keys normalised (batch-size → batch_size) for jsonargparse.
    """
    import yaml

    if not os.path.isfile(path):
        raise UsageError(f"--config {path}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        reason = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"{where}: not valid YAML ({reason}); fix the file's syntax") from None
    if content is None:
        return "{}"
    if not isinstance(content, dict):
        raise UsageError(f"{path}: a config must be a mapping of option: value, got {type(content).__name__}")
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in content:
        if str(key).replace("-", "_") not in valid:
            close = difflib.get_close_matches(str(key), valid, 1, 0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
            raise UsageError(f"{path}: unknown option {key!r}{hint}")
    return yaml.safe_dump({str(k).replace("-", "_"): v for k, v in content.items()})


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
            if name.replace("-", "_") in bools and not eq and (
                following is None or following.lower() not in ("true", "false", "yes", "no", "1", "0")
            ):
                out.append("true")
        else:
            out.append(arg)
    return out


COMMANDS = {
    "finetune": (FinetuneConfig, "fine-tune a model on labelled data (writes a run folder)"),
    "distill": (DistillConfig, "distil fine-tuned teacher(s) into a smaller student (writes a run folder)"),
    "augment": (AugmentConfig, "write an augmented copy of a data file (TinyBERT-style)"),
    "evaluate": (EvaluateConfig, "evaluate a saved model on a dataset"),
    "search": (SearchConfig, "hyper-parameter search over finetune or distill options (Optuna)"),
    "merge": (MergeConfig, "fold a LoRA or BitFit adapter into its base model (plain model folder)"),
    "predict": (PredictConfig, "predict labels for texts (JSONL out)"),
    "prune": (PruneConfig, "remove attention heads, FFN neurons or weights (writes a run folder)"),
    "export": (ExportConfig, "export a model to ONNX, checked against PyTorch (ONNX folder)"),
    "quantize": (QuantizeConfig, "int8-quantize a model (ONNX Runtime dynamic/static, or torchao)"),
    "bench": (BenchConfig, "measure size, FLOPs, latency, throughput and memory of models side by side"),
    "report": (ReportConfig, "write report.html + report.md (plots) for pipeline runs"),
    "run": (PipelineConfig, "run a recipe: teacher → students → prune → int8 → evaluate → bench → report"),
    "serve": (ServeConfig, "serve a model over HTTP: /predict (micro-batched), /health, /metrics, a playground"),
}
# options that are also taken as positional arguments: class → (field, nargs, help)
POSITIONAL = {
    PredictConfig: ("texts", "*", "texts to classify (a tab separates the two texts of a pair)"),
    BenchConfig: ("models", "*", "models to measure (the first is the baseline)"),
    ReportConfig: ("runs", "*", "pipeline run folders"),
    PipelineConfig: ("recipe", "?", "recipe YAML file (see recipes/)"),
}


def build_parser() -> ArgumentParser:
    parser = Parser(prog="distilkit", description="distilkit: fine-tune, distil, compress and evaluate BERT models.")
    parser.add_argument("--version", action="version", version=f"distilkit {__version__}")
    subcommands = parser.add_subcommands(dest="command")
    for name, (cls, help_text) in COMMANDS.items():
        sub = Parser(prog=f"distilkit {name}", description=cls.__doc__.split("\n")[0])
        sub.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below")
        skip = set()
        if cls in POSITIONAL:  # e.g. `distilkit predict "some text"`, `distilkit bench runs/a runs/b`
            field_name, nargs, help_line = POSITIONAL[cls]
            skip = {field_name}
            sub.add_argument(field_name, nargs=nargs, help=help_line)
        sub.add_class_arguments(cls, nested_key=None, skip=skip, fail_untyped=True, sub_configs=False)
        subcommands.add_subcommand(name, sub, help=help_text)
    return parser


def parse(argv: list[str]) -> tuple[str, object, dict]:
    """Parse argv into (command, config dataclass, resolved dict for config.yaml)."""
    parser = build_parser()
    if argv and argv[0] in COMMANDS:
        cls = COMMANDS[argv[0]][0]
        if argv[0] == "serve" and len(argv) > 1 and not argv[1].startswith("-"):
            argv = [argv[0], "--model", *argv[1:]]  # distilkit serve RUN_OR_MODEL [options]
        argv = [argv[0]] + _normalise_argv(argv[1:], cls)
        for i, arg in enumerate(argv[:-1]):
            if arg == "--config":
                argv[i + 1] = _check_config_file(argv[i + 1], cls, parser)
    ns = parser.parse_args(argv)
    command = ns.command
    cls = COMMANDS[command][0]
    values = ns[command]
    kwargs = {f.name: values.get(f.name, f.default) for f in dataclasses.fields(cls)}
    config = cls(**kwargs)
    return command, config, dataclasses.asdict(config)


# command → (module, function); commands that write a run folder also get the resolved options for config.yaml
RUNNERS = {
    "finetune": ("distilkit.finetune", "finetune"),
    "distill": ("distilkit.distill.command", "distill"),
    "augment": ("distilkit.distill.augment_cli", "augment"),
    "search": ("distilkit.search", "search"),
    "merge": ("distilkit.adapters.merge", "merge"),
    "evaluate": ("distilkit.evaluate.evaluator", "evaluate"),
    "predict": ("distilkit.predict", "predict"),
    "prune": ("distilkit.compress.prune", "prune"),
    "export": ("distilkit.compress.export", "export"),
    "quantize": ("distilkit.compress.quantize", "quantize"),
    "bench": ("distilkit.evaluate.bench", "bench"),
    "report": ("distilkit.evaluate.report", "report"),
    "run": ("distilkit.pipeline", "run_pipeline"),
    "serve": ("distilkit.serve.command", "serve"),
}
WITH_RESOLVED = ("finetune", "distill", "prune")


def run(argv: list[str]) -> object:
    """Parse and run one command; raises DistilkitError for user errors."""
    import importlib

    command, config, resolved = parse(argv)
    module, function = RUNNERS[command]
    runner = getattr(importlib.import_module(module), function)
    return runner(config, resolved) if command in WITH_RESOLVED else runner(config)


def _errors_only(record) -> bool:
    import logging

    return record.levelno >= logging.ERROR


def quiet_library_logs() -> None:
    """Silence import-time noise that says nothing to a distilkit user: transformers imports torchao when it is
    installed, and torchao logs its missing CUDA kernels and a torch deprecation at import."""
    import logging

    for name in ("torchao", "torch.utils._pytree"):
        # a filter, not setLevel: torch's logging setup resets the levels of its loggers later;
        # one shared function, so calling main() many times (tests) does not pile up filters
        logger = logging.getLogger(name)
        if _errors_only not in logger.filters:
            logger.addFilter(_errors_only)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_library_logs()
    if not argv:
        build_parser().print_help()
        sys.exit(2)
    try:
        run(argv)
    except DistilkitError as err:
        print(f"distilkit: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("distilkit: interrupted; rerun with --resume to continue a training run", file=sys.stderr)
        sys.exit(130)
