"""Fault injection rules for the fake LLM server.

    server.faults.add("overloaded_529", model="*sonnet*", times=2, step="detect")
    server.faults.add("rate_limit_429", retry_after=3)
    server.faults.add("slow", delay=2.0, times=None)        # every matching request
    server.faults.add("truncated_stream", after_chunks=1)

A request consumes at most one fault: the first still-active rule (in the order added)
whose filters all match. Filters: `model` (glob, case-insensitive), `api`
("anthropic" | "openai"), `step` (the parsed `# step:` of the prompt), `stream`
(True/False), `endpoint` ("messages" | "chat" | "embeddings" | "models" | "*"; default:
the two generation endpoints only, so a warm-up GET /v1/models or an embeddings call
never eats a fault meant for a completion). `times=None` means unlimited.

Fault delays (`delay=` on any kind, the `slow` delay) are NOT multiplied by the
server's time_scale: they are explicit per-test timings.
"""

from __future__ import annotations

import builtins
import fnmatch
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS: dict[str, str] = {
    "http_500": "500 with the API's error body (anthropic api_error / openai server_error)",
    "overloaded_529": "anthropic: 529 overloaded_error; openai: 503 (OpenAI has no 529)",
    "rate_limit_429": "429 with a Retry-After header (param retry_after, seconds, default 1)",
    "hang": "never answer until the client goes away",
    "malformed_json": "assistant text that is not valid JSON (param text= to choose it)",
    "invalid_contract": "valid JSON of the wrong schema (param payload= dict or JSON string)",
    "truncated_stream": "stream stops mid-way without its final events, then the connection "
    "closes (h2: RST_STREAM); params after_chunks=, mode='abort'|'eof'. Non-streaming: "
    "half the declared body, then close",
    "drop_connection": "close the TCP connection without any response (param delay=)",
    "reject_schema": "400 to a request asking for a json_schema answer format (param "
    "formats=, default ['json_schema']; add 'json_object' to refuse JSON mode too); other "
    "requests are answered normally (use times=None for a server that never supports it)",
    "slow": "extra delay before the first token (param delay= seconds, per_chunk= seconds)",
}

GENERATION_ENDPOINTS = ("messages", "chat")


@dataclass
class Fault:
    kind: str
    model: str = "*"
    times: int | None = 1
    api: str | None = None
    step: str | None = None
    stream: bool | None = None
    endpoint: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    hits: int = 0

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times

    def matches(
        self, *, endpoint: str, api: str | None, model: str, step: str | None, stream: bool
    ) -> bool:
        if self.endpoint in (None, ""):
            if endpoint not in GENERATION_ENDPOINTS:
                return False
        elif self.endpoint != "*" and self.endpoint != endpoint:
            return False
        if self.api is not None and self.api != api:
            return False
        if self.step is not None and self.step != step:
            return False
        if self.stream is not None and self.stream != stream:
            return False
        return fnmatch.fnmatchcase((model or "").lower(), (self.model or "*").lower())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model,
            "times": self.times,
            "api": self.api,
            "step": self.step,
            "stream": self.stream,
            "endpoint": self.endpoint,
            "params": dict(self.params),
            "hits": self.hits,
        }


class FaultSet:
    """Thread-safe list of fault rules (the server may run on another thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self,
        kind: str,
        model: str = "*",
        times: int | None = 1,
        api: str | None = None,
        step: str | None = None,
        *,
        stream: bool | None = None,
        endpoint: str | None = None,
        **params: Any,
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; kinds: {sorted(FAULT_KINDS)}")
        if api not in (None, "anthropic", "openai"):
            raise ValueError(f"api must be 'anthropic', 'openai' or None, not {api!r}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None (unlimited)")
        fault = Fault(
            kind=kind,
            model=model,
            times=times,
            api=api,
            step=step,
            stream=stream,
            endpoint=endpoint,
            params=params,
            id=next(self._ids),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_dict(self, spec: dict[str, Any]) -> Fault:
        """Add from a JSON-style dict: {"kind": ..., "model": ..., "params": {...}}.

        Keys other than the filters are fault params too.
        """
        spec = dict(spec)
        params = dict(spec.pop("params", None) or {})
        kind = spec.pop("kind")
        known = {
            k: spec.pop(k)
            for k in ("model", "times", "api", "step", "stream", "endpoint")
            if k in spec
        }
        params.update(spec)
        return self.add(kind, **known, **params)

    def take(
        self, *, endpoint: str, api: str | None, model: str, step: str | None, stream: bool
    ) -> Fault | None:
        """Consume and return the first active matching fault, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.active and fault.matches(
                    endpoint=endpoint, api=api, model=model, step=step, stream=stream
                ):
                    fault.hits += 1
                    return fault
        return None

    def remove(self, fault: Fault | int) -> None:
        fid = fault if isinstance(fault, int) else fault.id
        with self._lock:
            self._faults = [f for f in self._faults if f.id != fid]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def pending(self) -> builtins.list[Fault]:
        """Rules that can still fire."""
        with self._lock:
            return [f for f in self._faults if f.active]

    def __len__(self) -> int:
        return len(self.pending())
