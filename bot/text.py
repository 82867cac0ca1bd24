"""Text in and out of Slack: clean what reps send, make what we send safe.

Incoming text carries Slack's markup (`<@U1>`, `<https://x|label>`, `&amp;`); the engine wants
the words. Outgoing text comes from a model or from the rep's own message, so it is escaped for
mrkdwn (`&`, `<`, `>`) and every way to ping people (`<!channel>`, `<!here>`, `<!everyone>`,
`@channel`, `<@U…>`, `<!subteam^…>`) is neutralised before it reaches Slack.
"""

from __future__ import annotations

import html
import re

# A word joiner (U+2060): invisible, keeps "@channel" readable but no longer a keyword.
WORD_JOINER = "\u2060"

_SLACK_TOKEN = re.compile(r"<([^<>]*)>")
_AT_WORD = re.compile(r"(?<![\w.+-])@(?=\w)")
# The marker a cut leaves behind, visible in every place we trim.
CUT_MARK = "… ✂"


def clean_incoming(text: str, bot_user_id: str | None = None) -> str:
    """What a rep wrote, without the bot's mention and with Slack markup turned into words."""

    def token(match: re.Match[str]) -> str:
        inner = match.group(1)
        if not inner:
            return ""
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            user = target[1:]
            if bot_user_id and user == bot_user_id:
                return ""
            return f"@{label or user}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            keyword = target[1:].split("^", 1)[0]
            return f"@{label.lstrip('@') or keyword}"
        return label or target

    text = _SLACK_TOKEN.sub(token, text or "")
    return html.unescape(text).strip()


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn parses (`&`, `<`, `>`) and defuse @-keywords.

    After this, `<!channel>` or `<@U123>` from a model can only be shown, never acted on."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return neutralise_at(escaped)


def neutralise_at(text: str) -> str:
    """`@channel`, `@here`, `@everyone`, `@someone`: break the keyword with a word joiner.

    Only an @ that starts a word: e-mail addresses (`ann@acme.com`) are left alone."""
    return _AT_WORD.sub("@" + WORD_JOINER, text)


def plain(text: str) -> str:
    """For plain_text objects (headers, buttons): Slack shows them as-is, so only @-keywords
    need defusing."""
    return neutralise_at(text)


def no_fence(text: str) -> str:
    """Keep a code block closed: a ``` inside the text would end it early."""
    return text.replace("```", "`\u200b`\u200b`")


def truncate(text: str, limit: int, mark: str = CUT_MARK) -> str:
    """At most `limit` characters; a cut text ends with a visible marker. Never splits an
    escape sequence (`&amp;`) and prefers to cut at a space."""
    if len(text) <= limit:
        return text
    room = max(limit - len(mark), 0)
    cut = text[:room]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and room - amp <= 6:
        cut = cut[:amp]
    space = cut.rfind(" ")
    if space >= room * 0.8:
        cut = cut[:space]
    return (cut.rstrip() + mark)[:limit]


class MrkdwnStream:
    """Text arriving in pieces, escaped as `escape_mrkdwn` escapes it whole.

    Escaping is per character except an @ that starts a keyword, which depends on the next
    character: a trailing @ waits for the next piece (or `rest()`)."""

    __slots__ = ("_raw", "_sent")

    def __init__(self) -> None:
        self._raw = ""
        self._sent = 0

    def feed(self, piece: str) -> str:
        self._raw += piece
        return self._emit(escape_mrkdwn(self._raw.rstrip("@")))

    def rest(self) -> str:
        return self._emit(escape_mrkdwn(self._raw))

    def _emit(self, escaped: str) -> str:
        out = escaped[self._sent :]
        self._sent = len(escaped)
        return out
