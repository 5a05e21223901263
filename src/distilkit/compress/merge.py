"""`distilkit merge`: fold a LoRA (or BitFit) adapter into its base and save a plain model folder."""

from __future__ import annotations

from pathlib import Path

from distilkit import adapters
from distilkit.compress.options import MergeConfig
from distilkit.console import show
from distilkit.errors import DistilkitError
from distilkit.hub.card_exports import merge_card
from distilkit.inference.loading import load_trained
from distilkit.models import resolve_model
from distilkit.runs import RunFolder


def merge(cfg: MergeConfig, resolved: dict | None = None) -> Path:
    output = Path(cfg.output) if cfg.output else None
    if output is None:
        raise DistilkitError("no --output given: pass the folder for the merged model")
    run = RunFolder(str(output), cfg.overwrite, resumable=False, what="merged model")
    run.check()
    meta = adapters.read_meta(resolve_model(cfg.model))
    if meta is None:
        raise DistilkitError(
            f"{cfg.model}: not an adapter folder (no {adapters.META_FILE}); it is already a plain model"
        )
    method = adapters.get_method(meta["method"])
    if method.merge is None:
        raise DistilkitError(
            f"{cfg.model}: a {meta['method']} adapter cannot be merged into the weights (only lora and bitfit can); "
            "evaluate, predict and serve load base + adapter directly"
        )
    trained = load_trained(cfg.model)
    merged = method.merge(trained.model)
    work = run.prepare()
    try:
        merged.save_pretrained(str(work))
        trained.tokenizer.save_pretrained(str(work))
        merge_card(work, cfg.model, meta)
        run.finish()
    except BaseException as err:
        run.fail(err)
    show(f"merged {meta['method']} adapter into {meta['base']} → {output} (a plain model folder)")
    return output
