"""End-to-end proof that devtools/fake_slack.py speaks real Slack protocols:
the real slack_bolt AsyncApp + AsyncSocketModeHandler (aiohttp) and the real
slack_sdk AsyncWebClient talk to FakeSlack over 127.0.0.1 sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from devtools.fake_slack import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    FakeSlack,
    app_mention_event,
    assistant_thread_started_event,
    message_event,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


@dataclass
class Stack:
    fake: FakeSlack
    app: AsyncApp
    handler: AsyncSocketModeHandler


async def _drain_tasks() -> None:
    """Everything started by the test (bolt listener tasks, socket client tasks, the fake's
    server) must be finished once both sides are closed."""
    current = asyncio.current_task()
    pending: list[asyncio.Task] = []
    for _ in range(3):
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=2.0)
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not pending, f"tasks left running: {pending}"


async def _eventually(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def _bot_client(fake: FakeSlack, token: str = "xoxb-test") -> AsyncWebClient:
    # base_url must end with "/" (slack_sdk urljoins the method name onto it).
    # Rate-limit retries are opt-in: slack_sdk's default handlers only retry connection errors.
    return AsyncWebClient(
        token=token,
        base_url=fake.api_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )


@pytest_asyncio.fixture
async def stack():
    fake = await FakeSlack.start()
    # Pass the client only: AsyncApp(token=..., client=...) works but logs a warning that the
    # token is ignored. Bolt copies base_url/retry_handlers into its per-request clients, and
    # the socket handler uses app.client for apps.connections.open.
    app = AsyncApp(client=_bot_client(fake))
    handler = AsyncSocketModeHandler(app, "xapp-test")
    try:
        await handler.connect_async()
        await fake.wait_connected(timeout=5)
        yield Stack(fake, app, handler)
    finally:
        await handler.close_async()  # close the bot first, else it reconnects to a dead fake
        await fake.close()
        await _drain_tasks()


async def test_app_mention_is_acked_and_reply_lands_in_thread(stack: Stack):
    fake, app = stack.fake, stack.app

    @app.event("app_mention")
    async def on_mention(event, say):
        await say(
            text=f"Hi <@{event['user']}>, let's prep that call.",
            thread_ts=event.get("thread_ts") or event["ts"],
        )

    # the socket got a real hello and the xapp token was used for apps.connections.open
    open_call = fake.calls_to("apps.connections.open")[0]
    assert open_call.token == "xapp-test" and open_call.ok

    ev = app_mention_event("prep me for the Acme renewal", user="U1", channel="C1")
    env_id = await fake.push_event(ev)
    assert await fake.wait_for_ack(env_id) is None  # events are acked with an empty body

    call = await fake.wait_for_call("chat.postMessage")
    assert call.ok and call.token == "xoxb-test"
    assert call.content_type == "application/json"  # chat.postMessage is sent as JSON
    assert call.args["channel"] == "C1"
    assert call.args["thread_ts"] == ev["ts"]
    assert call.response["ts"] > ev["ts"]

    # bolt's single-team authorization called auth.test on the fake (once, cached)
    auth = fake.calls_to("auth.test")
    assert len(auth) == 1 and auth[0].response["user_id"] == BOT_USER_ID

    thread = fake.messages("C1", thread_ts=ev["ts"])
    assert [m["text"] for m in thread] == ["Hi <@U1>, let's prep that call."]
    assert thread[0]["bot_id"] == BOT_ID and thread[0]["user"] == BOT_USER_ID

    # the pushed mention is channel history too: conversations.replies sees parent + reply
    replies = await app.client.conversations_replies(channel="C1", ts=ev["ts"])
    assert [m["ts"] for m in replies["messages"]] == [ev["ts"], call.response["ts"]]
    assert replies["messages"][0]["reply_count"] == 1


async def test_slash_command_ack_and_response_url(stack: Stack):
    fake, app = stack.fake, stack.app

    @app.command("/agent-stats")
    async def stats(ack, respond, command):
        await ack(text="Crunching your numbers…")
        await respond(
            text=f"<@{command['user_id']}> win rate this week: 42%", response_type="in_channel"
        )

    env_id = await fake.push_command(
        "/agent-stats", text="this week", user_id="U1", channel_id="C1"
    )
    assert fake.envelope(env_id)["accepts_response_payload"] is True
    assert await fake.wait_for_ack(env_id) == {"text": "Crunching your numbers…"}

    resp = await fake.wait_for_call("response_url")
    assert resp.args["text"] == "<@U1> win rate this week: 42%"
    assert resp.args["response_type"] == "in_channel"
    # an in_channel response shows up as a channel message
    assert fake.messages("C1")[-1]["text"] == "<@U1> win rate this week: 42%"


async def test_block_action_ack_update_and_reaction(stack: Stack):
    fake, app = stack.fake, stack.app
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Log this call to the CRM?"}},
        {
            "type": "actions",
            "block_id": "log",
            "elements": [
                {
                    "type": "button",
                    "action_id": "log_call",
                    "value": "deal-42",
                    "text": {"type": "plain_text", "text": "Log it"},
                }
            ],
        },
    ]
    posted = await app.client.chat_postMessage(channel="C1", text="Log this call?", blocks=blocks)

    @app.action("log_call")
    async def log_call(ack, body, respond, client):
        await ack()
        await client.reactions_add(
            channel=body["channel"]["id"], timestamp=body["message"]["ts"], name="white_check_mark"
        )
        await respond(
            replace_original=True, text=f"Logged {body['actions'][0]['value']} :white_check_mark:"
        )

    payload = fake.block_actions_payload(
        "log_call", "deal-42", user_id="U1", channel="C1", message_ts=posted["ts"]
    )
    assert payload["actions"][0]["block_id"] == "log"
    env_id = await fake.push_action(payload)
    assert await fake.wait_for_ack(env_id) is None

    await fake.wait_for_call("response_url")
    msg = fake.message("C1", posted["ts"])
    assert msg["text"] == "Logged deal-42 :white_check_mark:"
    assert msg["reactions"] == [{"name": "white_check_mark", "users": [BOT_USER_ID], "count": 1}]
    # reactions.add is sent as POST with its args in the query string (slack_sdk `params=`);
    # bolt's per-request client (team_id=context.team_id) adds team_id to every call.
    reaction_call = fake.calls_to("reactions.add")[0]
    assert reaction_call.args == {
        "channel": "C1",
        "timestamp": posted["ts"],
        "name": "white_check_mark",
        "team_id": TEAM_ID,
    }


async def test_redelivered_envelope_is_delivered_twice(stack: Stack):
    fake, app = stack.fake, stack.app
    seen = []

    @app.event("app_mention")
    async def on_mention(body, request):
        seen.append(
            (
                body["event_id"],
                request.headers.get("x-slack-retry-num"),
                request.headers.get("x-slack-retry-reason"),
            )
        )

    ev = app_mention_event("what's my quota?")
    first = await fake.push_event(ev, event_id="Ev0REDELIVER1")
    second = await fake.push_event(
        ev, event_id="Ev0REDELIVER1", retry_num=1, retry_reason="timeout"
    )
    assert first != second
    await fake.wait_for_ack(first)
    await fake.wait_for_ack(second)
    await _eventually(lambda: len(seen) == 2)
    # Like real Slack, first deliveries carry retry_attempt 0 / retry_reason "", which bolt
    # turns into x-slack-retry-num ["0"] / x-slack-retry-reason [""]: only > 0 is a redelivery.
    assert seen == [("Ev0REDELIVER1", ["0"], [""]), ("Ev0REDELIVER1", ["1"], ["timeout"])]
    assert fake.envelope(second)["retry_attempt"] == 1
    assert (
        fake.envelope(second)["payload"]["event_id"] == fake.envelope(first)["payload"]["event_id"]
    )


async def test_429_is_retried_by_rate_limit_handler(stack: Stack):
    fake, app = stack.fake, stack.app
    fake.fail_next("chat.postMessage", error="ratelimited", retry_after=0)

    @app.event("app_mention")
    async def on_mention(event, say):
        await say(text="Your pipeline summary is ready.", thread_ts=event["ts"])

    ev = app_mention_event("summarize my pipeline")
    await fake.wait_for_ack(await fake.push_event(ev))
    calls = await fake.wait_for_calls("chat.postMessage", 2)
    assert (calls[0].status, calls[0].error) == (429, "ratelimited")
    assert calls[1].status == 200 and calls[1].ok
    assert [m["text"] for m in fake.messages("C1", thread_ts=ev["ts"])] == [
        "Your pipeline summary is ready."
    ]


async def test_streamed_reply_with_say_stream(stack: Stack):
    fake, app = stack.fake, stack.app
    final_blocks = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Was this coaching useful?"}]}
    ]

    @app.event("app_mention")
    async def on_mention(say_stream, set_status):
        # set_status/say_stream are injected for events with a channel and a ts/thread_ts;
        # both target thread_ts or, for a top-level message, its ts.
        await set_status("is reviewing your deal…")
        streamer = await say_stream(
            buffer_size=1
        )  # default 256 chars buffers everything until stop()
        await streamer.append(markdown_text="**Deal review:** ")
        await streamer.append(markdown_text="Acme is at risk; ")
        await streamer.append(markdown_text="book time with the CFO.")
        await streamer.stop(blocks=final_blocks)

    ev = app_mention_event("review the Acme deal", user="U7", channel="C1")
    await fake.wait_for_ack(await fake.push_event(ev))
    stop = await fake.wait_for_call("chat.stopStream")
    assert stop.ok

    start = fake.calls_to("chat.startStream")[0]
    assert start.args["thread_ts"] == ev["ts"]
    assert start.args["recipient_user_id"] == "U7" and start.args["recipient_team_id"] == TEAM_ID
    assert start.args["chunks"] == [{"type": "markdown_text", "text": "**Deal review:** "}]
    assert len(fake.calls_to("chat.appendStream")) == 2
    assert fake.thread_statuses[("C1", ev["ts"])] == ["is reviewing your deal…"]

    [msg] = fake.messages("C1", thread_ts=ev["ts"])
    assert msg["text"] == "**Deal review:** Acme is at risk; book time with the CFO."
    assert msg["blocks"] == final_blocks
    assert fake.stream(msg["ts"]).state == "stopped"

    # a stopped stream can't be appended to
    with pytest.raises(SlackApiError) as exc:
        await app.client.chat_appendStream(channel="C1", ts=msg["ts"], markdown_text="more")
    assert exc.value.response["error"] == "message_not_in_streaming_state"


async def test_assistant_thread_prompts_and_context_metadata(stack: Stack):
    fake, app = stack.fake, stack.app
    context = {"channel_id": "C9", "team_id": TEAM_ID, "enterprise_id": None}

    @app.event("assistant_thread_started")
    async def started(say, set_suggested_prompts):
        await say("Hi! I'm your sales coach.")
        await set_suggested_prompts(
            prompts=["Prep my next call", {"title": "Pipeline", "message": "Review my pipeline"}]
        )

    @app.message()
    async def on_dm(message, say, get_thread_context):
        ctx = await get_thread_context()
        await say(f"Looking at <#{ctx['channel_id']}>")

    started_ev = assistant_thread_started_event(user="U1", channel="D1", context=context)
    thread_ts = started_ev["assistant_thread"]["thread_ts"]
    await fake.wait_for_ack(await fake.push_event(started_ev))
    await fake.wait_for_call("assistant.threads.setSuggestedPrompts")
    greeting = await fake.wait_for_call("chat.postMessage")
    # the assistant `say` threads automatically and stores the context as message metadata
    assert greeting.args["thread_ts"] == thread_ts
    assert greeting.args["metadata"] == {
        "event_type": "assistant_thread_context",
        "event_payload": context,
    }
    assert fake.suggested_prompts[("D1", thread_ts)]["prompts"][0] == {
        "title": "Prep my next call",
        "message": "Prep my next call",
    }

    dm = message_event(
        "how do I handle the pricing objection?", user="U1", channel="D1", thread_ts=thread_ts
    )
    await fake.wait_for_ack(await fake.push_event(dm))
    reply = await fake.wait_for_call(
        "chat.postMessage", lambda c: c.args.get("text", "").startswith("Looking")
    )
    assert (
        reply.args["text"] == "Looking at <#C9>"
    )  # context read back via conversations.replies metadata
    assert fake.calls_to("conversations.replies")[0].args["include_all_metadata"] == "1"


async def test_token_checks_and_channel_errors():
    async with FakeSlack() as fake:
        fake.add_channel("C_PRIVATE", "deals", is_member=False)
        bot = _bot_client(fake)
        with pytest.raises(SlackApiError) as e1:
            await bot.chat_postMessage(channel="C_PRIVATE", text="hi")
        assert e1.value.response["error"] == "not_in_channel"

        with pytest.raises(SlackApiError) as e2:
            await AsyncWebClient(token="xapp-test", base_url=fake.api_url).chat_postMessage(
                channel="C1", text="x"
            )
        assert e2.value.response["error"] == "not_allowed_token_type"

        with pytest.raises(SlackApiError) as e3:
            await bot.apps_connections_open(app_token="xoxb-test")
        assert e3.value.response["error"] == "not_allowed_token_type"

        fake.fail_next("chat.postMessage", "channel_not_found")
        with pytest.raises(SlackApiError) as e4:
            await bot.chat_postMessage(channel="C1", text="x")
        assert (
            e4.value.response.status_code == 200
            and e4.value.response["error"] == "channel_not_found"
        )

        # without AsyncRateLimitErrorRetryHandler a 429 surfaces as SlackApiError
        fake.fail_next("chat.postMessage", retry_after=7)
        with pytest.raises(SlackApiError) as e5:
            await AsyncWebClient(token="xoxb-test", base_url=fake.api_url).chat_postMessage(
                channel="C1", text="x"
            )
        assert (
            e5.value.response.status_code == 429 and e5.value.response.headers["Retry-After"] == "7"
        )

        with pytest.raises(SlackApiError) as e6:
            await bot.chat_postMessage(
                channel="C1",
                text="x",
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            )
        assert e6.value.response["error"] == "invalid_blocks"

        assert (await bot.api_call("dialog.frobnicate"))["ok"] is True
        assert fake.unknown_methods == ["dialog.frobnicate"]

        with pytest.raises(TimeoutError, match=r"Calls seen: .*chat\.postMessage"):
            await fake.wait_for_call("views.open", timeout=0.05)
        assert fake.server_errors == []
    await _drain_tasks()


async def test_streams_expire_and_methods_have_a_rate_budget():
    async with FakeSlack(stream_lifetime=0.2, rate_limits={"chat.startStream": 2}) as fake:
        bot = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)  # no retry handler
        args = {"channel": "D1", "thread_ts": "1700000000.000100"}
        first = await bot.chat_startStream(markdown_text="Hel", **args)
        await bot.chat_appendStream(channel="D1", ts=first["ts"], markdown_text="lo")
        second = await bot.chat_startStream(markdown_text="x", **args)
        with pytest.raises(SlackApiError) as limited:
            await bot.chat_startStream(markdown_text="y", **args)
        response = limited.value.response
        assert response.status_code == 429 and response["error"] == "ratelimited"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        await asyncio.sleep(0.25)  # past the stream's lifetime: Slack closed it
        with pytest.raises(SlackApiError) as closed:
            await bot.chat_stopStream(channel="D1", ts=second["ts"])
        assert closed.value.response["error"] == "message_not_in_streaming_state"
        assert fake.stream(first["ts"]).text == "Hello"
        assert [c.status for c in fake.calls_to("chat.startStream")] == [200, 200, 429]
        assert fake.server_errors == []
    await _drain_tasks()


async def test_reconnect_after_disconnect(stack: Stack):
    fake, app = stack.fake, stack.app

    @app.event("app_mention")
    async def on_mention(event, say):
        await say(text="back online", thread_ts=event["ts"])

    await fake.disconnect_clients()
    await fake.wait_connected(count=2)
    assert len(fake.calls_to("apps.connections.open")) == 2
    ev = app_mention_event("still there?")
    await fake.wait_for_ack(await fake.push_event(ev))
    await fake.wait_for_call("chat.postMessage")
    assert [m["text"] for m in fake.messages("C1", ev["ts"])] == ["back online"]


async def test_events_spread_over_connections_and_an_unacked_one_is_redelivered_elsewhere():
    fake = await FakeSlack.start(spread=True, redeliver_after=0.3)
    seen: list[tuple[int, str]] = []  # (app, event ts), in arrival order
    stuck = asyncio.Event()
    handlers = []
    try:
        for n in range(3):
            # Acked once the listener returns: app 0's never does, as a hung process's.
            app = AsyncApp(client=_bot_client(fake), process_before_response=True)

            def listener(n: int = n) -> Callable:
                async def on_mention(event) -> None:
                    seen.append((n, event["ts"]))
                    if n == 0:
                        await stuck.wait()

                return on_mention

            app.event("app_mention")(listener())
            handler = AsyncSocketModeHandler(app, "xapp-test")
            await handler.connect_async()
            await fake.wait_connected(count=n + 1)
            handlers.append(handler)
        assert len(fake.connection_numbers) == 3
        for i in range(6):
            await fake.push_event(app_mention_event(f"message {i}"))
        # The two events app 0 did not ack come again, once each, to another connection.
        await _eventually(lambda: len(seen) == 8, timeout=5)
        first, again = seen[:6], seen[6:]
        assert sorted(n for n, _ in first) == [0, 0, 1, 1, 2, 2]  # round-robin over the three
        assert sorted(ts for _, ts in again) == sorted(ts for n, ts in first if n == 0)
        assert all(n != 0 for n, _ in again)
        retries = [e for e in fake.envelopes if e["retry_attempt"]]
        assert [(e["retry_attempt"], e["retry_reason"]) for e in retries] == [(1, "timeout")] * 2
        await asyncio.sleep(0.6)
        assert len(seen) == 8  # acked retries are not sent again
        assert len(fake.messages("C1", include_events=True)) == 6  # nor is a retry a message
    finally:
        stuck.set()
        for handler in handlers:
            await handler.close_async()
        await fake.close()
