"""Tiny randomly initialised encoders of every family in the support matrix (2 layers, hidden 32, 4 heads).

Each is saved with the tests' WordPiece tokenizer: the matrix tests what distilkit does with each architecture's
layers, not its tokenizer. Families without token type embeddings get a tokenizer that does not emit
`token_type_ids`, as their own tokenizers do. Special token ids are set to the WordPiece vocabulary's.
"""

from __future__ import annotations

from pathlib import Path

from conftest import _vocab

HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 4, 64, 160
SPECIAL = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3)
NO_TOKEN_TYPES = ("roberta", "xlm-roberta", "distilbert", "modernbert", "mpnet")


def _config(family: str):
    from transformers import (
        AlbertConfig,
        BertConfig,
        DebertaV2Config,
        DistilBertConfig,
        ElectraConfig,
        ModernBertConfig,
        MPNetConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    vocab = len(_vocab())
    common = dict(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=POSITIONS,
        **SPECIAL,
    )
    if family == "distilbert":
        return DistilBertConfig(
            vocab_size=vocab,
            dim=HIDDEN,
            n_layers=LAYERS,
            n_heads=HEADS,
            hidden_dim=FFN,
            max_position_embeddings=POSITIONS,
        )
    if family == "deberta-v2":  # DeBERTa-v3's layout: shared position projections, log buckets, p2c + c2p
        return DebertaV2Config(
            **common,
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            position_buckets=16,
            max_relative_positions=-1,
            share_att_key=True,
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            type_vocab_size=2,
        )
    if family == "modernbert":  # layer 0 global attention, layer 1 local (window 16)
        return ModernBertConfig(
            **common,
            cls_token_id=2,
            sep_token_id=3,
            global_attn_every_n_layers=2,
            local_attention=16,
        )
    classes = {
        "bert": BertConfig,
        "roberta": RobertaConfig,
        "xlm-roberta": XLMRobertaConfig,
        "electra": ElectraConfig,
        "albert": AlbertConfig,
        "mpnet": MPNetConfig,
    }
    extra = {"embedding_size": 16} if family == "albert" else {}
    return classes[family](**common, **extra)


FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert", "albert", "mpnet")


def build_family_model(folder: Path, family: str) -> Path:
    """Save a tiny random `family` encoder (bare, no task head) and a WordPiece tokenizer to `folder`."""
    import torch
    from transformers import AutoModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    names = ["input_ids", "attention_mask"] + ([] if family in NO_TOKEN_TYPES else ["token_type_ids"])
    tokenizer = BertTokenizerFast(
        vocab={w: i for i, w in enumerate(_vocab())}, do_lower_case=True, model_input_names=names
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    AutoModel.from_config(_config(family)).save_pretrained(folder)
    return folder


def build_family_classifier(tmp_path: Path, family: str):
    """A tiny random `family` classifier with topic_rows' 3 labels, saved to tmp_path/family; returns (folder, the
    model in eval mode). Its position bias (where it has one) and head are drawn larger than the default init's,
    so that logit comparisons at 1e-4 see them."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = build_family_model(tmp_path / family, family)
    labels = {0: "food", 1: "music", 2: "sport"}  # conftest.topic_rows' labels
    config = AutoConfig.from_pretrained(folder, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():  # the default init's position bias and head are too small for a 1e-4 tolerance to see
        for module in model.modules():
            if hasattr(module, "relative_attention_bias"):
                module.relative_attention_bias.weight.normal_(0, 1)
        for weight in (p for n, p in model.named_parameters() if n.startswith("classifier") and p.dim() == 2):
            weight.normal_(0, 1)
    model.save_pretrained(folder)
    return folder, model.eval()
