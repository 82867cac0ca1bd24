"""Latency of the numpy MiniLM embedder: `python -m devtools.bench_embedder`.

Prints p50/p95/p99 in ms for one 12-word sales message and for a batch of 16, 500 runs each.
Writes nothing to disk.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from engine.cache.minilm import MiniLMEmbedder

MESSAGE = "Thanks for the demo, but we have no budget until next quarter."
BATCH = [
    MESSAGE,
    "Can you send me the pricing for the enterprise plan?",
    "Not interested, please remove me from your mailing list.",
    "Let's schedule a demo next Tuesday at 3pm.",
    "Who else is involved in the purchasing decision?",
    "We're already using a competitor and we're happy with them.",
    "The contract renewal is coming up in Q3, circle back then.",
    "Our CFO needs to sign off on anything above ten thousand dollars.",
    "Could you share a case study from a company in logistics?",
    "We tried a similar tool last year and adoption was poor.",
    "What does onboarding look like for a team of forty reps?",
    "Send me a proposal and I will forward it to procurement.",
    "Is there a discount if we commit to a two-year contract?",
    "I'm not the right person, talk to our head of operations.",
    "Security review is mandatory, do you have SOC 2 Type II?",
    "Honestly the timing is bad, we are in the middle of a reorg.",
]


def _percentiles(samples_ms: Sequence[float]) -> str:
    ordered = sorted(samples_ms)

    def pick(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return f"p50={pick(50):7.2f}  p95={pick(95):7.2f}  p99={pick(99):7.2f} ms"


def _time(embedder: MiniLMEmbedder, texts: list[str], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        embedder.encode(texts)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        embedder.encode(texts)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500, help="timed runs per case (default 500)")
    parser.add_argument(
        "--batch-runs", type=int, default=500, help="timed runs of the batch (default 500)"
    )
    args = parser.parse_args()

    start = time.perf_counter()
    embedder = MiniLMEmbedder()
    load_ms = (time.perf_counter() - start) * 1000.0
    print(f"model load (incl. sha256 check): {load_ms:.0f} ms")
    print(f"single message ({len(MESSAGE.split())} words) x{args.runs}:  ", end="")
    print(_percentiles(_time(embedder, [MESSAGE], args.runs)))
    print(f"batch of {len(BATCH)} x{args.batch_runs}:  ", end="")
    print(_percentiles(_time(embedder, BATCH, args.batch_runs)))


if __name__ == "__main__":
    main()
