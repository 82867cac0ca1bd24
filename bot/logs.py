"""Secrets never reach a log line: a filter on the handlers that masks known secret values and
anything shaped like a Slack token (`xoxb-…`, `xapp-…`) or an API key (`sk-…`), whatever
logger emitted it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_SLACK_TOKEN = re.compile(
    r"\b(xox[abposr]|xapp|xoxe(?:\.xox[bp])?)-[A-Za-z0-9-]+"
    r"|\b(sk(?:-ant|-proj)?)-[A-Za-z0-9_-]{8,}"
)
MASK = "***"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return _SLACK_TOKEN.sub(lambda m: f"{m.group(1) or m.group(2)}-{MASK}", text)

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
