"""`sales-agent bench --instances 1,2,3`: turns per second with N real `sales-agent run`
processes sharing one Postgres database, against the fake Slack.

One fake Slack (devtools/fake_slack.py, `spread=True`: each envelope goes to one open Socket
Mode connection, round-robin, as Slack hands an app's events to one of its connections) and N
bot processes, each as deployed: `sales-agent run` with SLACK_BOT_TOKEN, SLACK_APP_TOKEN,
SLACK_API_URL pointing at the fake, DATABASE_URL, and no provider key (the offline tier, so
what is measured is the bot, the engine and the database, not a model). A warm-up of a few
messages per instance first; then M messages (texts of engine/data/golden.jsonl) over K
threads in several channels are pushed all at once, and a turn counts as done when its card
arrives (a chat.stopStream, chat.update or chat.postMessage carrying blocks).

turns/s = M / (last card − first push). Per instance: the turns it ran (the envelopes the
fake gave its connection: an instance runs what it accepts unless a lease runs out), its CPU
seconds over the window (/proc/PID/stat), and the Postgres connections it held
(pg_stat_activity by application_name, which each instance's DATABASE_URL sets). With a
throwaway server (`--database-url auto`) also the server's CPU seconds: the postmaster's own
and its children's, live and exited. And the load per turn from pg_stat_database, as
`--overhead` reports it. SQLite with one instance runs first, for reference (SQLite is one
process's store).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from devtools.fake_slack import FakeSlack, app_mention_event, new_ts

from . import pg

__all__ = ["Server", "measure", "messages", "passed_settings", "table"]

BOT_TOKEN = "xoxb-1000-2000-BENCHINSTANCES"
APP_TOKEN = "xapp-1-A0001-3000-BENCHINSTANCES"
_GOLDEN = Path(__file__).resolve().parents[2] / "engine" / "data" / "golden.jsonl"
_TICK = os.sysconf("SC_CLK_TCK")
# Variables a bot process must not inherit from the shell running the bench: another token, a
# provider or endpoint (the run is on the offline tier), another store, one HTTP port for all.
# Other SALES_AGENT_* settings (SALES_AGENT_EMBEDDER=none, say) reach every instance.
_STRIP = (
    "SLACK_",
    "DATABASE_URL",
    "SALES_AGENT_DB",
    "SALES_AGENT_ENDPOINTS",
    "SALES_AGENT_HTTP_PORT",
    "SALES_AGENT_LOG_LEVEL",
)
WARM_CHANNEL = "C99"  # the warm-up's threads, left out of the counts
_SPAWN = "import sys, app; sys.exit(app.main(['run']))"


@dataclass(frozen=True)
class Server:
    """Where the runs' scratch databases go; `data_dir` when we started it (its CPU is ours
    to read)."""

    url: str
    data_dir: Path | None = None


@contextlib.contextmanager
def auto_server() -> Iterator[Server]:
    from devtools.pgserver import PostgresServer

    with PostgresServer.start() as server:
        yield Server(server.url, server.root / "data")


@dataclass
class Message:
    channel: str
    thread: int  # index of its thread
    text: str
    user: str


def messages(count: int, threads: int, *, channels: int = 8, seed: int = 5) -> list[Message]:
    """`count` messages over `threads` threads in `channels` channels, in the order a busy
    workspace sends them: every thread's first message, then every thread's second, ..."""
    texts = [json.loads(line)["text"] for line in _GOLDEN.read_text().splitlines() if line]
    rng = random.Random(seed)
    rng.shuffle(texts)
    threads = max(1, min(threads, count))
    return [
        Message(
            channel=f"C{(i % threads) % channels + 1}",
            thread=i % threads,
            text=texts[i % len(texts)],
            user=f"U{(i % threads) % 20 + 1}",
        )
        for i in range(count)
    ]


@dataclass
class Instance:
    index: int
    proc: asyncio.subprocess.Process
    connection: int  # its Socket Mode connection's number on the fake
    cpu_before: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class RunResult:
    backend: str
    instances: int
    messages: int
    threads: int
    wall_s: float
    completed: int
    turns_per_s: float
    per_instance: list[dict[str, Any]] = field(default_factory=list)
    bench_cpu_s: float = 0.0  # this process: the fake Slack serving every instance
    db_cpu_s: float | None = None
    db_load_per_turn: dict[str, float] = field(default_factory=dict)
    db_tables_per_turn: dict[str, dict[str, float]] = field(default_factory=dict)
    db_connections_peak: int | None = None
    # Every core's busy time over the window: ours (instances, fake Slack, server) and others'.
    machine_busy_cpu_s: float = 0.0

    @property
    def others_cpu_s(self) -> float | None:
        if self.db_cpu_s is None and self.backend == "postgres":
            return None  # the server's share is unknown (not ours to read)
        ours = sum(float(i["cpu_s"]) for i in self.per_instance) + self.bench_cpu_s
        return self.machine_busy_cpu_s - ours - (self.db_cpu_s or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "instances": self.instances,
            "messages": self.messages,
            "threads": self.threads,
            "wall_s": round(self.wall_s, 2),
            "completed": self.completed,
            "turns_per_s": round(self.turns_per_s, 1),
            "per_instance": self.per_instance,
            "bench_cpu_s": round(self.bench_cpu_s, 2),
            "db_cpu_s": None if self.db_cpu_s is None else round(self.db_cpu_s, 2),
            "db_load_per_turn": self.db_load_per_turn,
            "db_tables_per_turn": self.db_tables_per_turn,
            "db_connections_peak": self.db_connections_peak,
            "machine_busy_cpu_s": round(self.machine_busy_cpu_s, 2),
            "machine_cores_busy": round(self.machine_busy_cpu_s / self.wall_s, 2)
            if self.wall_s > 0
            else None,
            "others_cpu_s": None if self.others_cpu_s is None else round(self.others_cpu_s, 2),
        }


# Reading processes -------------------------------------------------------------------------


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process (+ its reaped children's with `children`), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the name: state is field 3 of proc(5); utime, stime, cutime, cstime are 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (/proc/stat: all but idle and
    iowait), whoever ran: on a shared machine, the others' work shows as the difference."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / _TICK


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def server_cpu_seconds(data_dir: Path) -> float:
    """The server's CPU so far: the postmaster's, its exited backends' (cutime, cstime) and
    its live children's."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster, children=True)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == postmaster:  # ppid
                total += (int(stat[11]) + int(stat[12])) / _TICK
    return total


