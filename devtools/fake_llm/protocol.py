"""Wire formats: parse Anthropic / OpenAI requests and build their responses and SSE events.

Shapes follow what the official SDKs in the venv send and parse (anthropic 2.x Message /
RawMessageStreamEvent, openai 3.x ChatCompletion / ChatCompletionChunk /
CreateEmbeddingResponse).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .latency import count_tokens

API_ANTHROPIC = "anthropic"
API_OPENAI = "openai"


class BadRequest(Exception):
    """The request body is not something the real API would accept (-> 400)."""


@dataclass
class ParsedRequest:
    """What the answerer sees of a completion request.

    `step`, `message`, `context`, `situation`, `strategy` come from the engine's prompt
    convention: the system prompt's first line `# step: <name>`, and the tags
    <prospect_message>, <deal_context> (a JSON object), <situation>, <strategy> in the
    user content; `knowledge` is the <knowledge> block cut into its numbered sections,
    each (file, heading, competitor or None, text).
    """

    api: str  # "anthropic" | "openai"
    model: str
    system: str
    user: str  # all user-message text, joined with blank lines
    stream: bool
    max_tokens: int | None
    step: str | None = None
    message: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    situation: str | None = None
    strategy: str | None = None
    knowledge: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    response_format: dict[str, Any] | None = None  # openai response_format, if any
    # How the request holds the answer to a format: "json_schema" (OpenAI's response_format or
    # Anthropic's output_config.format), "json_object", or None; with the schema, if any.
    structured: str | None = None
    schema: dict[str, Any] | None = None
    temperature: float | None = None
    body: dict[str, Any] = field(default_factory=dict, repr=False)  # the raw JSON request
    other_tokens: int = 0  # tokens of non-system, non-user turns (assistant, tool)

    @property
    def input_tokens(self) -> int:
        return count_tokens(self.system) + count_tokens(self.user) + self.other_tokens


_STEP = re.compile(r"^\s*#\s*step\s*:\s*([A-Za-z0-9_.-]+)", re.IGNORECASE)


def _tag(text: str, name: str) -> str | None:
    m = re.search(rf"<{name}>(.*?)</{name}>", text, re.DOTALL)
    return m.group(1).strip() if m else None


def parse_convention(req: ParsedRequest) -> ParsedRequest:
    first_line = next((line for line in req.system.splitlines() if line.strip()), "")
    m = _STEP.match(first_line)
    req.step = m.group(1).lower() if m else None
    req.message = _tag(req.user, "prospect_message") or ""
    raw_ctx = _tag(req.user, "deal_context")
    ctx: Any = {}
    if raw_ctx:
        try:
            ctx = json.loads(raw_ctx)
        except ValueError:
            ctx = {}
    req.context = ctx if isinstance(ctx, dict) else {}
    req.situation = _tag(req.user, "situation")
    req.strategy = _tag(req.user, "strategy")
    req.knowledge = _sections(_tag(req.user, "knowledge") or "")
    return req


_SECTION = re.compile(r"^\[\d+\] (.+?) › (.+?)(?: \(battlecard: (.+)\))?$", re.MULTILINE)


def _sections(block: str) -> list[tuple[str, str, str | None, str]]:
    """`[n] file › heading` lines, each followed by its text (the engine's knowledge_block)."""
    heads = list(_SECTION.finditer(block))
    if not heads:
        return []
    return [
        (
            m.group(1),
            m.group(2),
            m.group(3),
            block[m.end() : nxt.start() if nxt else len(block)].strip(),
        )
        for m, nxt in zip(heads, [*heads[1:], None], strict=True)
    ]


def _content_text(content: Any) -> str:
    """Text of a message `content`: a string or a list of blocks/parts with `text`."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "\n".join(parts)
    raise BadRequest("message content must be a string or a list of content blocks")


def _require(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if name not in body:
            raise BadRequest(f"{name}: Field required")


def _temperature(body: dict[str, Any], top: float) -> float | None:
    value = body.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
        raise BadRequest(f"temperature: must be a number from 0 to {top:g}")
    return float(value)


def _check_strict(schema: Any, where: str = "schema") -> None:
    """OpenAI's strict mode: every object lists all its properties as required and sets
    additionalProperties false (the API answers 400 'Invalid schema for response_format')."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            raise BadRequest(
                f"Invalid schema for response_format: In context={where}, "
                "'additionalProperties' is required to be supplied and to be false"
            )
        if sorted(schema.get("required") or []) != sorted(props):
            raise BadRequest(
                f"Invalid schema for response_format: In context={where}, 'required' is "
                "required to be supplied and to be an array including every key in properties"
            )
        for name, sub in props.items():
            _check_strict(sub, f"{where}.{name}")


def _check_anthropic_schema(schema: Any, where: str = "schema") -> None:
    """Anthropic's structured outputs: objects closed, no numeric bounds."""
    if not isinstance(schema, dict):
        return
    for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        if bound in schema:
            raise BadRequest(f"output_config.format.schema: {where}: '{bound}' is not supported")
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        raise BadRequest(
            f"output_config.format.schema: {where}: objects must set additionalProperties false"
        )
    for name, sub in (schema.get("properties") or {}).items():
        _check_anthropic_schema(sub, f"{where}.{name}")


