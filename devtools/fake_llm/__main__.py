"""Run the fake LLM server in its own process (for benchmarks).

    python -m devtools.fake_llm --port 8765 --profile realistic --time-scale 1 --seed 7 [--h2-tls]

Prints one JSON line with the URLs, then serves until interrupted. Drive it over HTTP:
POST /_fake/faults, POST /_fake/config, GET /_fake/requests (see core.Core._control).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from .server import FakeLLMServer


async def _main(args: argparse.Namespace) -> None:
    server = FakeLLMServer(
        latency_profile=args.profile, time_scale=args.time_scale, seed=args.seed, host=args.host
    )
    url = await server.start(args.port)
    info = {"base_url": url, "openai_base_url": url + "/v1"}
    if args.h2_tls:
        tls = await server.start_h2_tls(args.h2_port)
        info.update(h2_base_url=tls.base_url, ca_pem_path=tls.ca_pem_path)
    print(json.dumps(info), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m devtools.fake_llm", description=__doc__.splitlines()[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--profile", default="realistic")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--h2-tls", action="store_true")
    p.add_argument("--h2-port", type=int, default=0)
    args = p.parse_args(argv)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