# One run ----------------------------------------------------------------------------------


async def measure(
    *,
    backend: str,
    instances: int,
    count: int,
    threads: int,
    out_dir: Path,
    server: Server | None = None,
    warm: int = 4,
    timeout_s: float = 300.0,
    say: Callable[[str], None] = lambda _m: None,
) -> RunResult:
    """One run: `instances` bot processes on a fresh store (SQLite file or scratch database)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with _store(backend, out_dir, server) as target:
        async with FakeSlack(spread=True) as fake:
            procs: list[Instance] = []
            try:
                for i in range(instances):
                    procs.append(await _spawn(fake, i, target, out_dir))
                say(f"instances[{backend} ×{instances}]: {instances} connected")
                return await _drive(
                    fake, procs, backend, target, server, count, threads, warm, timeout_s, say
                )
            finally:
                await _stop(procs)


@contextlib.contextmanager
def _store(backend: str, out_dir: Path, server: Server | None) -> Iterator[str]:
    if backend == "sqlite":
        db = out_dir / "instances.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        yield str(db)
        return
    assert server is not None, "Postgres runs need a server"
    with pg.scratch_database(server.url) as url:
        yield url


def passed_settings() -> dict[str, str]:
    """The SALES_AGENT_* settings every instance runs with (none is a secret), its store aside."""
    env = _env(0, "x.db", "http://127.0.0.1/")
    return {
        k: v
        for k, v in sorted(env.items())
        if k.startswith("SALES_AGENT_") and k != "SALES_AGENT_DB"
    }


def _env(index: int, target: str, api_url: str) -> dict[str, str]:
    from engine.llm.providers import PROVIDERS

    keys = {row.key_env for row in PROVIDERS if row.key_env}
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP) and k not in keys}
    env |= {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": api_url,
        "SALES_AGENT_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if pg_url := target if target.startswith("postgresql://") else None:
        sep = "&" if "?" in pg_url else "?"
        env["DATABASE_URL"] = f"{pg_url}{sep}application_name=sa-bench-{index + 1}"
    else:
        env["SALES_AGENT_DB"] = target
    return env


async def _spawn(fake: FakeSlack, index: int, target: str, out_dir: Path) -> Instance:
    """Start instance `index` and wait for its Socket Mode connection, one at a time, so
    the fake's connection numbers say which instance each envelope went to."""
    log = out_dir / f"instance-{index + 1}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SPAWN,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=_env(index, target, fake.api_url),
            cwd=out_dir,
        )
    try:
        await fake.wait_connected(timeout=60, count=index + 1)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"instance {index + 1} did not connect; its log ends:\n{tail}") from None
    return Instance(index, proc, max(fake.connection_numbers))


