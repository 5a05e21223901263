"""The "How to use" part of a model card: code that loads the folder as it is laid out.

Torch folders load with transformers (`pipeline`, `AutoModelFor...`); pruned folders carry their loader code, so
they need `trust_remote_code=True`; ONNX and int8 ONNX folders run with ONNX Runtime alone (model.onnx, config.json
for the labels, the tokenizer files); adapter folders load through distilkit (or merge them into a plain folder).
`NAME` stands for the folder, or its Hub repo id once pushed (`distilkit push`).
"""

from __future__ import annotations

AUTO_CLASSES = {
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
}
EXAMPLE = "Shares rose after the bank reported record profits."


def _python(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def _distilkit(name: str) -> str:
    return f'With distilkit: `distilkit predict --model {name} "{EXAMPLE}"`, or `distilkit serve {name}`.'


def transformers_usage(name: str, task: str, remote_code: bool = False, needs: str = "") -> str:
    """pipeline + Auto classes; `remote_code` for pruned folders; `needs` names an extra package (torchao)."""
    trust = ", trust_remote_code=True" if remote_code else ""
    if task == "general":
        code = f"""
from transformers import AutoModel, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{name}")
encoder = AutoModel.from_pretrained("{name}"{trust})  # a bare encoder: fine-tune it on a task first
hidden = encoder(**tokenizer(["{EXAMPLE}"], return_tensors="pt")).last_hidden_state
"""
        return _python(code) + f"\n\nFine-tune it with `distilkit finetune --model {name} --data ...`."
    pipe = "text-classification" if task == "sequence-classification" else "token-classification"
    auto = AUTO_CLASSES.get(task, "AutoModel")
    code = f"""
from transformers import {auto}, AutoTokenizer, pipeline

classifier = pipeline("{pipe}", model="{name}"{trust})  # NAME: this folder, or its Hub id once pushed
print(classifier("{EXAMPLE}"))

tokenizer = AutoTokenizer.from_pretrained("{name}")
model = {auto}.from_pretrained("{name}"{trust})
"""
    notes = []
    if remote_code:
        notes.append(
            "The pruned layers have shapes stock transformers classes cannot build; the folder carries the code "
            "that builds them (`modeling_distilkit_pruned.py`), hence `trust_remote_code=True`."
        )
    if needs:
        notes.append(f"Needs `{needs}` installed.")
    return "\n\n".join([_python(code), *notes, _distilkit(name)])


def onnx_usage(name: str, task: str) -> str:
    """ONNX Runtime, no torch: the graph takes the tokenizer's inputs and returns `logits`."""
    per = "per token" if task == "token-classification" else "per text"
    code = f"""
import numpy as np
import onnxruntime as ort
from transformers import AutoConfig, AutoTokenizer

folder = "{name}"  # this folder; from the Hub: huggingface_hub.snapshot_download("ORG/NAME")
tokenizer = AutoTokenizer.from_pretrained(folder)
labels = AutoConfig.from_pretrained(folder).id2label
session = ort.InferenceSession(f"{{folder}}/model.onnx", providers=["CPUExecutionProvider"])
wanted = {{i.name for i in session.get_inputs()}}
batch = tokenizer(["{EXAMPLE}"], padding=True, truncation=True, max_length=128, return_tensors="np")
logits = session.run(["logits"], {{k: v.astype(np.int64) for k, v in batch.items() if k in wanted}})[0]
print([labels[int(i)] for i in logits.argmax(-1).ravel()])  # one label {per}
"""
    return _python(code) + "\n\n" + _distilkit(name)


def adapter_usage(name: str, method: str) -> str:
    """An adapter needs its base model; distilkit finds it from `distilkit_adapter.json`."""
    merge = (
        f"`distilkit merge --model {name} --output merged` folds it into a plain model folder that transformers "
        "loads alone."
        if method in ("lora", "bitfit")
        else "This method cannot be merged into the weights; load it through distilkit."
    )
    return (
        f"A {method} adapter: the trained parameters alone, applied on top of the base model named in "
        f"`distilkit_adapter.json`.\n\n{_distilkit(name)} {merge}"
    )


def sentence_transformers_usage(name: str, remote_code: bool = False) -> str:
    """A sentence-transformers folder: vectors with `SentenceTransformer`, or with distilkit; `remote_code` for a
    pruned encoder (its shapes are rebuilt by the loader file beside it)."""
    trust = ", trust_remote_code=True" if remote_code else ""
    code = f"""
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{name}"{trust})  # NAME: this folder, or its Hub id once pushed
vectors = model.encode(["{EXAMPLE}", "The bank's profits lifted its shares."])
print(model.similarity(vectors, vectors))
"""
    return _python(code)


def onnx_embedding_usage(name: str) -> str:
    """ONNX Runtime alone: the graph's `sentence_embedding` output is pooled and normalised already."""
    code = f"""
import onnxruntime as ort
from transformers import AutoTokenizer

folder = "{name}"  # this folder; from the Hub: huggingface_hub.snapshot_download("ORG/NAME")
tokenizer = AutoTokenizer.from_pretrained(folder)
session = ort.InferenceSession(f"{{folder}}/model.onnx")
batch = tokenizer(["{EXAMPLE}"], padding=True, truncation=True, return_tensors="np")
feed = {{i.name: batch[i.name].astype("int64") for i in session.get_inputs()}}
vectors = session.run(["sentence_embedding"], feed)[0]
"""
    note = (
        'sentence-transformers loads the folder too, with `SentenceTransformer("NAME", backend="onnx")` (which needs '
        "its ONNX extra, optimum)."
    )
    return "\n\n".join([_python(code), note, f"With distilkit: `distilkit evaluate --model {name} --data bbc-news`."])
