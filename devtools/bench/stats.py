"""Small numeric helpers shared by the benchmark's reports."""

from __future__ import annotations

from collections.abc import Iterable

from engine.stats import quantile


def quantiles(values: Iterable[float], qs: Iterable[int] = (50, 95, 99)) -> dict[str, float]:
    data = sorted(values)
    if not data:
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": quantile(data, q / 100) for q in qs}


def rate(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def rss_mb() -> float:
    """Resident memory of this process, from /proc/self/status (VmRSS), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pin_blas_threads(n: int = 1) -> int | None:
    """Limit OpenBLAS (numpy's BLAS, used by the local MiniLM embedder) to `n` threads; returns
    the previous count, or None when no OpenBLAS is loaded.

    Measured here (2 cores, other work running): one MiniLM embedding took 250 ms p50 with
    OpenBLAS's default 2 threads and 28 ms with 1 — its threads spin against the event loop and
    the fake server. OPENBLAS_NUM_THREADS=1 does the same when set before numpy loads.
    """
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    before = int(getter())
                    setter(n)
                    return before
    return None
