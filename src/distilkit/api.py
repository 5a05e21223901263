"""distilkit from Python: one function per command, and the helpers one's own training code needs.

    import distilkit
    teacher = distilkit.finetune(model="minilm-l6", data="train.csv", output="runs/teacher", epochs=3)
    student = distilkit.distill(teacher=teacher.folder, data="train.csv", student="3", output="runs/student")
    int8 = distilkit.quantize(model=student.folder, output="runs/student-int8")
    print(distilkit.evaluate(model=int8, data="test.csv")["accuracy"])

Each command function takes the command's options as keyword arguments, with the names, types, defaults and
checks of the CLI (the config classes behind `distilkit <command> --help`; a wrong name is a TypeError naming the
nearest right one), returns its result instead of printing it, and raises `DistilkitError` (the CLI's one-line
message) instead of exiting. The CLI is a thin layer over the same runners, so the two cannot drift apart.
`data=` also takes a `datasets.Dataset`, `DatasetDict` or a list of row dicts; `model=`, `teacher=` and `models=`
also take a loaded model: a `(model, tokenizer)` pair, a transformers pipeline, or a model loaded from a folder
that holds its tokenizer (saved to a temporary folder for the command, removed afterwards).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar, Union, get_args, get_origin

from distilkit.errors import DistilkitError


@dataclass(frozen=True)
class RunResult:
    """A finished run folder (finetune, distill, prune): where it is, its model folder, its metrics.json."""

    folder: Path
    metrics: dict[str, Any]

    @property
    def model(self) -> Path:
        """The model folder inside the run: a plain Hugging Face model folder (or an adapter)."""
        return self.folder / "model"

    def push_to_hub(self, repo_id: str, **options: Any) -> dict[str, Any]:
        """Upload the run's model folder (its model files and card, nothing else) to the Hub repo `repo_id`;
        `options` are push's (private, revision, token, dry_run, message)."""
        return push(model=str(self.folder), repo_id=repo_id, **options)


@dataclass(frozen=True)
class SearchResult:
    """A finished hyper-parameter search: its folder (trials.csv, one run folder per trial) and the best options."""

    folder: Path
    best: dict[str, Any]


def _run_result(folder: Path) -> RunResult:
    return RunResult(Path(folder), json.loads((Path(folder) / "metrics.json").read_text()))


# ---- building a config from keyword arguments ---------------------------------------------------------------


def _accepts(value: Any, hint: Any) -> bool:
    """Whether `value` fits the type hint of a config field (None for optional fields; ints for floats)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin is Union:
        return any(_accepts(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, dict):
        return isinstance(value, origin)
    return True


def _type_name(hint: Any) -> str:
    """A type hint in words, for the error line: "true or false", "an integer", "one of kd, tinybert", ..."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union:
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (
            " (or None)" if type(None) in args else ""
        )
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _check_data(value: Any) -> None:
    """data= may be a path or name (text), a datasets.Dataset or DatasetDict, or a list of row dicts."""
    if value is None or isinstance(value, str) or hasattr(value, "num_rows") or hasattr(value, "column_names"):
        return
    if isinstance(value, (list, tuple)) and value and all(isinstance(row, dict) for row in value):
        return
    raise DistilkitError(
        f"data={type(value).__name__}: give a file or folder path, a built-in dataset name, a datasets.Dataset or "
        "DatasetDict, or a non-empty list of row dicts such as [{'text': ..., 'label': ...}]"
    )


def _plain(value: Any) -> Any:
    """Paths as the strings the config fields hold; a tuple as a list."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _hugging_face_names(command: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with Hugging Face's names (learning_rate, output_dir, ...) replaced by the command's own."""
    from distilkit.cli import COMMAND_TABLE
    from distilkit.option_aliases import resolve_mapping

    return resolve_mapping(options, [f.name for f in dataclasses.fields(COMMAND_TABLE[command].config)])


def build_config(command: str, options: dict[str, Any]) -> Any:
    """The command's config dataclass from keyword options: Hugging Face's names taken as the CLI takes them
    (learning_rate=...), unknown names a TypeError naming the nearest option, values of the wrong type a
    DistilkitError like the CLI's, ranges checked by the config itself."""
    from distilkit.cli import COMMAND_TABLE, _closest

    cls = COMMAND_TABLE[command].config
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    options = _hugging_face_names(command, options)
    for name in options:
        if name not in fields:
            near = _closest(name, list(fields))
            hint = f"; did you mean {near!r}?" if near else ""
            raise TypeError(f"distilkit.{command}() got an unexpected keyword argument {name!r}{hint}")
    values = {name: _plain(value) for name, value in options.items()}
    for name, value in values.items():
        if name == "data":
            _check_data(value)  # besides a path: in-memory data, read by the data layer
        elif not _accepts(value, hints[name]):
            raise DistilkitError(f"--{name.replace('_', '-')} {value!r}: expected {_type_name(hints[name])}")
    return cls(**values)


