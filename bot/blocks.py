"""Block Kit: the coaching card, the stats reply, help and small notices.

Everything shown comes through `bot.text` (escaped, mentions defused) and every message is
kept inside Slack's limits: 3,000 characters a section, 2,000 a field, 10 fields, 150 a header,
50 blocks, and a budget of about 4,000 characters of text a message. Long parts are cut with a
visible marker; a card never fails with `invalid_blocks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.card import CardView, DealSummary, card_view, deal_text
from engine.model import Suggestion
from engine.stats import CacheReport, LlmReport, Percentiles, ReconcileReport, StatsReport
from engine.taxonomy import SITUATION_TITLES

from .text import CUT_MARK, escape_mrkdwn, no_fence, plain, truncate

Block = dict[str, Any]

SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FIELDS_PER_SECTION = 10
HEADER_LIMIT = 150
CONTEXT_ELEMENTS = 10
MAX_BLOCKS = 50
MESSAGE_BUDGET = 4000  # characters of text in one message, in practice
FALLBACK_TEXT_LIMIT = 3000

# action_ids, shared with the listeners
FEEDBACK_UP = "feedback_up"
FEEDBACK_DOWN = "feedback_down"
REGENERATE = "regenerate"
RESET_CONTEXT = "reset_context"
DEAL_SUMMARY = "deal_summary"
CARD_ACTIONS = (FEEDBACK_UP, FEEDBACK_DOWN, REGENERATE, DEAL_SUMMARY, RESET_CONTEXT)

STATS_SECTIONS = ("cache", "reconcile", "llm", "latency")
STATS_USAGE = (
    "Usage: `/agent-stats [cache|reconcile|llm|latency|all]`: cache hit rates, reconcile rate "
    "and triggers, provider wins/errors/p95, per-step latency. No argument means `all`."
)
HELP_TEXT = (
    "Paste what the prospect said (an email, a chat line, call notes) and I'll suggest a reply "
    "with a coaching tip. Mention me in a channel, DM me, or keep going in a thread I've answered."
)
FILE_HELP_TEXT = (
    "I can only read text so far: paste what the prospect said as a message and I'll suggest "
    "a reply."
)


@dataclass(frozen=True, slots=True)
class Message:
    """What goes to chat.postMessage / chat.update: notification text and blocks."""

    text: str
    blocks: list[Block]


# Card ------------------------------------------------------------------------------------


def card(s: Suggestion, *, regenerated_by: str | None = None) -> Message:
    v = card_view(s)
    headline = f"{v.title} · {v.confidence:.0%} confident"
    if v.also:
        headline += f" · also {v.also}"

    tip = truncate(escape_mrkdwn(v.tip), 500)
    play = truncate(escape_mrkdwn(v.play), 100)
    coaching = f"*Coaching tip:* {tip}\n*Play:* {play}"
    if v.next_question:
        coaching += f"\n*Ask next:* {truncate(escape_mrkdwn(v.next_question), 300)}"

    fields = [
        truncate(
            f"*{escape_mrkdwn(slot.title)}*"
            + (" 🆕" if slot.new else "")
            + f"\n{escape_mrkdwn(slot.value)}",
            120,
        )
        for slot in v.slots[:FIELDS_PER_SECTION]
    ]
    slots_title = "*Deal context*"
    if len(v.slots) > FIELDS_PER_SECTION:
        slots_title += f" (and {len(v.slots) - FIELDS_PER_SECTION} more)"

    notes = [truncate(escape_mrkdwn(note), 160) for note in v.notes][:3]
    if len(v.notes) > 3:
        notes.append(f"…and {len(v.notes) - 3} more notes")
    footer = _footer(v, regenerated_by)
    sources = truncate("📚 " + " · ".join(escape_mrkdwn(c) for c in v.sources), 300)

    # Everything but the reply has a fixed ceiling (about 3,000 characters at worst); the
    # reply gets the rest of the message budget, and never less than 1,000.
    used = min(len(headline), HEADER_LIMIT) + len(coaching) + sum(map(len, fields))
    used += sum(map(len, notes))
    used += len(footer) + len(sources) + 250  # labels, button texts, the confirm dialog
    reply_room = max(min(SECTION_LIMIT - 40, MESSAGE_BUDGET - used), 1000)
    reply = escape_mrkdwn(v.reply) or "_(no reply drafted)_"
    reply_text, cut = _fenced(reply, reply_room)

    blocks: list[Block] = [
        {"type": "header", "text": _plain(headline, HEADER_LIMIT)},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "*Suggested reply* (copy it from the box)"}],
        },
        _section(reply_text, block_id="reply"),
        _section(coaching, block_id="tip"),
    ]
    if cut:
        notes.insert(0, f"Message cut: the reply was {len(v.reply):,} characters {CUT_MARK}")
    if fields:
        blocks.append(
            {
                "type": "section",
                "block_id": "slots0",
                "text": {"type": "mrkdwn", "text": slots_title},
                "fields": [{"type": "mrkdwn", "text": f} for f in fields],
            }
        )
    else:
        blocks.append(
            _section("*Deal context:* nothing captured yet in this thread.", block_id="slots0")
        )
    if v.sources:
        blocks.append(_context([sources], block_id="sources"))
    if notes:
        blocks.append(_context([f"⚠️ {n}" for n in notes], block_id="notes"))
    blocks.append(_context([footer], block_id="footer"))
    blocks.append(card_actions(s))
    text = f"{v.title} ({v.confidence:.0%}): {escape_mrkdwn(v.reply)}"
    return Message(text=truncate(text, FALLBACK_TEXT_LIMIT), blocks=fit(blocks))


def card_actions(s: Suggestion) -> Block:
    return {
        "type": "actions",
        "block_id": "card_actions",
        "elements": [
            _button("👍 Useful", FEEDBACK_UP, s.id),
            _button("👎 Not useful", FEEDBACK_DOWN, s.id),
            _button("🔄 Regenerate", REGENERATE, s.id),
            _button("📋 Deal summary", DEAL_SUMMARY, str(s.key)),
            {
                **_button("Reset context", RESET_CONTEXT, str(s.key)),
                "style": "danger",
                "confirm": {
                    "title": {"type": "plain_text", "text": "Reset this thread?"},
                    "text": {
                        "type": "mrkdwn",
                        "text": "I'll forget the deal context captured in this thread "
                        "(pain, budget, competitor…). The messages stay.",
                    },
                    "confirm": {"type": "plain_text", "text": "Reset"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger",
                },
            },
        ],
    }


def _footer(v: CardView, regenerated_by: str | None) -> str:
    parts = [
        f"⏱ {v.latency_ms:,.0f} ms",
        f"cache: {v.cache}",
        escape_mrkdwn(", ".join(v.providers)),
    ]
    if v.offline:
        parts.append("offline fallback")
    if v.reconciled:
        parts.append("reconciled")
    if regenerated_by:
        parts.append(f"regenerated by <@{regenerated_by}>")
    return truncate(" · ".join(parts), 300)


def _fenced(escaped: str, room: int) -> tuple[str, bool]:
    """The reply as a code block (Slack shows a copy button), cut to fit `room` characters."""
    body = no_fence(escaped)
    if len(body) + 6 <= room:
        return f"```{body}```", False
    return f"```{truncate(body, room - 6)}```", True


def streamed_lead(situation: str | None) -> str:
    """The line a streamed reply starts with (markdown), before the reply's words."""
    if not situation:
        return "**Suggested reply:**\n\n"
    title = SITUATION_TITLES.get(situation, situation)
    return f"**{escape_mrkdwn(title)}** · suggested reply:\n\n"