async def _stop(procs: Sequence[Instance]) -> None:
    for inst in procs:
        if inst.proc.returncode is None:
            inst.proc.send_signal(signal.SIGTERM)
    for inst in procs:
        try:
            await asyncio.wait_for(inst.proc.wait(), 20)
        except TimeoutError:
            inst.proc.kill()
            await inst.proc.wait()


def _cards(fake: FakeSlack, since: int) -> tuple[int, float]:
    """Replies finished as a card among the fake's calls from index `since`: how many, and
    when the last one arrived (monotonic)."""
    done: set[str] = set()
    last = 0.0
    for call in fake.calls[since:]:
        if not call.ok or "blocks" not in call.args:
            continue
        if call.method == "chat.postMessage":
            ts = str(call.response.get("ts"))
        elif call.method in ("chat.stopStream", "chat.update"):
            ts = str(call.args.get("ts"))
        else:
            continue
        if ts not in done:
            done.add(ts)
            last = max(last, call.at)
    return len(done), last


async def _push(fake: FakeSlack, batch: Sequence[Message], parents: dict[int, str]) -> None:
    for m in batch:
        parent = parents.get(m.thread)
        ts = new_ts()
        await fake.push_event(
            app_mention_event(m.text, user=m.user, channel=m.channel, ts=ts, thread_ts=parent)
        )
        parents.setdefault(m.thread, ts)


async def _wait_cards(fake: FakeSlack, since: int, want: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        n, _ = _cards(fake, since)
        if n >= want or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.05)


