"""FakeLLMServer: the core behind an aiohttp HTTP/1.1 front-end and/or a hypercorn HTTP/2+TLS one.

async with FakeLLMServer(answerer=lambda req: '{"ok": true}', time_scale=0) as server:
    client = AsyncAnthropic(base_url=server.base_url, api_key="test")
    client = AsyncOpenAI(base_url=server.openai_base_url, api_key="test")

tls = await server.start_h2_tls()            # TLSEndpoint(base_url, ca_pem_path)
httpx2.AsyncClient(http2=True, verify=tls.ssl_context())

url = server.start_in_thread()               # own event loop in a daemon thread
...; server.stop()
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

from aiohttp import web

from .core import Answerer, ClientGone, Connection, Core, RequestRecord
from .faults import FaultSet
from .latency import LatencyModel, LatencyProfile

log = logging.getLogger("devtools.fake_llm")


class TLSEndpoint(NamedTuple):
    base_url: str  # "https://127.0.0.1:PORT"
    ca_pem_path: str  # PEM of the throwaway CA that signed the server certificate

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the fake server's CA (and nothing else)."""
        return ssl.create_default_context(cafile=self.ca_pem_path)


# =============================================================================== aiohttp


class _AiohttpTx:
    http_version = "1.1"

    def __init__(self, request: web.BaseRequest, frontend: _AiohttpFrontend) -> None:
        self.request = request
        self.frontend = frontend
        self.response: web.StreamResponse | None = None
        self.dropped = False

    def client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def disconnect_reason(self) -> str | None:
        return "connection_closed"

    async def send_response(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        resp = web.StreamResponse(status=status, headers=dict(headers))
        resp.content_length = len(body)
        self.response = resp
        try:
            await resp.prepare(self.request)
            await resp.write(body)
            await resp.write_eof()
        except ConnectionError as exc:
            raise ClientGone(str(exc)) from exc

    async def start_stream(self, status: int, headers: Mapping[str, str]) -> None:
        resp = web.StreamResponse(status=status, headers=dict(headers))
        self.response = resp
        try:
            await resp.prepare(self.request)
        except ConnectionError as exc:
            raise ClientGone(str(exc)) from exc

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        try:
            await self.response.write(data)
        except ConnectionError as exc:
            raise ClientGone(str(exc)) from exc

    async def end_stream(self) -> None:
        assert self.response is not None
        try:
            await self.response.write_eof()
        except ConnectionError as exc:
            raise ClientGone(str(exc)) from exc

    async def send_partial(
        self, status: int, headers: Mapping[str, str], body: bytes, declared_length: int
    ) -> None:
        resp = web.StreamResponse(status=status, headers=dict(headers))
        resp.content_length = declared_length
        self.response = resp
        await resp.prepare(self.request)
        await resp.write(body)
        await self.abort()

    async def abort(self) -> None:
        # Close (FIN after flushing what was written) without the chunked terminator /
        # the rest of the declared body: the client sees an incomplete message.
        self.dropped = True
        transport = self.request.transport
        if transport is not None:
            transport.close()

    async def drop_connection(self) -> None:
        await self.abort()


class _DroppedResponse(web.StreamResponse):
    async def prepare(self, request: web.BaseRequest) -> None:
        raise ConnectionResetError("fake_llm: connection dropped on purpose")


class _TrackingServer(web.Server):
    """aiohttp's low-level server, telling the front-end about every TCP connection."""

    def __init__(self, handler: Any, frontend: _AiohttpFrontend, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._frontend = frontend

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._frontend.conns[handler] = self._frontend.core.new_connection("h1")

    def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        conn = self._frontend.conns.pop(handler, None)
        if conn is not None:
            self._frontend.core.connection_closed(conn)


class _AiohttpFrontend:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.conns: dict[Any, Connection] = {}
        self._runner: web.ServerRunner | None = None
        self._inflight: set[asyncio.Task[Any]] = set()

    async def start(self, host: str, port: int) -> int:
        server = _TrackingServer(self._handle, self, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            return await self._handle_request(request)
        finally:
            self._inflight.discard(task)

    async def _handle_request(self, request: web.BaseRequest) -> web.StreamResponse:
        conn = self.conns.get(request.protocol)
        if conn is None:  # pragma: no cover - connection_made always runs first
            conn = self.conns[request.protocol] = self.core.new_connection("h1")
        body = await request.read()
        tx = _AiohttpTx(request, self)
        await self.core.handle(
            request.method, request.path, request.headers, body, conn, tx, query=dict(request.query)
        )
        if tx.dropped or tx.response is None:
            # We cut the connection on purpose; aiohttp treats a ConnectionError from
            # prepare() as a premature client disconnect and stays quiet.
            return _DroppedResponse()
        return tx.response

    def close_idle(self) -> int:
        """Close every kept-alive connection with no request in progress, as a server does
        when its idle timeout fires; returns how many."""
        idle = [h for h in self.conns if not getattr(h, "_request_in_progress", False)]
        for handler in idle:
            transport = getattr(handler, "transport", None)
            if transport is not None:
                transport.close()
        return len(idle)

    async def close(self) -> None:
        if self._runner is not None:
            inflight = list(self._inflight)
            for task in inflight:  # hung/slow requests: end them now (server_shutdown)
                task.cancel()
            if inflight:
                await asyncio.wait(inflight, timeout=2.0)
            await self._runner.cleanup()
            self._runner = None


# =============================================================================== hypercorn


class _ASGITx:
    def __init__(
        self, scope: dict[str, Any], send: Callable[..., Any], frontend: _H2Frontend
    ) -> None:
        self.scope = scope
        self._send = send
        self.frontend = frontend
        self.http_version = str(scope.get("http_version", "2"))
        self.gone = False  # http.disconnect received
        self.completed = False  # we finished (or cut) the response ourselves
        self.reason: str | None = None

    def client_gone(self) -> bool:
        return self.gone

    def disconnect_reason(self) -> str | None:
        return self.reason

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone:
            raise ClientGone("client went away")
        await self._send(message)

    async def send_response(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        hdrs = [*_asgi_headers(headers), (b"content-length", str(len(body)).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": hdrs})
        self.completed = True
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def start_stream(self, status: int, headers: Mapping[str, str]) -> None:
        await self.send(
            {"type": "http.response.start", "status": status, "headers": _asgi_headers(headers)}
        )

    async def write(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self) -> None:
        self.completed = True
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send_partial(
        self, status: int, headers: Mapping[str, str], body: bytes, declared_length: int
    ) -> None:
        hdrs = [*_asgi_headers(headers), (b"content-length", str(declared_length).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": hdrs})
        await self.send({"type": "http.response.body", "body": body, "more_body": True})
        await self.abort()

    async def abort(self) -> None:
        self.completed = True
        await self.frontend.reset_stream(self.scope)

    async def drop_connection(self) -> None:
        self.completed = True
        self.frontend.close_connection(self.scope)


def _asgi_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class _H2Frontend:
    """An ASGI app served by hypercorn's protocol stack on our own TLS listener.

    We run hypercorn's TCPServer per accepted connection ourselves (instead of
    hypercorn.asyncio.serve) so we can count connections and, for faults, reach the
    connection to send RST_STREAM or close it — things ASGI cannot express.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.conns: dict[tuple[str, int], tuple[Connection, Any]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # one per TCP connection
        self._children: set[asyncio.Task[Any]] = set()  # one per request (Core.handle)
        self.closing = False
        self._tmpdir: str | None = None
        self._context: Any = None
        self._config: Any = None

    async def start(self, host: str, port: int) -> TLSEndpoint:
        import trustme
        from hypercorn.asyncio.worker_context import WorkerContext
        from hypercorn.config import Config
        from hypercorn.utils import wrap_app

        ca = trustme.CA()
        names = list(dict.fromkeys([host, "127.0.0.1", "localhost"]))
        cert = ca.issue_cert(*names)
        self._tmpdir = tempfile.mkdtemp(prefix="fake-llm-tls-")
        ca_path = os.path.join(self._tmpdir, "ca.pem")
        cert_path = os.path.join(self._tmpdir, "server-chain.pem")
        key_path = os.path.join(self._tmpdir, "server-key.pem")
        ca.cert_pem.write_to_path(ca_path)
        cert.private_key_pem.write_to_path(key_path)
        with open(cert_path, "wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())

        config = Config()
        config.certfile = cert_path
        config.keyfile = key_path
        config.alpn_protocols = ["h2", "http/1.1"]
        config.accesslog = None
        config.errorlog = logging.getLogger("devtools.fake_llm.hypercorn")
        config.keep_alive_timeout = 75.0
        config.h2_max_concurrent_streams = 256
        # Hypercorn's default (1,000) sends GOAWAY mid-benchmark; real APIs don't recycle so soon.
        config.keep_alive_max_requests = 1_000_000
        self._config = config
        self._context = WorkerContext(None)
        self._app = wrap_app(cast(Any, self), config.wsgi_max_body_size, "asgi")

        # IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets created with it, and
        # without it every TLS response waits out Nagle + delayed ACK (~40 ms on loopback).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self._server = await asyncio.start_server(
            self._on_connection,
            sock=sock,
            ssl=config.create_ssl_context(),
            ssl_handshake_timeout=config.ssl_handshake_timeout,
        )
        bound = sock.getsockname()[1]
        url_host = f"[{host}]" if ":" in host else host
        return TLSEndpoint(base_url=f"https://{url_host}:{bound}", ca_pem_path=ca_path)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        from hypercorn.asyncio.tcp_server import TCPServer

        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        key = (str(peer[0]), int(peer[1]))
        conn = self.core.new_connection("h2")
        tcp = TCPServer(
            self._app, asyncio.get_running_loop(), self._config, self._context, {}, reader, writer
        )
        self.conns[key] = (conn, tcp)
        try:
            await tcp.run()
        except asyncio.CancelledError:
            # Our own per-connection task, cancelled only as a last resort in close(); asyncio
            # 3.11's start_server callback would log a cancelled task as an error.
            pass
        finally:
            self.conns.pop(key, None)
            self.core.connection_closed(conn)
            self._tasks.discard(task)

    def _lookup(self, scope: dict[str, Any]) -> tuple[Connection, Any] | None:
        client = scope.get("client")
        return self.conns.get((str(client[0]), int(client[1]))) if client else None

    # ---- faults that ASGI can't express

    def close_connection(self, scope: dict[str, Any]) -> None:
        entry = self._lookup(scope)
        if entry is not None:
            entry[1].writer.close()

    async def reset_stream(self, scope: dict[str, Any]) -> None:
        """RST_STREAM(INTERNAL_ERROR) for this request's stream (HTTP/1.1: close the connection)."""
        entry = self._lookup(scope)
        if entry is None:
            return
        tcp = entry[1]
        try:
            import h2.errors
            from hypercorn.protocol.h2 import H2Protocol

            h2proto = tcp.protocol.protocol
            if isinstance(h2proto, H2Protocol):
                for sid, stream in list(h2proto.streams.items()):
                    if getattr(stream, "scope", None) is scope:
                        buf = h2proto.stream_buffers.get(sid)
                        if buf is not None:  # let what we "sent" reach the wire first
                            await asyncio.wait_for(buf.drain(), 2.0)
                        h2proto.connection.reset_stream(
                            sid, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR
                        )
                        await h2proto._flush()
                        await h2proto._close_stream(sid)
                        return
        except Exception:  # internals moved? fall back to cutting the whole connection
            log.debug("fake_llm: RST_STREAM failed, closing the connection", exc_info=True)
        tcp.writer.close()

    # ---- the ASGI application

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        entry = self._lookup(scope)
        conn = entry[0] if entry is not None else self.core.new_connection("h2")
        tx = _ASGITx(scope, send, self)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = dict(
            pair.split("=", 1) if "=" in pair else (pair, "")
            for pair in scope.get("query_string", b"").decode().split("&")
            if pair
        )
        child = asyncio.create_task(
            self.core.handle(
                scope["method"], scope["path"], headers, b"".join(chunks), conn, tx, query=query
            )
        )
        watcher = asyncio.create_task(self._watch(receive, tx, child, entry))
        self._children.add(child)
        try:
            await child
        except (asyncio.CancelledError, ClientGone):
            outer = asyncio.current_task()
            if outer is not None and outer.cancelling():
                raise  # we are being cancelled ourselves
            if not (child.done() and (tx.gone or self.closing)):
                raise
        finally:
            self._children.discard(child)
            watcher.cancel()

    @staticmethod
    async def _watch(
        receive: Callable[..., Any], tx: _ASGITx, child: asyncio.Task[Any], entry: Any
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                tcp = entry[1] if entry is not None else None
                if tcp is not None and (tcp.reader.at_eof() or tcp.writer.is_closing()):
                    tx.reason = "connection_closed"
                else:
                    tx.reason = "stream_reset"
                tx.gone = True
                if not tx.completed and not child.done():
                    child.cancel()
                return

    async def close(self) -> None:
        if self._server is not None:
            self.closing = True
            self._server.close()  # stop accepting
            if self._context is not None:
                await self._context.terminated.set()
            # 1. end in-flight requests (recorded as server_shutdown) ...
            children = list(self._children)
            for child in children:
                child.cancel()
            if children:
                await asyncio.wait(children, timeout=2.0)
            # 2. ... then close every connection and let hypercorn wind down.
            for _, tcp in list(self.conns.values()):
                tcp.writer.transport.abort()  # close() would wait for the TLS close_notify
            tasks = list(self._tasks)
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=2.0)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=2.0)
            await self._server.wait_closed()
            self._server = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


# =============================================================================== public


class FakeLLMServer:
    """A fake Anthropic/OpenAI server on 127.0.0.1 speaking the real wire protocols.

    answerer: `(ParsedRequest) -> str` (a dict is JSON-encoded; may be async). Default:
        the engine's `engine.llm.offline.answer_contract`, JSON-encoded.
    latency_profile: a profile of latency.toml ("realistic", "zero").
    time_scale: multiplies every modelled delay (0 = none). Fault delays are not scaled.
    seed: seeds the latency RNG so a run is reproducible.
    """

    def __init__(
        self,
        answerer: Answerer | None = None,
        *,
        latency_profile: str = "realistic",
        time_scale: float = 1.0,
        seed: int | None = 0,
        latency_file: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.core = Core(
            answerer,
            latency_profile=latency_profile,
            time_scale=time_scale,
            seed=seed,
            latency_file=latency_file,
        )
        self.host = host
        self.base_url: str | None = None
        self.tls: TLSEndpoint | None = None
        self._h1: _AiohttpFrontend | None = None
        self._h2: _H2Frontend | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- controls

    @property
    def faults(self) -> FaultSet:
        return self.core.faults

    @property
    def latency(self) -> LatencyModel:
        return self.core.latency

    @property
    def latency_profile(self) -> str:
        return self.core.latency.profile.name

    @latency_profile.setter
    def latency_profile(self, profile: str | LatencyProfile) -> None:
        self.core.configure(latency_profile=profile)

    @property
    def time_scale(self) -> float:
        return self.core.time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self.core.configure(time_scale=value)

    def reseed(self, seed: int | None) -> None:
        self.core.latency.reseed(seed)

    @property
    def answerer(self) -> Answerer:
        return self.core.answerer

    @answerer.setter
    def answerer(self, fn: Answerer) -> None:
        self.core.answerer = fn

    def reset(self) -> None:
        """Forget recorded requests and fault rules (connections stay)."""
        self.core.faults.clear()
        self.core.clear_records()

    # ---- recording

    @property
    def requests(self) -> list[RequestRecord]:
        return self.core.records

    @property
    def connections_opened(self) -> int:
        """TCP connections that carried at least one API (non-/_fake) request."""
        return self.core.connections_opened

    @property
    def connections_accepted(self) -> int:
        return self.core.connections_accepted

    async def close_idle_connections(self) -> int:
        """Close the idle keep-alive connections of the HTTP/1.1 front-end (a server's idle
        timeout): a client pool still holds them until it tries one. Returns how many."""
        closed = self._h1.close_idle() if self._h1 is not None else 0
        await asyncio.sleep(0)  # let the transports finish closing
        return closed

    @property
    def connections(self) -> list[Connection]:
        return self.core.connections

    def find(self, **filters: Any) -> list[RequestRecord]:
        """Records whose fields equal the filters (a callable filter value is a predicate)."""
        out = []
        for rec in self.core.records:
            for key, want in filters.items():
                have = getattr(rec, key)
                if not (want(have) if callable(want) else have == want):
                    break
            else:
                out.append(rec)
        return out

    def count(self, **filters: Any) -> int:
        return len(self.find(**filters))

    async def wait_for(
        self,
        predicate: Callable[[FakeLLMServer], Any] | None = None,
        timeout: float = 5.0,
        **filters: Any,
    ) -> Any:
        """Poll until `predicate(server)` is truthy (and, with filters, a record matches them).

        Returns the predicate's value (or the matching records). Raises TimeoutError.
        Works from any event loop/thread.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value: Any = True
            if predicate is not None:
                value = predicate(self)
            if value and filters:
                value = self.find(**filters)
            if value:
                return value
            if loop.time() >= deadline:
                raise TimeoutError(f"fake_llm: condition not met within {timeout}s")
            await asyncio.sleep(0.005)

    # ---- serving

    @property
    def openai_base_url(self) -> str:
        assert self.base_url, "server not started"
        return self.base_url + "/v1"

    async def start(self, port: int = 0) -> str:
        """Start the aiohttp HTTP/1.1 front-end; returns "http://127.0.0.1:PORT"."""
        if self._h1 is None:
            self.core.shutting_down = False
            self._h1 = _AiohttpFrontend(self.core)
            bound = await self._h1.start(self.host, port)
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.base_url = f"http://{host}:{bound}"
        assert self.base_url is not None
        return self.base_url

    async def start_h2_tls(self, port: int = 0) -> TLSEndpoint:
        """Start the hypercorn HTTP/2 (+HTTP/1.1) over TLS front-end with a throwaway trustme CA."""
        if self._h2 is None:
            self.core.shutting_down = False
            self._h2 = _H2Frontend(self.core)
            self.tls = await self._h2.start(self.host, port)
        assert self.tls is not None
        return self.tls

    async def close(self) -> None:
        self.core.shutting_down = True
        if self._h1 is not None:
            await self._h1.close()
            self._h1 = None
        if self._h2 is not None:
            await self._h2.close()
            self._h2 = None

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- background thread (own event loop)

    def start_in_thread(self, *, port: int = 0, h2_tls: bool = False, h2_port: int = 0) -> str:
        """Run the server on its own event loop in a daemon thread; returns the HTTP base URL.

        With h2_tls=True the HTTP/2 TLS front-end is started too (see `server.tls`).
        """
        if self._thread is not None:
            raise RuntimeError("already running in a thread")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-llm-server", daemon=True)
        self._thread.start()
        ready.wait()

        async def boot() -> str:
            url = await self.start(port)
            if h2_tls:
                await self.start_h2_tls(h2_port)
            return url

        return asyncio.run_coroutine_threadsafe(boot(), loop).result(timeout=30)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._loop = None