def streamed_card(s: Suggestion) -> list[Block]:
    """The card's blocks to go under a reply that streamed: all but the reply and its label
    (the streamed text above them is the reply)."""
    full = card(s).blocks
    at = next(i for i, b in enumerate(full) if b.get("block_id") == "reply")
    return full[: at - 1] + full[at + 1 :]


# Stats ---------------------------------------------------------------------------------------


def stats_message(report: StatsReport, section: str) -> Message:
    wanted = STATS_SECTIONS if section == "all" else (section,)
    f = report.feedback
    blocks: list[Block] = [
        {"type": "header", "text": _plain("Sales Agent stats", HEADER_LIMIT)},
        _context(
            [
                f"*{report.turns}* turns · positive feedback *{_pct(f.positive_share)}* "
                f"({f.positive} of {f.rated} rated)"
            ]
        ),
    ]
    for name in wanted:
        blocks.append({"type": "divider"})
        blocks.append(_section(_stats_section(report, name), block_id=name))
    text = f"Sales Agent stats ({section}): {report.turns} turns"
    return Message(text=text, blocks=fit(blocks))


def _stats_section(report: StatsReport, name: str) -> str:
    match name:
        case "cache":
            return _stats_cache(report.cache)
        case "reconcile":
            return _stats_reconcile(report.reconcile)
        case "llm":
            return _stats_llm(report.llm)
        case "latency":
            return _stats_latency(report.latency)
    raise ValueError(f"unknown stats section {name!r}")


