"""What the benchmark's fake LLM answers: contract JSON, as a good model would.

* **detect** answers the golden label of the message (every workload message comes from the
  golden set, rewordings keep their source's label) with a confidence spread over 0.62-0.98
  by a hash of the text, so some detections fall under the reconcile threshold as real ones do.
  The offline rules agree with the golden label only part of the time, which is what makes
  speculative generation's agreement rate honest.
* **capture** and **generate** answer what the offline tier would (the fake server's default).
* a **bounded generate** (the request's max_tokens below what the answer needs) gets a reply cut
  and a shorter tip that fit the budget, as a model told the bound would
  write; never a JSON object cut mid-string, which is what the server would otherwise send.

Messages it does not know (not from the workload) get the offline tier's answer throughout.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from devtools.fake_llm import ParsedRequest
from engine.llm.offline import answer_contract
from engine.rules.text import normalised

from .workload import Turn, Workload


def confidence(text: str) -> float:
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")
    return round(0.62 + 0.36 * (h % 1000) / 999, 2)


def make_answerer(workload: Workload) -> Callable[[ParsedRequest], str]:
    labels: Mapping[str, Turn] = workload.labels()

    def answer(req: ParsedRequest) -> str:
        step = req.step or ""
        ctx: dict[str, Any] = {k: str(v) for k, v in req.context.items()}
        result = answer_contract(step, req.message, ctx, req.situation)
        if step == "generate":
            result = asked_length(result, req.system)
            if req.max_tokens is not None:
                result = fit(result, req.max_tokens)
        if step == "detect":
            known = labels.get(normalised(req.message))
            if known is not None:
                result = {
                    "situation": known.situation,
                    "confidence": confidence(req.message),
                    "secondary": None,
                }
        return json.dumps(result)

    return answer


_ASKED = re.compile(r"^(reply|coaching_tip):.*?under (\d+) words", re.MULTILINE)


def asked_length(answer: dict[str, Any], system: str) -> dict[str, Any]:
    """A generate answer that keeps to the word counts the prompt asks for, as models do."""
    out = dict(answer)
    for field_name, words in _ASKED.findall(system):
        text = str(out.get(field_name, ""))
        if len(text.split()) > int(words):
            out[field_name] = _clip(text, len(" ".join(text.split()[: int(words)])))
    return out


def fit(answer: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """A generate answer within `max_tokens` (4 characters a token, as the server counts)."""
    limit = max_tokens * 4
    if len(json.dumps(answer)) <= limit:
        return answer
    reply, tip = str(answer.get("reply", "")), str(answer.get("coaching_tip", ""))
    room = limit - len(json.dumps({"reply": "", "coaching_tip": ""})) - 4
    tip_room = min(len(tip), max(room // 3, 0))
    out = {"reply": _clip(reply, room - tip_room), "coaching_tip": _clip(tip, tip_room)}
    while len(json.dumps(out)) > limit and len(out["reply"]) > 1:
        out["reply"] = _clip(out["reply"], len(out["reply"]) - 8)
    return out


def _clip(text: str, room: int) -> str:
    """About `room` characters of `text`: whole sentences, then whole words and a full stop
    (a bounded model writes a shorter reply of about that many tokens)."""
    if len(json.dumps(text)) - 2 <= room:
        return text
    kept = ""
    for word in text.split():
        candidate = f"{kept} {word}"
        if len(json.dumps(candidate)) - 1 > room:
            break
        kept = candidate
    kept = kept.strip().rstrip(",;:-")
    if not kept:
        return text[:1] + "."
    return kept if kept[-1] in ".!?" else kept + "."
