"""The package layout reads like the pipeline, and imports follow its direction (CONTRIBUTING.md: Layout).

A module may import distilkit modules of its own layer or of earlier layers only, at module level or inside a
function: data never reaches for training, distillation never for compression, and so on.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "distilkit"

# Earlier layers first. The top-level name is the package (or the loose module) under distilkit/.
LAYERS = [
    # core: the error type, quiet imports, result printing, options, how files are written, size estimates, runs
    {"errors", "noise", "console", "option_rules", "config", "option_aliases", "option_groups", "config_loader"}
    | {"files", "budget", "runs"},
    {"data"},  # files and built-in datasets → HF datasets, labels, tokenization
    {"models"},  # loading any encoder, layers, pruned shapes
    {"embeddings"},  # embedding models: an encoder + pooling, sentence-transformers folders, retrieval metrics
    {"adapters"},  # PEFT methods (what a model folder may carry)
    {"inference"},  # loading trained models (torch or ONNX), predicting
    {"hub"},  # model cards of every model folder, and push (model files only) to the Hugging Face Hub
    {"evaluation"},  # metrics, evaluate, bench, report
    {"losses"},  # the loss registry and formulas
    {"training"},  # finetune, Trainer set-up, adversarial, continual
    {"distillation"},  # students, layer maps, capture, cache, the trainer, augmentation, distill
    {"compress"},  # pruning, ONNX export, int8, merging adapters
    {"serving"},  # the HTTP server
    {"pipeline"},  # distilkit run (recipes) and search: commands that run other commands
    # the command table, the same commands as Python functions, and the package's public face (its __init__)
    {"cli", "api", "in_memory_models", "__main__", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def top_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported distilkit module) for every import in the file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "distilkit":
            names = [f"distilkit.{a.name}" for a in node.names] if node.module == "distilkit" else [node.module]
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "distilkit"]
    return found


def test_every_package_has_a_layer():
    tops = {
        p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert tops <= set(LAYER), f"add these to LAYERS (and CONTRIBUTING.md's layout table): {sorted(tops - set(LAYER))}"


def test_imports_follow_the_pipeline():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        here = LAYER[top_name(module)]
        for line, target in imports(path):
            name = top_name(target)
            if name == "__version__":
                continue
            if LAYER.get(name, -1) > here:
                wrong.append(f"{path.relative_to(SRC.parent)}:{line} imports {target} (a later layer)")
    assert not wrong, "\n".join(wrong)