def _stats_cache(c: CacheReport) -> str:
    lines = [
        "*Cache*" if c.enabled or c.lookups else "*Cache* (not enabled)",
        f"hit rate *{_pct(c.hit_rate)}* of {c.lookups} lookups",
        f"exact {_pct(c.exact_hit_rate)} ({c.exact_hits}) · "
        f"semantic {_pct(c.semantic_hit_rate)} ({c.semantic_hits})",
    ]
    if c.exact_hits or c.semantic_hits:
        lines.append(f"hit latency p50 {c.hit_latency_ms.p50:.1f} ms")
    live = c.live
    if live is not None:
        figures = {
            "blocked": live.blocked,
            "capacity": live.capacity,
            "embedder": live.embedder,
            "evictions": live.evictions,
            "guard_rejections": live.guard_rejections,
            "semantic": live.semantic,
            "size": live.size,
            "threshold": live.threshold,
            "ttl_s": live.ttl_s,
            "vectors": live.vectors,
            "version": live.version,
        }
        # The first eight that apply, so the section stays one short line.
        shown = [f"{k} {v}" for k, v in figures.items() if v is not None][:8]
        lines.append(" · ".join(shown))
    return _lines(lines)


def _stats_reconcile(r: ReconcileReport) -> str:
    triggers = ", ".join(f"{k} {v}" for k, v in r.triggers.items()) or "none"
    return _lines(
        [
            "*Reconcile*",
            f"rate *{_pct(r.rate)}* ({r.reconciled} of {r.turns} analysed turns)",
            f"triggers: {triggers}",
        ]
    )


def _stats_llm(llm: LlmReport) -> str:
    lines = ["*LLM providers*"]
    if not llm.providers:
        lines.append("no provider calls logged yet")
    for name, p in llm.providers.items():
        errors = ", ".join(f"{k} {v}" for k, v in p.errors.items())
        refused = (
            f" · contract failures *{_pct(p.contract.rate)}* of {p.contract.answered} answered"
            if p.contract is not None
            else ""
        )
        lines.append(
            f"`{name}`: {p.requests} requests · {p.wins} wins · "
            f"{p.error_count} errors{f' ({errors})' if errors else ''} · "
            f"p95 {p.latency_ms.p95:.0f} ms{refused}"
        )
    return _lines(lines)


def _stats_latency(lat: Mapping[str, Percentiles]) -> str:
    lines = ["*Latency* (ms)"]
    for step, p in lat.items():
        lines.append(f"`{step}` p50 {p.p50:.1f} · p95 {p.p95:.1f} · p99 {p.p99:.1f}")
    return _lines(lines)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _lines(lines: Sequence[str]) -> str:
    # Figures are ours, but provider and model names come from settings: escape everything
    # (`*` and backticks stay formatting).
    return "\n".join(escape_mrkdwn(line) for line in lines)