def parse_anthropic(body: dict[str, Any]) -> ParsedRequest:
    _require(body, "model", "messages", "max_tokens")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    system = _content_text(body.get("system"))
    users, other = [], 0
    for msg in messages:
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise BadRequest("messages: each message needs role 'user' or 'assistant'")
        text = _content_text(msg.get("content"))
        if msg["role"] == "user":
            users.append(text)
        else:
            other += count_tokens(text)
    req = ParsedRequest(
        api=API_ANTHROPIC,
        model=str(body["model"]),
        system=system,
        user="\n\n".join(users),
        stream=bool(body.get("stream", False)),
        max_tokens=int(body["max_tokens"]),
        body=body,
        temperature=_temperature(body, 1.0),
    )
    fmt = (body.get("output_config") or {}).get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise BadRequest("output_config.format.type: Input should be 'json_schema'")
        if not isinstance(fmt.get("schema"), dict):
            raise BadRequest("output_config.format.schema: Field required")
        _check_anthropic_schema(fmt["schema"])
        req.structured, req.schema = "json_schema", fmt["schema"]
    req.other_tokens = other
    return parse_convention(req)


def parse_openai_chat(body: dict[str, Any]) -> ParsedRequest:
    _require(body, "model", "messages")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required")
    systems, users, other = [], [], 0
    for msg in messages:
        if not isinstance(msg, dict) or "role" not in msg:
            raise BadRequest("messages: each message needs a role")
        text = _content_text(msg.get("content"))
        if msg["role"] in ("system", "developer"):
            systems.append(text)
        elif msg["role"] == "user":
            users.append(text)
        else:
            other += count_tokens(text)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    rf = body.get("response_format")
    if rf is not None and (
        not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema")
    ):
        raise BadRequest("response_format: type must be 'text', 'json_object' or 'json_schema'")
    schema = None
    if rf is not None and rf["type"] == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequest("response_format.json_schema.name: Field required")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", spec["name"]):
            raise BadRequest("response_format.json_schema.name: must match ^[a-zA-Z0-9_-]+$")
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema: must be a JSON schema object")
        if spec.get("strict"):
            _check_strict(schema)
    req = ParsedRequest(
        api=API_OPENAI,
        model=str(body["model"]),
        system="\n\n".join(systems),
        user="\n\n".join(users),
        stream=bool(body.get("stream", False)),
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        response_format=rf,
        body=body,
        structured=rf["type"] if rf is not None and rf["type"] != "text" else None,
        schema=schema,
        temperature=_temperature(body, 2.0),
    )
    req.other_tokens = other
    return parse_convention(req)


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


# --------------------------------------------------------------------------- errors

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
}


def error_body(api: str, status: int, message: str, *, code: str | None = None) -> dict[str, Any]:
    if api == API_ANTHROPIC:
        return {
            "type": "error",
            "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
        }
    return {
        "error": {
            "message": message,
            "type": _OPENAI_ERROR_TYPES.get(status, "server_error"),
            "param": None,
            "code": code,
        }
    }


# --------------------------------------------------------------------------- anthropic


def anthropic_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }


def anthropic_message(
    msg_id: str, model: str, text: str, input_tokens: int, output_tokens: int, stop_reason: str
) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(input_tokens, output_tokens),
    }


def sse(event: str | None, data: Any) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def anthropic_stream_head(msg_id: str, model: str, input_tokens: int) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(input_tokens, 1),
        },
    }
    return (
        sse("message_start", start)
        + sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        + sse("ping", {"type": "ping"})
    )


def anthropic_stream_delta(text: str) -> bytes:
    return sse(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


def anthropic_stream_tail(input_tokens: int, output_tokens: int, stop_reason: str) -> bytes:
    return (
        sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        + sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            },
        )
        + sse("message_stop", {"type": "message_stop"})
    )


def anthropic_stream_error(status: int, message: str) -> bytes:
    return sse("error", error_body(API_ANTHROPIC, status, message))


# --------------------------------------------------------------------------- openai


def openai_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_completion(
    cmpl_id: str, model: str, text: str, input_tokens: int, output_tokens: int, finish_reason: str
) -> dict[str, Any]:
    return {
        "id": cmpl_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": openai_usage(input_tokens, output_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_fake_llm",
    }


def openai_chunk(
    cmpl_id: str,
    model: str,
    created: int,
    *,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    include_usage: bool = False,
    usage: dict[str, Any] | None = None,
    no_choices: bool = False,
) -> bytes:
    chunk: dict[str, Any] = {
        "id": cmpl_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake_llm",
        "choices": []
        if no_choices
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        chunk["usage"] = usage
    return sse(None, chunk)


OPENAI_DONE = b"data: [DONE]\n\n"


# --------------------------------------------------------------------------- models list

MODEL_IDS = (
    "claude-3-5-sonnet-latest",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gpt-4o",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)


def models_list() -> dict[str, Any]:
    """One body both SDKs accept: OpenAI's {"object": "list"} and Anthropic's page fields."""
    data = [
        {
            # openai Model
            "id": mid,
            "object": "model",
            "created": 1714521600,
            "owned_by": "anthropic" if mid.startswith("claude") else "openai",
            # anthropic ModelInfo
            "type": "model",
            "display_name": mid,
            "created_at": "2024-05-01T00:00:00Z",
            "lifecycle": "active",
        }
        for mid in MODEL_IDS
    ]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"],
        "last_id": data[-1]["id"],
    }
