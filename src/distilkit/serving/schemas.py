"""Request and response bodies of the server: they validate input and make the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field

TextOrPair = Union[str, tuple[str, str]]


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"texts": ["Shares rose after the bank reported record profits"]},
                {"texts": [["A man is playing a guitar.", "Someone plays music."]]},
            ]
        },
    )

    texts: list[TextOrPair] = Field(
        min_length=1,
        description="Texts to predict, or [text, text_pair] pairs for a pair task. The server's "
        "limits on texts per request and characters per text are in GET /metadata.",
    )


class EmbedRequest(BaseModel):
    """text-embeddings-inference's /embed body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": ["The bank raised its rates.", "Interest rates went up."]}]},
    )

    inputs: Union[str, list[str]] = Field(description="A text, or a list of texts; each gets one vector")
    normalize: bool = Field(True, description="Scale each vector to unit length")
    truncate: bool = Field(False, description="Cut texts over the model's maximum length instead of refusing them")


class Entity(BaseModel):
    label: str = Field(description="Entity type: the X of B-X/I-X tags")
    text: str = Field(description="The entity as it appears in the text: text[start:end]")
    start: int = Field(description="Character offset of the entity's first character")
    end: int = Field(description="Character offset just after the entity's last character")
    score: float = Field(description="Mean probability of the entity's word tags")


class Prediction(BaseModel):
    text: str
    text_pair: Optional[str] = None
    truncated: bool = Field(description="The text had more tokens than max_length: only its start was read")
    label: Optional[str] = Field(None, description="Sequence classification: the most likely label")
    score: Optional[float] = Field(None, description="Probability of the label, or the value of a regression")
    scores: Optional[dict[str, float]] = Field(None, description="Probability of each label (top_k when set)")
    tokens: Optional[list[str]] = Field(None, description="Token classification: the whitespace-separated words")
    tags: Optional[list[Optional[str]]] = Field(None, description="A tag per word (null: cut off by truncation)")
    entities: Optional[list[Entity]] = Field(
        None, description="B-X/I-X tags grouped into spans (empty for other tag sets)"
    )


class PredictResponse(BaseModel):
    model: str
    task: str
    backend: str
    latency_ms: float = Field(description="Time the server spent on this request, queueing included")
    predictions: list[Prediction]


class Health(BaseModel):
    status: str = Field(description="ready, loading, or stopping (503 unless ready)")


class Metadata(BaseModel):
    model: str
    task: str
    labels: list[str]
    regression: bool
    backend: str
    size_bytes: int = Field(description="Bytes of the model's weight files")
    parameters: Optional[int] = Field(None, description="Parameter count (torch backend)")
    quantization: Optional[dict] = Field(None, description="How an ONNX model was quantized (null: fp32)")
    max_length: int = Field(description="Tokens read per text; longer texts are truncated")
    dimensions: Optional[int] = Field(None, description="Embedding models: the width of a vector")
    max_texts: int = Field(description="Most texts per request (more: 413)")
    max_chars: int = Field(description="Most characters per text (more: 413)")
    max_body: int = Field(description="Most bytes per request body (more: 413)")
    max_batch: int
    max_wait_ms: float
    max_queue: int
    api_key_required: bool


class Error(BaseModel):
    detail: str


ERRORS = {
    400: {
        "model": Error,
        "description": "The body could not be read as JSON (malformed JSON, or bytes that are not UTF-8)",
    },
    401: {"model": Error, "description": "No API key, or a wrong one"},
    413: {
        "model": Error,
        "description": "Too many texts in the request, a text too long, or a body over max_body "
        "bytes (refused before it is parsed)",
    },
    415: {"model": Error, "description": "The body is not sent as JSON: use Content-Type: application/json"},
    503: {
        "model": Error,
        "description": "The queue is full or the server is stopping; retry after Retry-After seconds",
    },
}