class _Sampler:
    """pg_stat_activity every quarter second, in a thread: the peak connections each
    instance (application_name) held."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak: dict[str, int] = {}
        self.total_peak = 0
        self._stop = asyncio.Event()

    def sample(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
            ).fetchall()
        total = 0
        for name, n in rows:
            self.peak[str(name)] = max(self.peak.get(str(name), 0), int(n))
            total += int(n)
        self.total_peak = max(self.total_peak, total)

    async def run(self) -> None:
        while not self._stop.is_set():
            await asyncio.to_thread(self.sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.25)

    def stop(self) -> None:
        self._stop.set()


async def _drive(
    fake: FakeSlack,
    procs: list[Instance],
    backend: str,
    target: str,
    server: Server | None,
    count: int,
    threads: int,
    warm: int,
    timeout_s: float,
    say: Callable[[str], None],
) -> RunResult:
    n = len(procs)
    # Warm-up, on threads of their own: each instance's first turns load what it loads lazily.
    warmup = [
        Message(channel=WARM_CHANNEL, thread=10_000 + i, text="We use Gong today", user="U99")
        for i in range(warm * n)
    ]
    await _push(fake, warmup, {})
    got = await _wait_cards(fake, 0, len(warmup), 60)
    if got < len(warmup):
        raise RuntimeError(f"warm-up: {got} of {len(warmup)} cards within 60 s")
    pg_url = None if backend == "sqlite" else target
    before = pg.database_counters(pg_url) if pg_url else {}
    tables_before = pg.table_counters(pg_url) if pg_url else {}
    db_cpu = server_cpu_seconds(server.data_dir) if pg_url and server and server.data_dir else None
    for inst in procs:
        inst.cpu_before = cpu_seconds(inst.pid)
    bench_cpu = time.process_time()
    busy = machine_busy_seconds()
    sampler = _Sampler(pg_url) if pg_url else None
    sampling = asyncio.create_task(sampler.run()) if sampler else None

    work = messages(count, threads)
    since, first_envelope = len(fake.calls), len(fake.envelopes)
    started = time.monotonic()
    await _push(fake, work, {})
    say(f"instances[{backend} ×{n}]: {count} messages pushed in {time.monotonic() - started:.1f} s")
    completed = await _wait_cards(fake, since, count, timeout_s)
    _, last = _cards(fake, since)
    wall = (last or time.monotonic()) - started

    bench_cpu = time.process_time() - bench_cpu
    busy = machine_busy_seconds() - busy
    cpu = {inst.pid: cpu_seconds(inst.pid) - inst.cpu_before for inst in procs}
    rss = {inst.pid: rss_mb(inst.pid) for inst in procs}
    if server and server.data_dir and db_cpu is not None:  # Postgres runs only
        db_cpu = server_cpu_seconds(server.data_dir) - db_cpu
    if sampler and sampling:
        sampler.stop()
        await sampling
    delivered = [fake.delivered_to[e["envelope_id"]] for e in fake.envelopes[first_envelope:]]
    await _stop(procs)
    load: dict[str, float] = {}
    tables: dict[str, dict[str, float]] = {}
    if pg_url:
        pg.wait_idle(pg_url)  # stopped instances' backends publish their counters on exit
        load = pg.per_turn(before, pg.database_counters(pg_url), count)
        tables = pg.tables_per_turn(tables_before, pg.table_counters(pg_url), count)
    per_instance = [
        {
            "instance": inst.index + 1,
            "pid": inst.pid,
            # Each instance runs the turns of the envelopes Slack gave it (no lease ran out).
            "turns": delivered.count(inst.connection),
            "cpu_s": round(cpu[inst.pid], 2),
            "cpu_share": round(cpu[inst.pid] / wall, 2) if wall > 0 else None,
            "rss_mb": round(rss[inst.pid], 1),
            "db_connections_peak": (
                sampler.peak.get(f"sa-bench-{inst.index + 1}", 0) if sampler else None
            ),
        }
        for inst in procs
    ]
    result = RunResult(
        backend=backend,
        instances=n,
        messages=count,
        threads=min(threads, count),
        wall_s=wall,
        completed=completed,
        turns_per_s=completed / wall if wall > 0 else 0.0,
        per_instance=per_instance,
        bench_cpu_s=bench_cpu,
        db_cpu_s=db_cpu,
        db_load_per_turn=load,
        db_tables_per_turn=tables,
        db_connections_peak=sampler.total_peak if sampler else None,
        machine_busy_cpu_s=busy,
    )
    say(
        f"instances[{backend} ×{n}]: {completed}/{count} cards in {wall:.1f} s, "
        f"{result.turns_per_s:.0f} turns/s"
    )
    return result


# Reporting --------------------------------------------------------------------------------


def table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    runs = doc["results"]
    base = next((r for r in runs if r["backend"] == "postgres" and r["instances"] == 1), None)
    lines = [
        f"Instances on {m['nproc']} × {m['cpu']}, {m['date']}: {runs[0]['messages']} messages "
        f"over {runs[0]['threads']} threads pushed at once, offline tier; instances' settings: "
        + (", ".join(f"{k}={v}" for k, v in doc.get("settings", {}).items()) or "defaults"),
        "",
        "| store | instances | turns/s | × 1 instance | wall s | turns per instance "
        "| CPU s per instance (share of a core) | fake Slack CPU s | Postgres CPU s "
        "| cores busy (machine; others' CPU s) | Postgres connections per instance (peak) "
        "| Postgres per turn |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---|---|---|",
    ]
    for r in runs:
        inst = r["per_instance"]
        ratio = (
            f"{r['turns_per_s'] / base['turns_per_s']:.2f}"
            if base and r["backend"] == "postgres"
            else "–"
        )
        load = r["db_load_per_turn"]
        lines.append(
            f"| {r['backend']} | {r['instances']} | {r['turns_per_s']:.0f} | {ratio} | "
            f"{r['wall_s']:.1f} | {' / '.join(str(i['turns']) for i in inst)} | "
            + " / ".join(f"{i['cpu_s']:.1f} ({i['cpu_share']:.2f})" for i in inst)
            + f" | {r['bench_cpu_s']:.1f} | "
            + ("–" if r["db_cpu_s"] is None else f"{r['db_cpu_s']:.1f}")
            + f" | {r['machine_cores_busy']:.2f}"
            + ("" if r["others_cpu_s"] is None else f" ({r['others_cpu_s']:.1f})")
            + " | "
            + (
                " / ".join(str(i["db_connections_peak"]) for i in inst)
                if r["backend"] == "postgres"
                else "–"
            )
            + " | "
            + (pg.describe(load) if load else "–")
            + " |"
        )
    incomplete = [r for r in runs if r["completed"] < r["messages"]]
    for r in incomplete:
        lines.append(
            f"\nIncomplete: {r['backend']} × {r['instances']}: {r['completed']} of "
            f"{r['messages']} cards before the timeout"
        )
    return "\n".join(lines)
