"""CPU time of the offline tier's capture + detect per golden message (not a test).

    python -m devtools.rules_timing
"""

from __future__ import annotations

import json
import time

from engine.data import GOLDEN
from engine.rules.capture import capture
from engine.rules.detect import detect, read


def main(passes: int = 5) -> None:
    rows = [json.loads(line) for line in GOLDEN.read_text("utf-8").splitlines() if line.strip()]
    us: list[float] = []
    for _ in range(passes):
        for row in rows:
            read.cache_clear()  # the full cost, not a memoised reading of the same text
            started = time.thread_time()
            capture(row["text"], row.get("context"))
            detect(row["text"], row.get("context"))
            us.append((time.thread_time() - started) * 1e6)
    us.sort()
    print(
        f"{len(us)} calls: mean {sum(us) / len(us):.0f} µs, p50 {us[len(us) // 2]:.0f} µs, "
        f"p99 {us[int(len(us) * 0.99)]:.0f} µs (CPU time, capture + detect)"
    )


if __name__ == "__main__":
    main()