# Deal summary ----------------------------------------------------------------------------------


def deal_message(d: DealSummary) -> Message:
    """The deal so far: what is known (and from which message), missing, risks, next steps."""
    e = escape_mrkdwn
    parts = [f"*Deal summary* · {e(d.headline)}"]
    parts.append("*Known*\n" + ("\n".join(f"• {e(line)}" for line in d.known) or "• nothing yet"))
    if d.missing:
        parts.append(f"*Missing:* {e(', '.join(d.missing))}")
    if d.next_question:
        parts.append(f"*Ask next:* {e(d.next_question)}")
    if d.risks:
        parts.append("*Risks*\n" + "\n".join(f"⚠️ {e(r)}" for r in d.risks))
    parts.append("*Next steps*\n" + "\n".join(f"• {e(s)}" for s in d.next_steps))
    blocks = [_section(truncate(p, SECTION_LIMIT - 10)) for p in parts]
    return Message(text=truncate(deal_text(d), FALLBACK_TEXT_LIMIT), blocks=fit(blocks))


# Small messages --------------------------------------------------------------------------------


def notice(text: str) -> Message:
    """A short mrkdwn message (help, refusals, confirmations); `text` is already safe."""
    return Message(text=truncate(text, FALLBACK_TEXT_LIMIT), blocks=[_section(text)])


def help_message(files_only: bool = False) -> Message:
    return notice(FILE_HELP_TEXT if files_only else HELP_TEXT)


# Limits --------------------------------------------------------------------------------------


def fit(blocks: list[Block]) -> list[Block]:
    """Enforce Slack's per-block and per-message limits on blocks we built."""
    out: list[Block] = []
    for block in blocks:
        b = dict(block)
        kind = b.get("type")
        if kind == "section":
            if isinstance(b.get("text"), dict):
                b["text"] = _text_obj(b["text"], SECTION_LIMIT)
            if b.get("fields"):
                fields = b["fields"][:FIELDS_PER_SECTION]
                b["fields"] = [_text_obj(f, FIELD_LIMIT) for f in fields]
        elif kind == "header":
            b["text"] = _text_obj(b["text"], HEADER_LIMIT)
        elif kind == "context":
            elements = b.get("elements", [])
            if len(elements) > CONTEXT_ELEMENTS:
                head = elements[: CONTEXT_ELEMENTS - 1]
                rest = " · ".join(e.get("text", "") for e in elements[CONTEXT_ELEMENTS - 1 :])
                elements = [*head, {"type": "mrkdwn", "text": rest}]
            b["elements"] = [_text_obj(e, SECTION_LIMIT) for e in elements]
        out.append(b)
    if len(out) > MAX_BLOCKS:
        actions = [b for b in out if b.get("type") == "actions"][-1:]
        keep = MAX_BLOCKS - 1 - len(actions)
        out = [
            *out[:keep],
            _context([f"{len(out) - keep - len(actions)} more blocks cut {CUT_MARK}"]),
            *actions,
        ]
    return out


def _text_obj(obj: Mapping[str, Any], limit: int) -> dict[str, Any]:
    text = str(obj.get("text", "")) or " "
    if len(text) > limit:
        if obj.get("type") == "mrkdwn" and text.endswith("```") and text.count("```") >= 2:
            text = "```" + truncate(text[3:-3], limit - 6) + "```"
        else:
            text = truncate(text, limit)
    return {**obj, "text": text}


def _section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(texts: Sequence[str], block_id: str | None = None) -> Block:
    block: Block = {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}
    if block_id:
        block["block_id"] = block_id
    return block


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(plain(text), limit), "emoji": True}


def _button(text: str, action_id: str, value: str) -> Block:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "value": value[:2000],
    }
