"""Text normalisation shared by the rules, the cache key and the guard."""

from __future__ import annotations

import re
import unicodedata

_SLACK_MARKUP = re.compile(r"<(?:[@#!][^>|]*)(?:\|([^>]*))?>")
_SLACK_LINK = re.compile(r"<(https?://[^>|]+)(?:\|([^>]*))?>")
_EMOJI = re.compile(r":[a-z0-9_+\-]+:")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def plain(text: str) -> str:
    """Slack mrkdwn and typography folded to plain text, keeping case and punctuation."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _SLACK_MARKUP.sub(lambda m: m.group(1) or "", text)
    text = _EMOJI.sub(" ", text)
    text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    text = re.sub(r"(?m)^\s*(?:>|•|-|\*)\s+", "", text)
    text = re.sub(r"[*_~`]", "", text)
    return " ".join(text.split())


def normalised(text: str) -> str:
    """Lower-case plain text: what cue patterns and cache keys see."""
    return plain(text).lower()
