"""Router overhead per call, against a zero-latency fake LLM server (a command, not a test).

    .venv/bin/python -m devtools.measure_router [--calls 2000] [--json]

The fake server runs in its own process (profile "zero": no modelled delay), so what is
measured is the client side. For each call, in alternating order so drift hits both alike:

- **SDK direct**: the official SDK's streaming call with a ready prompt, the text joined and
  parsed by the output contract: the least any caller has to do.
- **router**: `Router.complete(StepRequest)`: prompt building, provider ranking, breaker and
  budget bookkeeping, the attempt task, the call record (batched), stats.

Reported: p50 and p99 of both, the added milliseconds (router minus direct at p50 and p99),
and the router's own time per call (its total minus the winning provider call, as logged).
Modes: single and hedge over one/two providers (hedge never fires at zero latency) and race,
which sends two requests per call by design.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from engine import contract
from engine.llm import prompts
from engine.llm.pool import Pool, http_client
from engine.llm.providers.anthropic import AnthropicProvider, anthropic_client
from engine.llm.providers.openai import OpenAIProvider, openai_client
from engine.llm.recorder import CallRecorder
from engine.llm.router import Router, RouterConfig
from engine.ports import CallRecord, StepRequest
from engine.stats import percentiles

MESSAGE = "We already use Gong and honestly it's too expensive for us, we're 40 reps"


class Records:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    async def log_calls(self, records: Sequence[CallRecord]) -> None:
        self.records.extend(records)

    async def recent_calls(self, limit: int) -> Sequence[CallRecord]:
        return self.records[-limit:]


def start_fake(profile: str = "zero", time_scale: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-m", "devtools.fake_llm", "--profile", profile),
            *("--time-scale", str(time_scale), "--seed", "7"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the race losers' disconnects, logged by the server
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, str(info["base_url"])


async def direct_openai(provider: OpenAIProvider, prompt: prompts.Prompt) -> None:
    stream = await provider.client.chat.completions.create(
        model=provider.model,
        messages=[
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ],
        response_format={"type": "json_object"},
        max_completion_tokens=prompt.max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts = []
    async for chunk in stream:
        for choice in chunk.choices or ():
            if choice.delta is not None and choice.delta.content:
                parts.append(choice.delta.content)
    contract.parse(prompt.step, "".join(parts))


async def measure(base_url: str, calls: int, warmup: int) -> list[dict[str, Any]]:
    pools = [Pool("openai", http_client()), Pool("anthropic", http_client())]
    o = OpenAIProvider(openai_client(pools[0], "k", base_url + "/v1"), "gpt-4o-mini", pools[0])
    a_client = anthropic_client(pools[1], "k", base_url)
    a = AnthropicProvider(a_client, "claude-3-5-haiku-latest", pools[1])
    request = StepRequest("detect", MESSAGE, {"pain": "deals slip"}, tier="fast")
    rows = []
    for mode, providers in (("single", [o]), ("hedge", [o, a]), ("race", [o, a])):
        log = Records()
        router = Router(
            {"fast": providers},
            config=RouterConfig(mode=mode, explore=0),  # type: ignore[arg-type]
            recorder=CallRecorder(log),
        )
        direct_ms: list[float] = []
        router_ms: list[float] = []
        own_ms: list[float] = []
        for i in range(warmup + calls):
            order = (0, 1) if i % 2 else (1, 0)
            for which in order:
                t0 = time.perf_counter()
                if which == 0:
                    await direct_openai(o, prompts.build(request))
                    elapsed = (time.perf_counter() - t0) * 1000
                    if i >= warmup:
                        direct_ms.append(elapsed)
                else:
                    result = await router.complete(request)
                    elapsed = (time.perf_counter() - t0) * 1000
                    assert not result.call.fallback, "the fake server did not answer"
                    if i >= warmup:
                        router_ms.append(elapsed)
                        await router.recorder.flush()
                        win = next(r for r in reversed(log.records) if r.outcome == "win")
                        own_ms.append(max(0.0, result.call.ms - win.ms))
        await router.aclose()
        d, r, own = percentiles(direct_ms), percentiles(router_ms), percentiles(own_ms)
        rows.append(
            {
                "mode": mode,
                "providers": len(providers),
                "calls": calls,
                "sdk_direct_ms": {"p50": d["p50"], "p99": d["p99"]},
                "router_ms": {"p50": r["p50"], "p99": r["p99"]},
                "added_ms": {
                    "p50": round(r["p50"] - d["p50"], 3),
                    "p99": round(r["p99"] - d["p99"], 3),
                },
                "router_own_ms": {"p50": own["p50"], "p99": own["p99"]},
                "requests_per_call": round(router.stats().attempts / (warmup + calls), 2),
            }
        )
    for pool in pools:
        await pool.aclose()
    return rows


async def _drive(router: Router, calls: int, time_scale: float) -> list[float]:
    limit = asyncio.Semaphore(8)
    ms: list[float] = []

    async def one(i: int) -> None:
        step = ("capture", "detect", "generate")[i % 3]
        request = StepRequest(step, MESSAGE, {"pain": "deals slip"}, tier="fast")  # type: ignore[arg-type]
        async with limit:
            t0 = time.perf_counter()
            await router.complete(request)
            ms.append((time.perf_counter() - t0) * 1000 / time_scale)

    await asyncio.gather(*(one(i) for i in range(calls)))
    return ms


async def simulate(base_url: str, calls: int, time_scale: float) -> list[dict[str, Any]]:
    """Extra requests and latency per mode under the fake's published-latency profile."""
    rows = []
    for mode in ("single", "hedge", "race"):
        pools = [Pool("anthropic", http_client()), Pool("openai", http_client())]
        a_client = anthropic_client(pools[0], "k", base_url)
        o_client = openai_client(pools[1], "k", base_url + "/v1")
        providers = [
            AnthropicProvider(a_client, "claude-3-5-haiku-latest", pools[0]),
            OpenAIProvider(o_client, "gpt-4o-mini", pools[1]),
        ]
        router = Router(
            {"fast": providers},
            config=RouterConfig(
                mode=mode,  # type: ignore[arg-type]
                hedge_prior_s={"fast": 0.8 * time_scale},
                hedge_min_s=0.0,
            ),
            recorder=CallRecorder(None),
        )
        for pool in pools:
            await pool.warm_up()
        ms = await _drive(router, calls, time_scale)
        await router.aclose()
        stats = router.stats()
        lat = percentiles(ms)
        rows.append(
            {
                "mode": mode,
                "calls": calls,
                "extra_requests_per_call": round(stats.attempts / calls - 1, 3),
                "hedges": stats.extra_requests.hedges,
                "latency_ms_unscaled": {k: round(v) for k, v in lat.items()},
            }
        )
        for pool in pools:
            await pool.aclose()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.measure_router", description=__doc__)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--simulate",
        type=int,
        metavar="CALLS",
        help="instead: extra requests and latency per mode under the realistic profile",
    )
    p.add_argument("--time-scale", type=float, default=0.1, help="for --simulate")
    args = p.parse_args(argv)
    if args.simulate:
        proc, base_url = start_fake("realistic", args.time_scale)
        try:
            sim = asyncio.run(simulate(base_url, args.simulate, args.time_scale))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        if args.json:
            print(json.dumps(sim, indent=2))
            return 0
        print(f"Realistic latency profile (published TTFTs), {args.simulate} calls per mode, "
              "fast tier (Haiku, GPT-4o-mini); latency in unscaled ms")
        for row in sim:
            lat = row["latency_ms_unscaled"]
            print(
                f"{row['mode']:7} extra requests/call {row['extra_requests_per_call']:>6.3f}  "
                f"p50 {lat['p50']:>5} ms  p95 {lat['p95']:>5} ms  p99 {lat['p99']:>5} ms"
            )
        return 0
    proc, base_url = start_fake()
    try:
        rows = asyncio.run(measure(base_url, args.calls, args.warmup))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Router overhead per call, zero-latency fake, {args.calls} calls per mode")
    print(
        f"{'mode':7} {'SDK direct p50/p99':>19} {'router p50/p99':>16} "
        f"{'added p50/p99':>15} {'router own p50/p99':>19} {'req/call':>8}"
    )
    for row in rows:
        d, r, a = row["sdk_direct_ms"], row["router_ms"], row["added_ms"]
        own = row["router_own_ms"]
        print(
            f"{row['mode']:7} {d['p50']:>8.2f} / {d['p99']:<8.2f} "
            f"{r['p50']:>7.2f} / {r['p99']:<6.2f} "
            f"{a['p50']:>+6.2f} / {a['p99']:<+6.2f} {own['p50']:>8.3f} / {own['p99']:<8.3f} "
            f"{row['requests_per_call']:>6}"
        )
    print("ms; added = router minus SDK direct at the same percentile; own = router total "
          "minus the winning provider call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
