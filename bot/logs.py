"""Secrets never reach a log line: a filter on the handlers that masks known secret values and
anything shaped like a Slack token (`xoxb-…`, `xapp-…`) or a provider's API key (the shapes of
engine/llm/providers, `sk-…`), whatever logger emitted it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from engine.llm.providers import PROVIDERS

_SLACK_TOKEN = r"\b(xox[abposr]|xapp|xoxe(?:\.xox[bp])?)-[A-Za-z0-9-]+"
# Slack's token shapes and every provider's key shape (the registry's), one alternative each;
# each has one group, the prefix left visible. Earlier rows win where shapes overlap.
_SHAPES = re.compile(
    "|".join(
        f"(?:{shape})" for shape in (_SLACK_TOKEN, *(p.secret_shape for p in PROVIDERS)) if shape
    )
)
MASK = "***"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return _SHAPES.sub(lambda m: f"{m.group(m.lastindex or 0)}-{MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_redaction(secrets: Iterable[str | None], logger: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of `logger` (the root logger by default): handler
    filters see records from every logger, where logger filters see only their own."""
    target = logger or logging.getLogger()
    redact = RedactSecrets(secrets)
    for handler in target.handlers:
        handler.addFilter(redact)
