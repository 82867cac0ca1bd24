"""The fake LLM server, exercised with the real anthropic/openai SDKs over real sockets."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import statistics
import time
import urllib.request

import anthropic
import httpx2
import numpy as np
import openai
import pytest
import pytest_asyncio

from devtools.fake_llm import FakeLLMServer, LatencyModel, ParsedRequest, cosine, load_profiles

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

SONNET = "claude-3-5-sonnet-latest"
HAIKU = "claude-3-5-haiku-latest"
GPT4O = "gpt-4o"
MINI = "gpt-4o-mini"

SYSTEM = "# step: detect\nYou classify the prospect's message."
USER = (
    "<prospect_message>Your price is too high for us</prospect_message>\n"
    '<deal_context>{"company": "Acme", "seats": 40}</deal_context>\n'
    "<situation>price_objection</situation>\n<strategy>anchor_value</strategy>"
)
ANSWER = {"situation": "price_objection", "confidence": 0.9}
ANSWER_TEXT = json.dumps(ANSWER)


def answerer(req: ParsedRequest) -> str:
    return ANSWER_TEXT


def long_answerer(req: ParsedRequest) -> str:
    return "lorem ipsum " * 200  # 2,400 chars = 600 tokens = 150 chunks


@pytest_asyncio.fixture
async def server():
    async with FakeLLMServer(answerer=answerer, time_scale=0, seed=1) as srv:
        yield srv


@pytest_asyncio.fixture
async def clients(server):
    a = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="test", max_retries=0)
    o = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield a, o
    await a.close()
    await o.close()


def a_kwargs(**kw):
    return {
        "model": SONNET,
        "max_tokens": 512,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": USER}],
        **kw,
    }


def o_kwargs(**kw):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    return {"model": GPT4O, "messages": messages, **kw}


# ----------------------------------------------------------------------------- protocols


async def test_anthropic_non_stream_and_stream(server, clients):
    a, _ = clients
    seen: list[ParsedRequest] = []
    server.answerer = lambda req: seen.append(req) or ANSWER_TEXT

    msg = await a.messages.create(**a_kwargs())
    assert msg.content[0].text == ANSWER_TEXT
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == -(-len(ANSWER_TEXT) // 4)
    assert msg.usage.input_tokens == -(-len(SYSTEM) // 4) + -(-len(USER) // 4)

    req = seen[0]
    assert (req.api, req.model, req.step, req.stream, req.max_tokens) == (
        "anthropic",
        SONNET,
        "detect",
        False,
        512,
    )
    assert req.message == "Your price is too high for us"
    assert req.context == {"company": "Acme", "seats": 40}
    assert (req.situation, req.strategy) == ("price_objection", "anchor_value")

    events = [e async for e in await a.messages.create(**a_kwargs(stream=True))]
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == ANSWER_TEXT
    assert events[0].message.usage.input_tokens == msg.usage.input_tokens
    assert events[-2].usage.output_tokens == msg.usage.output_tokens

    async with a.messages.stream(**a_kwargs()) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == ANSWER_TEXT
    assert final.usage.output_tokens == msg.usage.output_tokens
    assert seen[-1].stream is True
    assert server.count(api="anthropic", outcome="ok") == 3


async def test_openai_non_stream_and_stream(server, clients):
    _, o = clients
    seen: list[ParsedRequest] = []
    server.answerer = lambda req: seen.append(req) or ANSWER_TEXT

    resp = await o.chat.completions.create(
        **o_kwargs(response_format={"type": "json_object"}, max_tokens=300)
    )
    assert resp.choices[0].message.content == ANSWER_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == -(-len(ANSWER_TEXT) // 4)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    req = seen[0]
    assert (req.api, req.step, req.system, req.max_tokens) == ("openai", "detect", SYSTEM, 300)
    assert req.response_format == {"type": "json_object"}
    assert req.context["company"] == "Acme"

    stream = await o.chat.completions.create(
        **o_kwargs(stream=True, stream_options={"include_usage": True})
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert (
        chunks[-1].choices == []
        and chunks[-1].usage.completion_tokens == resp.usage.completion_tokens
    )

    plain = [c async for c in await o.chat.completions.create(**o_kwargs(model=MINI, stream=True))]
    assert all(c.usage is None for c in plain)  # like the real API: usage only with include_usage
    assert server.count(api="openai", endpoint="chat", outcome="ok") == 3


async def test_max_tokens_truncates_like_the_api(server, clients):
    a, o = clients
    msg = await a.messages.create(**a_kwargs(max_tokens=3))
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 3
    assert msg.content[0].text == ANSWER_TEXT[:12]
    resp = await o.chat.completions.create(**o_kwargs(max_completion_tokens=3))
    assert resp.choices[0].finish_reason == "length"


async def test_models_list_for_both_sdks(server, clients):
    a, o = clients
    assert any(m.id == GPT4O for m in (await o.models.list()).data)
    assert any(m.id == SONNET for m in (await a.models.list()).data)
    assert server.count(endpoint="models", outcome="ok") == 2


async def test_embeddings_float_and_base64(server, clients):
    _, o = clients
    texts = [
        "The price is too high for our budget this quarter",
        "the price is too high for our budget this year",
        "Can you integrate with Salesforce and HubSpot?",
    ]
    default = await o.embeddings.create(
        model="text-embedding-3-small", input=texts
    )  # SDK asks for base64
    floats = await o.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    raw = await o.embeddings.create(
        model="text-embedding-3-small", input=texts[0], encoding_format="base64"
    )

    vecs = [np.array(d.embedding) for d in floats.data]
    assert [len(v) for v in vecs] == [1536] * 3
    assert all(abs(np.linalg.norm(v) - 1.0) < 1e-5 for v in vecs)
    for d_default, v in zip(default.data, vecs, strict=True):
        assert np.allclose(d_default.embedding, v, atol=1e-6)
    decoded = np.frombuffer(base64.b64decode(raw.data[0].embedding), dtype="<f4")
    assert np.allclose(decoded, vecs[0], atol=1e-6)

    again = await o.embeddings.create(
        model="text-embedding-3-small", input=texts[0], encoding_format="float"
    )
    assert again.data[0].embedding == floats.data[0].embedding  # deterministic
    assert cosine(vecs[0], vecs[1]) > 0.7  # rewording sharing most words
    assert cosine(vecs[0], vecs[2]) < 0.3  # unrelated
    assert floats.usage.prompt_tokens == sum(-(-len(t) // 4) for t in texts)

    short = await o.embeddings.create(
        model="text-embedding-3-small", input="hi", dimensions=256, encoding_format="float"
    )
    assert len(short.data[0].embedding) == 256
    with pytest.raises(openai.BadRequestError):
        await o.embeddings.create(model="text-embedding-3-small", input="")


# ----------------------------------------------------------------------------- faults


@pytest.mark.parametrize("stream", [False, True])
async def test_status_faults_raise_the_sdk_exceptions(server, clients, stream):
    a, o = clients

    async def call_a():
        r = await a.messages.create(**a_kwargs(stream=stream))
        return [e async for e in r] if stream else r

    async def call_o():
        r = await o.chat.completions.create(**o_kwargs(stream=stream))
        return [c async for c in r] if stream else r

    server.faults.add("http_500", api="anthropic")
    with pytest.raises(anthropic.InternalServerError) as e:
        await call_a()
    assert e.value.status_code == 500 and e.value.type == "api_error"

    server.faults.add("overloaded_529", api="anthropic")
    with pytest.raises(anthropic.OverloadedError) as e:
        await call_a()
    assert e.value.status_code == 529 and e.value.type == "overloaded_error"

    server.faults.add("rate_limit_429", retry_after=3, api="anthropic")
    with pytest.raises(anthropic.RateLimitError) as e:
        await call_a()
    assert e.value.response.headers["retry-after"] == "3"

    server.faults.add("http_500", api="openai")
    with pytest.raises(openai.InternalServerError) as e:
        await call_o()
    assert e.value.status_code == 500 and e.value.type == "server_error"

    server.faults.add("overloaded_529", api="openai")  # OpenAI has no 529: it answers 503
    with pytest.raises(openai.InternalServerError) as e:
        await call_o()
    assert e.value.status_code == 503

    server.faults.add("rate_limit_429", retry_after=2.5, api="openai")
    with pytest.raises(openai.RateLimitError) as e:
        await call_o()
    assert e.value.response.headers["retry-after"] == "2.5"

    outcomes = [r.outcome for r in server.requests]
    assert outcomes == [f"fault:{k}" for k in ("http_500", "overloaded_529", "rate_limit_429")] * 2
    assert not server.faults.pending()
    assert (await a.messages.create(**a_kwargs())).content[
        0
    ].text == ANSWER_TEXT  # faults were one-shot


async def test_drop_connection_is_a_connection_error(server, clients):
    a, o = clients
    server.faults.add("drop_connection", times=4)
    with pytest.raises(anthropic.APIConnectionError):
        await a.messages.create(**a_kwargs())
    with pytest.raises(anthropic.APIConnectionError):
        await a.messages.create(**a_kwargs(stream=True))
    with pytest.raises(openai.APIConnectionError):
        await o.chat.completions.create(**o_kwargs())
    with pytest.raises(openai.APIConnectionError):
        await o.chat.completions.create(**o_kwargs(stream=True))
    assert server.count(outcome="fault:drop_connection", status=None) == 4


async def test_truncated_stream(server, clients):
    a, o = clients
    server.answerer = long_answerer
    server.faults.add("truncated_stream", after_chunks=3, times=2)
    got: list = []
    # anthropic 2.x does not wrap transport errors raised while iterating a stream:
    # the raw httpx2 error surfaces (openai 3.x maps it to APIConnectionError).
    with pytest.raises(httpx2.TransportError):
        async for event in await a.messages.create(**a_kwargs(stream=True)):
            got.append(event)
    assert [e.type for e in got][-1] == "content_block_delta"
    with pytest.raises(openai.APIConnectionError):
        async for _ in await o.chat.completions.create(**o_kwargs(stream=True)):
            pass
    assert [r.chunks_sent for r in server.find(outcome="fault:truncated_stream")] == [3, 3]

    # mode="eof": the body ends cleanly but without the final events
    server.faults.add("truncated_stream", mode="eof", after_chunks=2, times=2)
    events = [e async for e in await a.messages.create(**a_kwargs(stream=True))]
    assert "message_stop" not in [e.type for e in events]
    chunks = [c async for c in await o.chat.completions.create(**o_kwargs(stream=True))]
    assert all(c.choices[0].finish_reason is None for c in chunks)

    # non-streaming: half the declared body, then the connection closes
    server.faults.add("truncated_stream", times=2)
    with pytest.raises(anthropic.APIConnectionError):
        await a.messages.create(**a_kwargs())
    with pytest.raises(openai.APIConnectionError):
        await o.chat.completions.create(**o_kwargs())


async def test_mid_stream_error_events(server, clients):
    a, o = clients
    server.answerer = long_answerer
    server.faults.add("overloaded_529", mid_stream=True, after_chunks=2, api="anthropic")
    with pytest.raises(anthropic.APIStatusError) as e:
        async for _ in await a.messages.create(**a_kwargs(stream=True)):
            pass
    assert e.value.body["error"]["type"] == "overloaded_error"
    server.faults.add("http_500", mid_stream=True, after_chunks=2, api="openai")
    with pytest.raises(openai.APIError):
        async for _ in await o.chat.completions.create(**o_kwargs(stream=True)):
            pass


async def test_malformed_json_and_invalid_contract(server, clients):
    a, o = clients
    server.faults.add("malformed_json", api="anthropic")
    text = (await a.messages.create(**a_kwargs())).content[0].text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    server.faults.add("invalid_contract", api="openai", stream=True)
    stream = await o.chat.completions.create(**o_kwargs(stream=True))
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    parsed = json.loads(text)
    assert isinstance(parsed, dict) and "situation" not in parsed
    server.faults.add("invalid_contract", payload={"situation": 42})
    assert json.loads(
        (await o.chat.completions.create(**o_kwargs())).choices[0].message.content
    ) == {"situation": 42}
    assert [r.outcome for r in server.requests] == [
        "fault:malformed_json",
        "fault:invalid_contract",
        "fault:invalid_contract",
    ]


async def test_fault_filters_and_counts(server, clients):
    a, o = clients
    server.faults.add("http_500", model="*haiku*", step="detect", times=None)
    server.faults.add("http_500", model="gpt-4o-mini*", api="openai")
    await o.models.list()  # the warm-up request never consumes a completion fault
    assert (await a.messages.create(**a_kwargs())).content[
        0
    ].text == ANSWER_TEXT  # sonnet: no match
    for _ in range(2):
        with pytest.raises(anthropic.InternalServerError):
            await a.messages.create(**a_kwargs(model=HAIKU))
    other_step = a_kwargs(model=HAIKU, system="# step: generate\n...")
    assert (await a.messages.create(**other_step)).content[0].text == ANSWER_TEXT
    assert (await o.chat.completions.create(**o_kwargs())).choices[0].message.content == ANSWER_TEXT
    with pytest.raises(openai.InternalServerError):
        await o.chat.completions.create(**o_kwargs(model=MINI))
    assert server.count(fault="http_500") == 3
    assert server.count(step="generate", outcome="ok") == 1
    assert server.count(model=lambda m: m and "haiku" in m) == 3
    assert len(server.faults.pending()) == 1  # the unlimited one


async def test_slow_fault_and_sdk_timeout(server, clients):
    a, _ = clients
    server.faults.add("slow", delay=2.0)
    with pytest.raises(anthropic.APITimeoutError):
        await a.messages.create(**a_kwargs(), timeout=0.3)
    [rec] = await server.wait_for(outcome="client_disconnected", timeout=5)
    assert rec.fault == "slow" and rec.disconnect_reason == "connection_closed"


async def test_hang_until_the_client_gives_up(server, clients):
    _, o = clients
    server.faults.add("hang", api="openai")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(o.chat.completions.create(**o_kwargs()), 0.3)
    [rec] = await server.wait_for(outcome="client_disconnected", timeout=5)
    assert rec.fault == "hang" and rec.status is None


async def test_cancelled_streams_are_recorded_as_client_disconnected(server, clients):
    a, o = clients
    server.answerer = long_answerer
    server.faults.add("slow", delay=0.0, per_chunk=0.05, times=2)  # ~7.5 s per full stream

    got: list = []

    async def consume():
        async for event in await a.messages.create(**a_kwargs(stream=True)):
            got.append(event)

    task = asyncio.create_task(consume())
    await server.wait_for(lambda s: len(got) >= 4, timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [rec] = await server.wait_for(api="anthropic", outcome="client_disconnected", timeout=5)
    assert rec.stream and 2 <= rec.chunks_sent < 100

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            async for _ in await o.chat.completions.create(**o_kwargs(stream=True)):
                pass
    [rec] = await server.wait_for(api="openai", outcome="client_disconnected", timeout=5)
    assert rec.finished_at - rec.started_at < 2.0


async def test_new_connection_penalty_once_per_kept_alive_connection():
    # A profile with only the connection cost, so timings are exact.
    profile = dataclasses.replace(load_profiles()["zero"], new_connection_s=0.2)
    async with FakeLLMServer(answerer=answerer, time_scale=1.0) as srv:
        srv.latency_profile = profile
        # One pooled client shared by both SDKs: anthropic.DefaultAsyncHttpxClient is an
        # httpx2.AsyncClient with the SDK's defaults; openai accepts any httpx2.AsyncClient.
        shared = anthropic.DefaultAsyncHttpxClient()
        a = anthropic.AsyncAnthropic(
            base_url=srv.base_url, api_key="test", max_retries=0, http_client=shared
        )
        o = openai.AsyncOpenAI(
            base_url=srv.openai_base_url, api_key="test", max_retries=0, http_client=shared
        )
        timings = []
        for call in [
            lambda: o.models.list(),  # warm-up pays the handshake
            lambda: a.messages.create(**a_kwargs()),
            lambda: o.chat.completions.create(**o_kwargs()),
            lambda: a.messages.create(**a_kwargs(stream=True)),
        ]:
            t0 = time.perf_counter()
            await call()
            timings.append(time.perf_counter() - t0)
        recs = srv.requests
        assert [r.new_connection for r in recs] == [True, False, False, False]
        assert recs[0].connection_wait_s == pytest.approx(0.2, abs=0.02)
        assert all(r.connection_wait_s == 0 for r in recs[1:])
        assert timings[0] >= 0.19 and max(timings[1:]) < 0.15
        assert srv.connections_opened == 1 and len({r.connection_id for r in recs}) == 1

        fresh = anthropic.AsyncAnthropic(base_url=srv.base_url, api_key="test", max_retries=0)
        await fresh.messages.create(**a_kwargs())
        assert srv.requests[-1].new_connection and srv.connections_opened == 2
        await fresh.close()
        await shared.aclose()  # the SDKs' close() would close the shared client too


async def test_latency_applied_end_to_end():
    async with FakeLLMServer(answerer=long_answerer, time_scale=0.1, seed=3) as srv:
        o = openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="test", max_retries=0)
        t0 = time.perf_counter()
        stream = await o.chat.completions.create(
            model=MINI, messages=[{"role": "user", "content": "x"}], stream=True
        )
        arrivals = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.perf_counter() - t0)
        rec = srv.requests[-1]
        assert arrivals[0] >= rec.connection_wait_s + rec.planned_first_token_s - 0.01
        # 150 chunks of 4 tokens at 90-150 tok/s, scaled by 0.1: 0.4-0.67 s after the first
        assert 0.3 < arrivals[-1] - arrivals[0] < 1.5
        await o.close()


async def test_latency_sampling_matches_configured_medians():
    model = LatencyModel("realistic", seed=123)
    expected = {
        SONNET: 0.68,
        "claude-3-haiku-20240307": 0.36,
        "gpt-4o-2024-08-06": 0.58,
        "gpt-4o-mini": 0.46,
    }
    for name, median in expected.items():
        samples = [model.sample(name, input_tokens=1000) for _ in range(2000)]
        ttfts = [s.ttft_s for s in samples]
        assert statistics.median(ttfts) == pytest.approx(median, rel=0.06), name
        heavy = sum(s.heavy_tail for s in samples) / len(samples)
        assert 0.005 < heavy < 0.03
        assert all(3.0 <= s.ttft_s <= 10.0 for s in samples if s.heavy_tail)
        assert all(
            s.prefill_s == 0 for s in samples
        )  # the medians were measured at ~1k input tokens
    assert model.profile.model_class("gpt-4o-mini-2024-07-18").name == "gpt-4o-mini"
    assert model.profile.model_class("claude-3-5-haiku-latest").name == "haiku"
    assert model.profile.model_class("text-embedding-3-small").name == "embedding"
    assert model.profile.model_class("llama-3-70b").name == "default"
    fast = statistics.mean(model.sample(HAIKU).output_tps for _ in range(200))
    slow = statistics.mean(model.sample(SONNET).output_tps for _ in range(200))
    assert fast > slow > 0
    assert model.sample(SONNET, input_tokens=3000).prefill_s == pytest.approx(0.04)

    a, b = LatencyModel("realistic", seed=7), LatencyModel("realistic", seed=7)
    assert [a.sample(GPT4O).ttft_s for _ in range(50)] == [
        b.sample(GPT4O).ttft_s for _ in range(50)
    ]
    zero = LatencyModel("zero")
    assert zero.sample(SONNET, input_tokens=10_000).total(500) == 0.0


# ----------------------------------------------------------------------------- HTTP/2 + TLS


async def test_h2_tls_multiplexes_concurrent_requests_on_one_connection():
    async with FakeLLMServer(answerer=answerer, time_scale=0) as srv:
        tls = await srv.start_h2_tls()
        srv.faults.add("slow", delay=0.2, times=None)  # so that the 20 requests overlap
        http = httpx2.AsyncClient(http2=True, verify=tls.ssl_context())
        o = openai.AsyncOpenAI(
            base_url=tls.openai_base_url, api_key="test", max_retries=0, http_client=http
        )
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(
                o.chat.completions.create(
                    **o_kwargs(messages=[{"role": "user", "content": f"#{i}"}])
                )
                for i in range(20)
            )
        )
        elapsed = time.perf_counter() - t0
        assert all(r.choices[0].message.content == ANSWER_TEXT for r in results)
        recs = srv.requests
        assert len(recs) == 20 and {r.http_version for r in recs} == {"2"}
        assert srv.connections_opened == 1 and srv.connections_accepted == 1
        assert len({r.connection_id for r in recs}) == 1
        assert elapsed < 2.0  # 20 x 0.2 s serialised would be 4 s
        latest_start = max(r.started_at for r in recs)
        assert sum(r.finished_at > latest_start for r in recs) >= 10  # all in flight at once
        await http.aclose()


async def test_h2_cancelled_stream_and_truncation():
    async with FakeLLMServer(answerer=long_answerer, time_scale=0) as srv:
        tls = await srv.start_h2_tls()
        http = httpx2.AsyncClient(http2=True, verify=tls.ssl_context())
        o = openai.AsyncOpenAI(
            base_url=tls.openai_base_url, api_key="test", max_retries=0, http_client=http
        )

        # RST_STREAM from the server (truncated_stream) surfaces as a connection error,
        # and the connection stays usable for other streams.
        srv.faults.add("truncated_stream", after_chunks=2)
        with pytest.raises(openai.APIConnectionError):
            async for _ in await o.chat.completions.create(**o_kwargs(stream=True)):
                pass
        ok = await o.chat.completions.create(**o_kwargs())
        assert ok.choices[0].message.content == long_answerer(None)
        assert srv.connections_opened == 1

        srv.faults.add("slow", delay=0.0, per_chunk=0.05)
        got: list = []

        async def consume():
            async for chunk in await o.chat.completions.create(**o_kwargs(stream=True)):
                got.append(chunk)

        task = asyncio.create_task(consume())
        await srv.wait_for(lambda s: len(got) >= 3, timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # httpx2 (httpcore2) does not send RST_STREAM when a response is closed early:
        # the server keeps streaming to a stream nobody reads ...
        await asyncio.sleep(0.3)
        rec = srv.requests[-1]
        assert rec.outcome is None, "httpx2 now resets cancelled HTTP/2 streams: update the docs"
        # ... until the connection itself goes away.
        await http.aclose()
        [rec] = await srv.wait_for(outcome="client_disconnected", timeout=5)
        assert rec.http_version == "2" and rec.disconnect_reason == "connection_closed"
        assert rec.chunks_sent < 150


# ----------------------------------------------------------------------------- other process/thread


async def test_thread_mode_and_http_control_api():
    srv = FakeLLMServer(answerer=answerer, time_scale=0)
    url = srv.start_in_thread()
    try:

        def post(path, obj):
            req = urllib.request.Request(url + path, data=json.dumps(obj).encode(), method="POST")
            with urllib.request.urlopen(req) as resp:
                return json.loads(resp.read())

        assert post("/_fake/faults", {"kind": "rate_limit_429", "retry_after": 1, "api": "openai"})[
            "faults"
        ][0]["kind"]
        cfg = post("/_fake/config", {"latency_profile": "zero", "time_scale": 0.5})
        assert cfg["latency_profile"] == "zero" and cfg["time_scale"] == 0.5
        assert srv.time_scale == 0.5
        o = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            await o.chat.completions.create(**o_kwargs())
        assert (await o.chat.completions.create(**o_kwargs())).choices[
            0
        ].message.content == ANSWER_TEXT
        await o.close()
        with urllib.request.urlopen(url + "/_fake/requests") as resp:
            data = json.loads(resp.read())
        assert [r["outcome"] for r in data["requests"]] == ["fault:rate_limit_429", "ok"]
        assert data["connections_opened"] == 1
        await srv.wait_for(lambda s: s.count(outcome="ok") == 1, timeout=2)
    finally:
        srv.stop()
