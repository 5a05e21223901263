"""distilkit: turn a large BERT-family model into a small, fast one you can ship."""

__version__ = "0.1.0"
