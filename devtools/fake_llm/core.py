"""Front-end independent logic of the fake LLM server.

A front-end (aiohttp HTTP/1.1, hypercorn HTTP/2+TLS) accepts connections, registers each
with `Core.new_connection`, and hands every request to `Core.handle` together with a
`Transport` that knows how to write to (or cut) that connection. The core parses the
request, applies faults and the latency model, writes the response, and records it.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from . import embeddings as emb
from . import protocol as proto
from .faults import FaultSet
from .latency import LatencyModel, LatencyProfile, LatencySample, count_tokens
from .protocol import API_ANTHROPIC, API_OPENAI, BadRequest, ParsedRequest

log = logging.getLogger("devtools.fake_llm")

Answerer = Callable[[ParsedRequest], "str | dict[str, Any] | Awaitable[str | dict[str, Any]]"]

ERROR_FAULTS = ("http_500", "overloaded_529", "rate_limit_429")

DEFAULT_INVALID_CONTRACT: dict[str, Any] = {
    "answer": "I'm not sure what you mean.",
    "confidence": "high",
    "notes": ["this object does not follow the requested schema"],
}


def default_answerer(req: ParsedRequest) -> str:
    """The engine's offline contract answer (imported lazily: it lives in the engine). For
    generate it quotes the <knowledge> sections the prompt carried, as the offline tier would:
    it can only use what reached it over the wire."""
    from engine.knowledge.chunk import Chunk
    from engine.llm.offline import answer_contract

    chunks = [
        Chunk(file=f, heading=h, title=h, text=t, competitor=c) for f, h, c, t in req.knowledge
    ]
    result = answer_contract(req.step or "", req.message, req.context, req.situation, chunks)
    return result if isinstance(result, str) else json.dumps(result)


class ClientGone(ConnectionResetError):
    """The client went away while we were writing (aiohttp treats it as a quiet disconnect)."""


class Transport(Protocol):
    """What a front-end provides for one request."""

    http_version: str

    async def send_response(self, status: int, headers: Mapping[str, str], body: bytes) -> None: ...

    async def start_stream(self, status: int, headers: Mapping[str, str]) -> None: ...

    async def write(self, data: bytes) -> None: ...  # raises ClientGone

    async def end_stream(self) -> None: ...

    async def send_partial(
        self, status: int, headers: Mapping[str, str], body: bytes, declared_length: int
    ) -> None:
        """Send headers declaring `declared_length` bytes, then the shorter `body`, then cut."""

    async def abort(self) -> None:
        """Cut the response mid-body (HTTP/1.1: close the connection; HTTP/2: RST_STREAM)."""

    async def drop_connection(self) -> None:
        """Close the whole TCP connection without (further) response."""

    def client_gone(self) -> bool: ...

    def disconnect_reason(self) -> str | None: ...


@dataclass
class Connection:
    """One TCP connection as the server saw it."""

    id: str
    frontend: str  # "h1" | "h2"
    opened_at: float  # time.time()
    ready_at: float | None = None  # loop time when the (simulated) handshake is over
    requests: int = 0
    closed_at: float | None = None


@dataclass
class RequestRecord:
    id: int
    endpoint: str  # "messages" | "chat" | "embeddings" | "models" | "unknown"
    path: str
    connection_id: str
    http_version: str
    started_at: float  # time.time()
    api: str | None = None
    model: str | None = None
    step: str | None = None
    stream: bool = False
    finished_at: float | None = None
    status: int | None = None
    outcome: str | None = (
        None  # "ok" | "fault:<kind>" | "client_disconnected" | "bad_request" | ...
    )
    fault: str | None = None
    new_connection: bool = False
    connection_wait_s: float = 0.0
    planned_first_token_s: float | None = None  # scaled ttft+prefill(+slow) the server waited
    first_byte_at: float | None = None
    chunks_sent: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    disconnect_reason: str | None = None  # "connection_closed" | "stream_reset"
    error: str | None = None
    # What the request asked of the answer's format ("json_schema", "json_object", None) and
    # its sampling temperature (None: not sent, the server's default).
    structured: str | None = None
    temperature: float | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        return d


@dataclass
class _Plan:
    text: str
    stop: str  # "end_turn" | "max_tokens"
    output_tokens: int
    sample: LatencySample
    extra_first_s: float = 0.0  # unscaled (fault "slow")
    per_chunk_s: float = 0.0  # unscaled (fault "slow")
    fault_params: dict[str, Any] = field(default_factory=dict)


class Core:
    def __init__(
        self,
        answerer: Answerer | None = None,
        *,
        latency_profile: str = "realistic",
        time_scale: float = 1.0,
        seed: int | None = 0,
        latency_file: str | None = None,
    ) -> None:
        self.answerer: Answerer = answerer or default_answerer
        self.latency = LatencyModel(latency_profile, seed=seed, path=latency_file)
        self.time_scale = float(time_scale)
        self.faults = FaultSet()
        self.shutting_down = False
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._connections: list[Connection] = []
        self._conn_ids = itertools.count(1)
        self._req_ids = itertools.count(1)
        self.connections_opened = 0  # connections that carried at least one API request
        self.connections_accepted = 0  # every TCP connection accepted (also control-only ones)

    # ------------------------------------------------------------------ bookkeeping

    def new_connection(self, frontend: str) -> Connection:
        conn = Connection(
            id=f"{frontend}-{next(self._conn_ids)}", frontend=frontend, opened_at=time.time()
        )
        with self._lock:
            self._connections.append(conn)
            self.connections_accepted += 1
        return conn

    def connection_closed(self, conn: Connection) -> None:
        conn.closed_at = time.time()

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections)

    def clear_records(self) -> None:
        with self._lock:
            self._records.clear()

    def _new_record(
        self, endpoint: str, path: str, conn: Connection, tx: Transport
    ) -> RequestRecord:
        rec = RequestRecord(
            id=next(self._req_ids),
            endpoint=endpoint,
            path=path,
            connection_id=conn.id,
            http_version=tx.http_version,
            started_at=time.time(),
        )
        with self._lock:
            self._records.append(rec)
        return rec

    async def _sleep(self, seconds: float) -> None:
        """Sleep `seconds` of model time, scaled by time_scale."""
        delay = seconds * self.time_scale
        await asyncio.sleep(delay if delay > 0 else 0)

    async def _connection_wait(self, conn: Connection, rec: RequestRecord) -> None:
        """The simulated handshake: requests on a connection wait until it is 'ready'."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if conn.ready_at is None:
            conn.ready_at = now + self.latency.new_connection_s * self.time_scale
            rec.new_connection = True
            with self._lock:
                self.connections_opened += 1
        conn.requests += 1
        wait = max(0.0, conn.ready_at - now)
        rec.connection_wait_s = wait
        if wait > 0:
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ entry point

    async def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        conn: Connection,
        tx: Transport,
        query: Mapping[str, str] | None = None,
    ) -> None:
        path = path.rstrip("/") or "/"
        if path.startswith("/_fake/"):
            await self._control(method, path, body, tx, query or {})
            return
        endpoint, api = _route(method, path, headers)
        rec = self._new_record(endpoint, path, conn, tx)
        rec.api = api
        try:
            if endpoint in ("messages", "chat"):
                await self._generation(api or API_OPENAI, endpoint, body, conn, tx, rec)
            elif endpoint == "embeddings":
                await self._embeddings(body, conn, tx, rec)
            elif endpoint == "models":
                await self._connection_wait(conn, rec)
                await self._sleep(self.latency.profile.models_endpoint_s)
                listing = proto.models_list()
                model_id = path.split("/models/", 1)[1] if "/models/" in path else None
                obj = (
                    listing
                    if model_id is None
                    else {**listing["data"][0], "id": model_id, "display_name": model_id}
                )
                await self._send_json(tx, rec, 200, obj, api or API_OPENAI)
                rec.outcome = "ok"
            else:
                rec.outcome = "not_found"
                await self._send_json(
                    tx,
                    rec,
                    404,
                    proto.error_body(api or API_OPENAI, 404, f"No route for {method} {path}"),
                    api,
                )
        except (asyncio.CancelledError, ClientGone):
            if rec.outcome is None:
                if tx.client_gone() and not self.shutting_down:
                    rec.outcome = "client_disconnected"
                    rec.disconnect_reason = tx.disconnect_reason()
                else:
                    rec.outcome = "server_shutdown"
            raise
        except Exception as exc:  # a bug here must not look like a protocol feature
            log.exception("fake LLM server: error handling %s %s", method, path)
            rec.error = repr(exc)
            if rec.outcome is None:
                rec.outcome = "error"
            raise
        finally:
            rec.finished_at = time.time()

    # ------------------------------------------------------------------ helpers

    def _headers(self, api: str | None, rec: RequestRecord, content_type: str) -> dict[str, str]:
        h = {"content-type": content_type, "x-fake-llm-connection": rec.connection_id}
        if api == API_ANTHROPIC:
            h["request-id"] = f"req_fake_{rec.id:08d}"
        else:
            h["x-request-id"] = f"req_fake_{rec.id:08d}"
            h["openai-processing-ms"] = "0"
        return h

    async def _send_json(
        self,
        tx: Transport,
        rec: RequestRecord,
        status: int,
        obj: Any,
        api: str | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        headers = self._headers(api, rec, "application/json")
        if extra_headers:
            headers.update(extra_headers)
        rec.status = status
        rec.first_byte_at = time.time()
        await tx.send_response(status, headers, json.dumps(obj).encode())

    async def _send_error(
        self, tx: Transport, rec: RequestRecord, api: str, kind: str, params: Mapping[str, Any]
    ) -> None:
        extra: dict[str, str] = {}
        if kind == "http_500":
            status, msg = 500, "Internal server error (fake_llm fault http_500)"
        elif kind == "overloaded_529":
            status, msg = (
                (529, "Overloaded")
                if api == API_ANTHROPIC
                else (503, "The server is overloaded or not ready yet.")
            )
        else:
            retry_after = params.get("retry_after", 1)
            status, msg = (
                429,
                f"Rate limit reached (fake_llm fault rate_limit_429); retry after {retry_after}s",
            )
            extra["retry-after"] = _fmt_seconds(retry_after)
            if api == API_OPENAI:
                extra["x-ratelimit-remaining-requests"] = "0"
                extra["x-ratelimit-reset-requests"] = f"{_fmt_seconds(retry_after)}s"
        code = "rate_limit_exceeded" if status == 429 else None
        await self._send_json(
            tx, rec, status, proto.error_body(api, status, msg, code=code), api, extra
        )

    async def _answer(self, req: ParsedRequest) -> str:
        result = self.answerer(req)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, (dict, list)):
            return json.dumps(result)
        return str(result)

    # ------------------------------------------------------------------ completions

    async def _generation(
        self,
        api: str,
        endpoint: str,
        raw: bytes,
        conn: Connection,
        tx: Transport,
        rec: RequestRecord,
    ) -> None:
        try:
            body = _json_object(raw)
            req = (
                proto.parse_anthropic(body)
                if api == API_ANTHROPIC
                else proto.parse_openai_chat(body)
            )
        except BadRequest as exc:
            await self._connection_wait(conn, rec)
            rec.outcome = "bad_request"
            rec.error = str(exc)
            await self._send_json(tx, rec, 400, proto.error_body(api, 400, str(exc)), api)
            return
        rec.model, rec.step, rec.stream = req.model, req.step, req.stream
        rec.structured, rec.temperature = req.structured, req.temperature
        rec.input_tokens = req.input_tokens
        fault = self.faults.take(
            endpoint=endpoint, api=api, model=req.model, step=req.step, stream=req.stream
        )
        kind = fault.kind if fault else None
        params: dict[str, Any] = dict(fault.params) if fault else {}
        rec.fault = kind

        await self._connection_wait(conn, rec)
        if kind != "slow" and params.get("delay"):
            await asyncio.sleep(float(params["delay"]))  # fault delays are not scaled

        formats = params.get("formats", ("json_schema",))
        if kind == "reject_schema" and req.structured in formats:
            # A server without structured outputs: 400, as vLLM or an old llama.cpp answer.
            rec.outcome = "fault:reject_schema"
            message = f"response_format type {req.structured!r} is not supported by this server"
            await self._send_json(tx, rec, 400, proto.error_body(api, 400, message), api)
            return
        if kind == "drop_connection":
            rec.outcome = "fault:drop_connection"
            await tx.drop_connection()
            return
        if kind == "hang":
            await asyncio.Future()  # until the client goes away (or the server closes)
        if kind in ERROR_FAULTS and not (
            params.get("mid_stream") and req.stream and kind != "rate_limit_429"
        ):
            rec.outcome = f"fault:{kind}"
            await self._send_error(tx, rec, api, kind, params)
            return

        try:
            if kind == "invalid_contract":
                payload = params.get("payload", DEFAULT_INVALID_CONTRACT)
                text = payload if isinstance(payload, str) else json.dumps(payload)
            else:
                text = await self._answer(req)
                if kind == "malformed_json":
                    # A missing colon: broken JSON that no repair can mend (a cut-off answer is
                    # the `truncated_stream` fault, or a small `max_tokens`).
                    text = params.get("text") or "```json\n" + text.replace('":', '"', 1)
        except Exception as exc:
            log.exception("fake LLM answerer failed")
            rec.outcome = "answerer_error"
            rec.error = repr(exc)
            await self._send_json(
                tx, rec, 500, proto.error_body(api, 500, f"fake_llm answerer failed: {exc!r}"), api
            )
            return

        stop = "end_turn"
        out_tokens = count_tokens(text)
        if req.max_tokens is not None and out_tokens > req.max_tokens:
            text = text[: req.max_tokens * 4]
            out_tokens = req.max_tokens
            stop = "max_tokens"
        out_tokens = max(1, out_tokens)
        rec.output_tokens = out_tokens
        plan = _Plan(
            text=text,
            stop=stop,
            output_tokens=out_tokens,
            sample=self.latency.sample(req.model, input_tokens=rec.input_tokens),
            fault_params=params,
        )
        if kind == "slow":
            plan.extra_first_s = float(params.get("delay", 1.0))
            plan.per_chunk_s = float(params.get("per_chunk", 0.0))
        rec.planned_first_token_s = plan.sample.first_token_s * self.time_scale + plan.extra_first_s

        if req.stream:
            await self._stream(api, req, plan, kind, tx, rec)
        else:
            await self._non_stream(api, req, plan, kind, tx, rec)
        if rec.outcome is None:
            rec.outcome = f"fault:{kind}" if kind else "ok"

    async def _non_stream(
        self,
        api: str,
        req: ParsedRequest,
        plan: _Plan,
        kind: str | None,
        tx: Transport,
        rec: RequestRecord,
    ) -> None:
        await self._sleep(plan.sample.total(plan.output_tokens))
        if plan.extra_first_s:
            await asyncio.sleep(plan.extra_first_s)
        if api == API_ANTHROPIC:
            stop = plan.stop
            obj = proto.anthropic_message(
                proto.new_id("msg_fake_"),
                req.model,
                plan.text,
                rec.input_tokens,
                plan.output_tokens,
                stop,
            )
        else:
            finish = "length" if plan.stop == "max_tokens" else "stop"
            obj = proto.openai_completion(
                proto.new_id("chatcmpl-fake"),
                req.model,
                plan.text,
                rec.input_tokens,
                plan.output_tokens,
                finish,
            )
        if kind == "truncated_stream":
            data = json.dumps(obj).encode()
            rec.status = 200
            rec.outcome = "fault:truncated_stream"
            rec.first_byte_at = time.time()
            await tx.send_partial(
                200, self._headers(api, rec, "application/json"), data[: len(data) // 2], len(data)
            )
            return
        await self._send_json(tx, rec, 200, obj, api)

    async def _stream(
        self,
        api: str,
        req: ParsedRequest,
        plan: _Plan,
        kind: str | None,
        tx: Transport,
        rec: RequestRecord,
    ) -> None:
        size = plan.sample.chunk_tokens * 4
        pieces = [plan.text[i : i + size] for i in range(0, len(plan.text), size)] or [""]
        params = plan.fault_params
        cut: int | None = None
        if kind in ("truncated_stream", "http_500", "overloaded_529"):
            after = params.get("after_chunks")
            cut = max(1, min(len(pieces), int(after) if after is not None else len(pieces) // 2))

        await self._sleep(plan.sample.first_token_s)
        if plan.extra_first_s:
            await asyncio.sleep(plan.extra_first_s)

        created = int(time.time())
        include_usage = bool((req.body.get("stream_options") or {}).get("include_usage"))
        if api == API_ANTHROPIC:
            msg_id = proto.new_id("msg_fake_")
            head = proto.anthropic_stream_head(msg_id, req.model, rec.input_tokens)
        else:
            cmpl_id = proto.new_id("chatcmpl-fake")
            head = proto.openai_chunk(
                cmpl_id,
                req.model,
                created,
                delta={"role": "assistant", "content": "", "refusal": None},
                include_usage=include_usage,
            )

        headers = self._headers(api, rec, "text/event-stream; charset=utf-8")
        headers["cache-control"] = "no-cache"
        rec.status = 200
        rec.first_byte_at = time.time()
        await tx.start_stream(200, headers)
        interval = plan.sample.chunk_interval()
        for i, piece in enumerate(pieces):
            if i > 0:
                await self._sleep(interval)
                if plan.per_chunk_s:
                    await asyncio.sleep(plan.per_chunk_s)
            if api == API_ANTHROPIC:
                data = proto.anthropic_stream_delta(piece)
            else:
                data = proto.openai_chunk(
                    cmpl_id,
                    req.model,
                    created,
                    delta={"content": piece},
                    include_usage=include_usage,
                )
            await tx.write((head + data) if i == 0 else data)
            rec.chunks_sent += 1
            if cut is not None and i + 1 >= cut:
                rec.outcome = f"fault:{kind}"
                if kind == "truncated_stream":
                    if params.get("mode", "abort") == "eof":
                        await tx.end_stream()
                    else:
                        await tx.abort()
                    return
                # mid-stream API error (anthropic: `event: error`; openai: a data line with "error")
                status = 529 if (kind == "overloaded_529" and api == API_ANTHROPIC) else 500
                msg = (
                    "Overloaded"
                    if kind == "overloaded_529"
                    else "Internal server error (fake_llm fault)"
                )
                if api == API_ANTHROPIC:
                    await tx.write(proto.anthropic_stream_error(status, msg))
                else:
                    await tx.write(proto.sse(None, proto.error_body(api, status, msg)))
                await tx.end_stream()
                return

        if api == API_ANTHROPIC:
            tail = proto.anthropic_stream_tail(rec.input_tokens, plan.output_tokens, plan.stop)
        else:
            finish = "length" if plan.stop == "max_tokens" else "stop"
            tail = proto.openai_chunk(
                cmpl_id, req.model, created, finish_reason=finish, include_usage=include_usage
            )
            if include_usage:
                tail += proto.openai_chunk(
                    cmpl_id,
                    req.model,
                    created,
                    include_usage=True,
                    usage=proto.openai_usage(rec.input_tokens, plan.output_tokens),
                    no_choices=True,
                )
            tail += proto.OPENAI_DONE
        await tx.write(tail)
        await tx.end_stream()

    # ------------------------------------------------------------------ embeddings

    async def _embeddings(
        self, raw: bytes, conn: Connection, tx: Transport, rec: RequestRecord
    ) -> None:
        rec.api = API_OPENAI
        try:
            body = _json_object(raw)
            if "model" not in body or "input" not in body:
                raise BadRequest("model and input are required")
            inputs = _embedding_inputs(body["input"])
            fmt = body.get("encoding_format", "float")
            if fmt not in ("float", "base64"):
                raise BadRequest("encoding_format must be 'float' or 'base64'")
            dims = body.get("dimensions")
        except BadRequest as exc:
            await self._connection_wait(conn, rec)
            rec.outcome = "bad_request"
            rec.error = str(exc)
            await self._send_json(
                tx, rec, 400, proto.error_body(API_OPENAI, 400, str(exc)), API_OPENAI
            )
            return
        model = str(body["model"])
        rec.model = model
        tokens = sum(len(x) if isinstance(x, list) else count_tokens(x) for x in inputs)
        rec.input_tokens = tokens
        fault = self.faults.take(
            endpoint="embeddings", api=API_OPENAI, model=model, step=None, stream=False
        )
        kind = fault.kind if fault else None
        params = dict(fault.params) if fault else {}
        rec.fault = kind
        await self._connection_wait(conn, rec)
        if params.get("delay"):
            await asyncio.sleep(float(params["delay"]))
        if kind == "drop_connection":
            rec.outcome = "fault:drop_connection"
            await tx.drop_connection()
            return
        if kind == "hang":
            await asyncio.Future()
        if kind in ERROR_FAULTS:
            rec.outcome = f"fault:{kind}"
            await self._send_error(tx, rec, API_OPENAI, kind, params)
            return
        sample = self.latency.sample(model, input_tokens=tokens)
        await self._sleep(sample.first_token_s)
        full = emb.model_dims(model)
        data = []
        for i, item in enumerate(inputs):
            vec = emb.embed(item, full)
            if dims is not None and int(dims) < full:
                vec = emb.truncate(vec, int(dims))
            value: Any = emb.to_base64(vec) if fmt == "base64" else [float(x) for x in vec]
            data.append({"object": "embedding", "index": i, "embedding": value})
        obj = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await self._send_json(tx, rec, 200, obj, API_OPENAI)
        rec.outcome = f"fault:{kind}" if kind else "ok"

    # ------------------------------------------------------------------ control API

    async def _control(
        self, method: str, path: str, raw: bytes, tx: Transport, query: Mapping[str, str]
    ) -> None:
        async def reply(status: int, obj: Any) -> None:
            await tx.send_response(
                status, {"content-type": "application/json"}, json.dumps(obj).encode()
            )

        try:
            body = _json_object(raw) if raw.strip() else {}
        except BadRequest as exc:
            await reply(400, {"error": str(exc)})
            return
        try:
            if path == "/_fake/faults":
                if method == "DELETE" or body.get("clear"):
                    self.faults.clear()
                if method == "POST":
                    specs = body.get("faults") or ([body] if "kind" in body else [])
                    for spec in specs:
                        self.faults.add_dict(spec)
                await reply(200, {"faults": [f.to_dict() for f in self.faults.list()]})
            elif path == "/_fake/config":
                if method == "POST":
                    self.configure(**body)
                await reply(200, self.config_dict())
            elif path == "/_fake/requests":
                if method == "DELETE":
                    self.clear_records()
                since = int(query.get("since", 0))
                recs = [r.to_dict() for r in self.records if r.id > since]
                await reply(
                    200,
                    {
                        "requests": recs,
                        "connections_opened": self.connections_opened,
                        "connections_accepted": self.connections_accepted,
                    },
                )
            elif path == "/_fake/reset":
                self.faults.clear()
                self.clear_records()
                await reply(200, {"ok": True})
            else:
                await reply(404, {"error": f"no control endpoint {path}"})
        except (TypeError, ValueError, KeyError) as exc:
            await reply(400, {"error": repr(exc)})

    def configure(
        self,
        *,
        latency_profile: str | LatencyProfile | None = None,
        time_scale: float | None = None,
        seed: int | None = None,
        clear_requests: bool = False,
        clear_faults: bool = False,
    ) -> None:
        if latency_profile is not None:
            self.latency.set_profile(latency_profile)
        if time_scale is not None:
            if float(time_scale) < 0:
                raise ValueError("time_scale must be >= 0")
            self.time_scale = float(time_scale)
        if seed is not None:
            self.latency.reseed(seed)
        if clear_requests:
            self.clear_records()
        if clear_faults:
            self.faults.clear()

    def config_dict(self) -> dict[str, Any]:
        return {
            "latency_profile": self.latency.profile.name,
            "time_scale": self.time_scale,
            "profiles": sorted(self.latency.profiles),
        }


def _fmt_seconds(value: Any) -> str:
    f = float(value)
    return str(int(f)) if f.is_integer() else repr(f)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise BadRequest(
            "input must be a non-empty string, array of strings or array of token arrays"
        )
    for x in items:
        if isinstance(x, str):
            if not x:
                raise BadRequest("input cannot contain an empty string")
        elif not (isinstance(x, list) and x and all(isinstance(t, int) for t in x)):
            raise BadRequest("input items must be non-empty strings or token arrays")
    return items


def _route(method: str, path: str, headers: Mapping[str, str]) -> tuple[str, str | None]:
    p = path[3:] if path.startswith("/v1/") else path
    if method == "POST" and p == "/messages":
        return "messages", API_ANTHROPIC
    if method == "POST" and p == "/chat/completions":
        return "chat", API_OPENAI
    if method == "POST" and p == "/embeddings":
        return "embeddings", API_OPENAI
    anthropic_client = any(k.lower() in ("anthropic-version", "x-api-key") for k in headers)
    api = API_ANTHROPIC if anthropic_client else API_OPENAI
    if method == "GET" and (p == "/models" or p.startswith("/models/")):
        return "models", api
    return "unknown", api
