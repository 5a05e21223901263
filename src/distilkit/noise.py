"""Import-time noise of the libraries distilkit uses, silenced at its source.

transformers imports torchao when it is installed (distilkit's `quantize --method torchao` uses it), and torchao
logs its missing CUDA kernels ("Failed to load ...") and a torch deprecation at import. A logging filter, not a
level: torch's logging set-up resets its loggers' levels later. One shared filter function, so that calling this
many times (every `distilkit` command, every import) does not pile filters up.
"""

from __future__ import annotations

import logging

NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def quiet_library_logs() -> None:
    """Let only errors through the loggers of NOISY_LOGGERS."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _errors_only not in logger.filters:
            logger.addFilter(_errors_only)