# Commands that write a model folder: their functions also take push_to_hub="ORG/NAME"
PUSHED = ("finetune", "distill", "prune", "merge", "export", "quantize")


def _call_and_push(command: str, options: dict[str, Any]) -> Any:
    """Run a command that writes a model folder; with push_to_hub="ORG/NAME", push that folder once it is finished
    (the repo id is checked first, so a bad one costs no training)."""
    from distilkit.hub.cards import valid_repo_id

    repo_id = options.pop("push_to_hub", None)
    if repo_id is not None and not (isinstance(repo_id, str) and valid_repo_id(repo_id)):
        raise DistilkitError(f"push_to_hub={repo_id!r}: give the Hub repo as ORG/NAME, e.g. my-org/bbc-student")
    folder = _call(command, options)
    if repo_id is not None:
        push(model=str(folder), repo_id=repo_id)
    return folder


def _call(command: str, options: dict[str, Any]) -> Any:
    """Run one command from Python: build its config, run its runner with results returned, not printed."""
    import importlib

    from distilkit.cli import COMMAND_TABLE
    from distilkit.config import options_of
    from distilkit.console import results_returned
    from distilkit.in_memory_models import MODEL_OPTIONS, describe_models, models_on_disk
    from distilkit.noise import quiet_library_logs

    quiet_library_logs()
    options = _hugging_face_names(command, options)  # model_name_or_path=<a loaded model> is a model too
    with models_on_disk(options) as on_disk:
        config = build_config(command, on_disk)
        resolved = options_of(config)
        for name in MODEL_OPTIONS:  # config.yaml names a loaded model, not the temporary folder it was saved to
            if on_disk.get(name) is not options.get(name):
                resolved[name] = describe_models(options[name])
        module, function = COMMAND_TABLE[command].runner.split(":")
        with results_returned():
            return getattr(importlib.import_module(module), function)(config, resolved)


F = TypeVar("F", bound=Callable[..., Any])


def _signed(command: str) -> Callable[[F], F]:
    """Give a command function the keyword signature of its config class (help(), IDEs and notebooks show it)."""

    def decorate(fn: F) -> F:
        from distilkit.cli import COMMAND_TABLE

        cls = COMMAND_TABLE[command].config
        hints = typing.get_type_hints(cls)
        keywords = [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
            if f.default is not dataclasses.MISSING
            else inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name])
            for f in dataclasses.fields(cls)
        ]
        if command in PUSHED:  # not an option of the CLI command: `distilkit push` does it there
            hub = inspect.Parameter("push_to_hub", inspect.Parameter.KEYWORD_ONLY, default=None)
            keywords.append(hub.replace(annotation=typing.Optional[str]))
        signature = inspect.Signature(keywords, return_annotation=inspect.signature(fn).return_annotation)
        fn.__signature__ = signature  # type: ignore[attr-defined]
        fn.__doc__ = (fn.__doc__ or "") + f"\n\nOptions: those of `distilkit {command} --help`, as keyword arguments."
        if command in PUSHED:
            fn.__doc__ += ' push_to_hub="ORG/NAME" then uploads the model folder (as `distilkit push` does).'

        return fn

    return decorate


# ---- one function per command ----------------------------------------------------------------------------------


@_signed("finetune")
def finetune(**options: Any) -> RunResult:
    """Fine-tune a model (teacher or student) on labelled data; returns its run folder."""
    return _run_result(_call_and_push("finetune", options))


@_signed("distill")
def distill(**options: Any) -> RunResult:
    """Distil fine-tuned teacher(s) into a smaller student; returns its run folder."""
    return _run_result(_call_and_push("distill", options))


@_signed("augment")
def augment(**options: Any) -> Path:
    """Write an augmented copy of a data file (TinyBERT-style word replacement); returns the file."""
    return Path(_call("augment", options))


@_signed("evaluate")
def evaluate(**options: Any) -> dict[str, Any]:
    """Evaluate a saved model on a dataset; returns the metrics (accuracy, per-class report, confusion matrix...)."""
    return dict(_call("evaluate", options))


