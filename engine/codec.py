"""Suggestions to and from plain JSON-able dicts: for storage, the cache and `replay --json`."""

from __future__ import annotations

from typing import Any

from .model import Citation, StepCall, Suggestion, ThreadKey


def suggestion_to_dict(s: Suggestion) -> dict[str, Any]:
    return {
        "id": s.id,
        "thread": str(s.key),
        "message_id": s.message_id,
        "reply": s.reply,
        "coaching_tip": s.coaching_tip,
        "situation": s.situation,
        "confidence": s.confidence,
        "secondary": s.secondary,
        "strategy": s.strategy,
        "talk_track": s.talk_track,
        "slots_delta": dict(s.slots_delta),
        "slots": dict(s.slots),
        "cache": s.cache,
        "calls": [call_to_dict(c) for c in s.calls],
        "step_ms": {k: round(v, 3) for k, v in s.step_ms.items()},
        "latency_ms": round(s.latency_ms, 3),
        "reconciled": s.reconciled,
        "reconcile_triggers": list(s.reconcile_triggers),
        "notes": list(s.notes),
        "sources": [{"file": c.file, "heading": c.heading} for c in s.sources],
        "next_question": s.next_question,
    }


def suggestion_from_dict(d: dict[str, Any]) -> Suggestion:
    return Suggestion(
        id=d["id"],
        key=ThreadKey.parse(d["thread"]),
        message_id=d["message_id"],
        reply=d["reply"],
        coaching_tip=d["coaching_tip"],
        situation=d["situation"],
        confidence=float(d["confidence"]),
        secondary=d.get("secondary"),
        strategy=d["strategy"],
        talk_track=d.get("talk_track", ""),
        slots_delta=dict(d.get("slots_delta", {})),
        slots=dict(d.get("slots", {})),
        cache=d.get("cache", "miss"),
        calls=tuple(StepCall(**c) for c in d.get("calls", [])),
        step_ms=dict(d.get("step_ms", {})),
        latency_ms=float(d.get("latency_ms", 0.0)),
        reconciled=bool(d.get("reconciled", False)),
        reconcile_triggers=tuple(d.get("reconcile_triggers", ())),
        notes=tuple(d.get("notes", ())),
        sources=tuple(Citation(c["file"], c["heading"]) for c in d.get("sources", ())),
        next_question=d.get("next_question"),
    )


def call_to_dict(c: StepCall) -> dict[str, Any]:
    return {
        "step": c.step,
        "provider": c.provider,
        "model": c.model,
        "ms": round(c.ms, 3),
        "tokens_in": c.tokens_in,
        "tokens_out": c.tokens_out,
        "fallback": c.fallback,
        "ttft_ms": None if c.ttft_ms is None else round(c.ttft_ms, 3),
        "waited_ms": round(c.waited_ms, 3),
        "fallback_reason": c.fallback_reason,
    }
