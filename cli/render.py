"""The console's text: the coaching card (from the shared view model), a turn as JSON, and the
eval and stats reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.card import CardView
from engine.codec import suggestion_to_dict
from engine.model import Suggestion
from engine.stats import StatsReport


def card_text(v: CardView) -> str:
    head = f"── {v.title} ({v.confidence:.0%})"
    if v.also:
        head += f" · also {v.also}"
    lines = [f"{head} · play: {v.play}"]
    if v.slots:
        known = ", ".join(
            f"{slot.title}: {slot.value}" + (" (new)" if slot.new else "") for slot in v.slots
        )
        lines.append(f"   Deal: {known}")
    lines.append(f"   Suggested reply: {v.reply}")
    lines.append(f"   Tip: {v.tip}")
    if v.next_question:
        lines.append(f"   Ask next: {v.next_question}")
    lines.extend(f"   Note: {note}" for note in v.notes)
    if v.sources:
        lines.append(f"   Sources: {'; '.join(v.sources)}")
    footer = [f"{v.latency_ms:.0f} ms", f"cache: {v.cache}", ", ".join(v.providers)]
    if v.offline:
        footer.append("offline fallback")
    if v.reconciled:
        footer.append("reconciled")
    lines.append("   " + " · ".join(footer))
    return "\n".join(lines)


def turn_json(s: Suggestion) -> dict[str, Any]:
    d = suggestion_to_dict(s)
    return {
        "thread": d["thread"],
        "situation": s.situation,
        "confidence": s.confidence,
        "slots": d["slots"],
        "slots_delta": d["slots_delta"],
        "strategy": s.strategy,
        "reply": s.reply,
        "coaching_tip": s.coaching_tip,
        "cache": s.cache,
        "providers": {c.step: f"{c.provider}/{c.model}" for c in s.calls},
        "latency_ms": d["latency_ms"],
        "step_ms": d["step_ms"],
        "reconciled": s.reconciled,
        "notes": d["notes"],
        "sources": d["sources"],
    }


def eval_text(report: Mapping[str, Any]) -> str:
    lines = [f"{report['golden']}: {report['n']} messages"]
    for name in (
        "situation_accuracy",
        "situation_macro_f1",
        "slot_precision",
        "slot_recall",
        "slot_f1",
    ):
        lines.append(f"  {name:20} {report[name]:.3f}")
    for name, value in report["value_accuracy"].items():
        lines.append(f"  {name + ' value':20} {value if value is None else f'{value:.3f}'}")
    top = list(report["confusions"].items())[:8]
    if top:
        lines.append("  most confused: " + ", ".join(f"{k} ×{v}" for k, v in top))
    return "\n".join(lines)


def threads_text(report: Mapping[str, Any], threads: int) -> str:
    lines = [f"{report['threads']}: {threads} threads (t01-t26 tuning, the rest held out)"]
    for part in ("tuning", "held_out", "all"):
        r = report[part]
        agreement = ", ".join(
            f"{name} {v['agree']}/{v['compared']}" for name, v in r["value_agreement"].items()
        )
        lines.append(
            f"  {part:9} {r['threads']:3} threads  slot recall {r['slot_recall']:.3f}  "
            f"precision {r['slot_precision']:.3f}  situation {r['situation_accuracy']:.3f}"
        )
        lines.append(f"  {'':9} values agree: {agreement}")
    return "\n".join(lines)


def stats_text(report: StatsReport) -> str:
    c, r = report.cache, report.reconcile
    lines = [f"turns: {report.turns}"]
    lines.append(
        f"cache: hit rate {c.hit_rate:.1%} (exact {c.exact_hits}, "
        f"semantic {c.semantic_hits} of {c.lookups} lookups)"
    )
    if c.live is not None:
        lines.append(
            f"cache: {c.live.size} entries, embedder {c.live.embedder or 'off'}, "
            f"semantic threshold {c.live.threshold}, {c.live.evictions} evictions, "
            f"{c.live.guard_rejections} guard rejections"
        )
    triggers = ", ".join(f"{k} {v}" for k, v in r.triggers.items()) or "none"
    lines.append(f"reconcile: {r.rate:.1%} of {r.turns} analysed turns ({triggers})")
    for step, p in report.latency.items():
        lines.append(
            f"latency {step:11} p50 {p.p50:.1f} ms  p95 {p.p95:.1f} ms  p99 {p.p99:.1f} ms"
        )
    for name, pr in report.llm.providers.items():
        cf = pr.contract
        refused = (
            f", contract failures {cf.rate:.1%} of {cf.answered} answered "
            f"({cf.invalid_output} invalid, {cf.truncated} truncated)"
            if cf is not None
            else ""
        )
        lines.append(
            f"provider {name}: {pr.requests} requests, {pr.wins} wins, "
            f"{pr.cancelled} cancelled, {pr.error_count} errors, "
            f"p95 {pr.latency_ms.p95:.0f} ms{refused}"
        )
    f = report.feedback
    lines.append(f"feedback: {f.positive} of {f.rated} positive")
    return "\n".join(lines)