@_signed("predict")
def predict(**options: Any) -> list[dict[str, Any]]:
    """Predict labels for `texts=[...]` (or `file=`); returns one dict per text, as the CLI's JSONL lines."""
    if isinstance(options.get("texts"), str):
        options["texts"] = [options["texts"]]
    return list(_call("predict", options))


@_signed("prune")
def prune(**options: Any) -> RunResult:
    """Remove attention heads, FFN neurons or weights; returns the pruned model's run folder."""
    return _run_result(_call_and_push("prune", options))


@_signed("export")
def export(**options: Any) -> Path:
    """Export a model to ONNX, checked against PyTorch; returns the ONNX folder."""
    return Path(_call_and_push("export", options))


@_signed("quantize")
def quantize(**options: Any) -> Path:
    """int8-quantize a model (ONNX Runtime dynamic/static, or torchao); returns the quantized folder."""
    return Path(_call_and_push("quantize", options))


@_signed("merge")
def merge(**options: Any) -> Path:
    """Fold a LoRA or BitFit adapter into its base model; returns the plain model folder."""
    return Path(_call_and_push("merge", options))


@_signed("bench")
def bench(**options: Any) -> dict[str, Any]:
    """Measure size, FLOPs, latency, throughput and memory of `models=[...]` side by side; returns the table."""
    return dict(_call("bench", options))


@_signed("report")
def report(**options: Any) -> Path:
    """Write report.html and report.md for pipeline `runs=[...]`; returns the folder they are in."""
    return Path(_call("report", options))


@_signed("run")
def run(**options: Any) -> Path:
    """Run a `recipe=` file: teacher → students → prune → int8 → evaluate → bench → report; returns its folder."""
    return Path(_call("run", options))


@_signed("search")
def search(**options: Any) -> SearchResult:
    """Hyper-parameter search over finetune or distill options; returns its folder and the best options."""
    import yaml

    folder = Path(_call("search", options))
    return SearchResult(folder, yaml.safe_load((folder / "best.yaml").read_text()))


@_signed("serve")
def serve(**options: Any) -> None:
    """Serve a model over HTTP until stopped (Ctrl-C, SIGTERM). To embed the app in your own ASGI server instead:
    `distilkit.serving.app.create_app(ServeConfig(model=...))`."""
    _call("serve", options)


@_signed("push")
def push(**options: Any) -> dict[str, Any]:
    """Upload a model folder's model files (weights, config, tokenizer, card; nothing else) to the Hugging Face Hub;
    `dry_run=True` only lists them. Returns the repo, the folder, the files and the commit URL."""
    return dict(_call("push", options))


# ---- for one's own training code -------------------------------------------------------------------------------


def build_student(teacher: Any, spec: str | int = "half", seed: int = 42) -> Any:
    """A student built from `teacher` (a model with a task head, or a bare encoder), as `distill --student` builds
    it: a layer count (`3`: every other layer of a 6-layer teacher, DistilBERT's initialisation), `"half"`,
    `"layers:0,2,4"`, a size spec such as `"4L-312H-12A-1200F"` (random init, TinyBERT-4's shape), or a pretrained
    model folder / hub id. A student copied from teacher layers remembers them, so `DistillationTrainer` pairs its
    layers with the ones it came from."""
    from distilkit.distillation.planning import teacher_task
    from distilkit.distillation.students import build_student as build

    task = teacher_task(teacher)[0]
    student, _ = build(str(spec), teacher, task if task != "general" else "sequence-classification", seed)
    return student


def capture_attention(*models: Any) -> None:
    """Let `models` report their pre-softmax attention scores and Q/K/V inside a `recording()` block (their outputs
    stay the same): what distilkit's attention and MiniLM losses read. DistillationTrainer does this itself."""
    from distilkit.distillation import capture

    for model in models:
        capture.enable(model)


def recording(scores: bool = True, qkv: bool = False) -> Any:
    """`with distilkit.recording() as rec: model(**batch)` records, layer by layer, the attention scores
    (`rec.attention_scores`, each [batch, heads, query, key]) and, with `qkv=True`, Q/K/V (`rec.queries_keys_values`)
    of the models set up with `capture_attention`."""
    from distilkit.distillation import capture

    return capture.recording(scores=scores, qkv=qkv)


COMMAND_FUNCTIONS = {
    "finetune": finetune,
    "distill": distill,
    "augment": augment,
    "evaluate": evaluate,
    "search": search,
    "merge": merge,
    "predict": predict,
    "prune": prune,
    "export": export,
    "quantize": quantize,
    "bench": bench,
    "report": report,
    "run": run,
    "serve": serve,
    "push": push,
}
