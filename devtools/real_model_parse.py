"""How often a real model's answers parse, per step, and how its situations compare with the
offline tier's, on holdout messages.

    python -m devtools.real_model_parse --n 30 [--url http://127.0.0.1:8088/v1] [--out DIR]

Without `--url` it starts llama-server with SmolLM2-135M-Instruct (devtools/llama_server.py,
built or fetched on first use) and stops it afterwards. N messages of
engine/data/holdout.jsonl, evenly spaced so every situation is in (the file is sorted by
situation), go through the app as a user runs it — `sales-agent replay --json`,
each message in its own thread, the response cache off — once with the server as the only
provider (`SALES_AGENT_ENDPOINTS`), one process per message so that one message's failures
do not open the circuit breaker for the next, and once on the offline tier alone.

What it reads is the app's outside: the replay's JSON cards and the `llm_calls` rows of the
SQLite file the run used (one row per request sent: step, provider, outcome, response). A row
with outcome "win" parsed; any other outcome of a provider request is a failure, by kind. An
`error:invalid_output` answer is sorted by its text (empty, no JSON, a JSON object cut short,
broken JSON, or JSON the contract refused); when the table has a column naming the rejection
reason (`reason` or `error`), its values are tallied too. Writes `real-model-parse.json` and
`.md` to `--out` (default bench-out/).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devtools import llama_server
from engine.data import HOLDOUT

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("capture", "detect", "generate")
REASON_COLUMNS = ("reason", "error", "rejection")
# Failure kinds of a call that brought no answer back.
NO_ANSWER = ("timeout", "connection")
# Variables of the caller's environment that would add providers or change the run.
FOREIGN_PREFIXES = ("SALES_AGENT_", "ANTHROPIC_", "OPENAI_", "SLACK_")


@dataclass
class StepFigures:
    attempts: int = 0
    parsed: int = 0
    # Turns whose card took this step from the offline tier (after failures, a timeout, or
    # an open circuit breaker, which sends no request at all).
    offline_turns: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        """Attempts that got an answer back: not cut by the deadline before it came, not a
        broken connection. What "parses under the schema" is measured on."""
        return self.attempts - sum(self.failures.get(k, 0) for k in NO_ANSWER)


@dataclass
class Report:
    n: int
    endpoint: str
    model: str
    seconds: float
    steps: dict[str, StepFigures]
    # Per turn: the card's situation; detect "by the model" when its StepCall names the endpoint.
    model_answered_detect: int
    card_accuracy: float
    model_answered_accuracy: float | None
    offline_accuracy: float
    offline_accuracy_same_turns: float | None
    settings: dict[str, str]
    commit: str
    load_average: tuple[float, float, float]


def app_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without provider keys or app settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    return {**env, **extra}


def replay_each(
    messages: Sequence[Mapping[str, Any]], env: Mapping[str, str], work: Path
) -> list[dict[str, Any]]:
    """One `replay` process per message: the circuit breaker opens after five bad answers in
    a row and then sends nothing for 30 s, so in one process a weak model's first message
    decides all the others (5 requests were sent for 30 messages that way)."""
    cards: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        cards += replay([message], env, work, first=i)
    return cards


def replay(
    messages: Sequence[Mapping[str, Any]], env: Mapping[str, str], work: Path, *, first: int = 0
) -> list[dict[str, Any]]:
    """One card per message through `sales-agent replay --json`, each message its own thread."""
    source = work / "messages.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for i, m in enumerate(messages, start=first):
            f.write(json.dumps({"thread": f"m{i}", "text": m["text"]}) + "\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "replay", str(source), "--json"],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"replay failed ({done.returncode}):\n{done.stderr[-2000:]}")
    cards = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(cards) != len(messages):
        raise RuntimeError(f"replay gave {len(cards)} cards for {len(messages)} messages")
    return cards


def answer_kind(text: str) -> str:
    """What is wrong with an answer the contract refused, from its text alone."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    start = stripped.find("{")
    if start < 0:
        return "no_json"
    if _unclosed(stripped[start:]):
        return "truncated"
    end = stripped.rfind("}")
    try:
        obj = json.loads(stripped[start : end + 1])
    except json.JSONDecodeError:
        return "bad_json"
    return "contract" if isinstance(obj, dict) else "not_object"


def _unclosed(text: str) -> bool:
    """Whether the JSON that starts `text` never closes its first object (cut short)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return False
    return True


def step_figures(db: Path, provider: str) -> dict[str, StepFigures]:
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(llm_calls)")}
        reason_col = next((c for c in REASON_COLUMNS if c in columns), None)
        select = "step, outcome, response" + (f", {reason_col}" if reason_col else ", NULL")
        rows = conn.execute(
            f"SELECT {select} FROM llm_calls WHERE provider = ? ORDER BY id", (provider,)
        ).fetchall()
    figures = {step: StepFigures() for step in STEPS}
    failures: dict[str, Counter[str]] = {step: Counter() for step in STEPS}
    reasons: dict[str, Counter[str]] = {step: Counter() for step in STEPS}
    for step, outcome, response, reason in rows:
        f = figures.setdefault(step, StepFigures())
        f.attempts += 1
        if outcome == "win":
            f.parsed += 1
            continue
        kind = outcome.removeprefix("error:")
        if kind == "invalid_output":
            kind = f"invalid_output:{answer_kind(response or '')}"
        failures.setdefault(step, Counter())[kind] += 1
        if reason:
            reasons.setdefault(step, Counter())[str(reason)[:80]] += 1
    for step, f in figures.items():
        f.failures = dict(failures.get(step, Counter()).most_common())
        f.reasons = dict(reasons.get(step, Counter()).most_common(8))
    return figures


def _accuracy(
    cards: Sequence[Mapping[str, Any]], messages: Sequence[Mapping[str, Any]], turns: Sequence[int]
) -> float | None:
    """Situation accuracy over `turns`; an `also_ok` label counts, as in `sales-agent eval`."""
    if not turns:
        return None
    ok = sum(
        cards[i]["situation"] in (messages[i]["situation"], *messages[i].get("also_ok", ()))
        for i in turns
    )
    return ok / len(turns)


def sample(holdout: Path, n: int) -> list[dict[str, Any]]:
    """N messages evenly spaced through the file, in its order."""
    rows = [json.loads(line) for line in holdout.read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if r.get("text")]
    if n >= len(rows):
        return rows
    return [rows[i * len(rows) // n] for i in range(n)]


@contextmanager
def _endpoint(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    ready = llama_server.ensure()
    with llama_server.serving(ready) as server:
        yield server.base_url


def measure(n: int, url: str | None, turn_budget: float | None, holdout: Path) -> Report:
    messages = sample(holdout, n)
    name = "llama"
    settings = {"SALES_AGENT_CACHE": "off", "SALES_AGENT_EMBEDDER": "none"}
    if turn_budget is not None:
        settings["SALES_AGENT_TURN_BUDGET_S"] = str(turn_budget)
    with tempfile.TemporaryDirectory(prefix="real-model-parse-") as tmp:
        work = Path(tmp)
        offline = replay(
            messages, app_env({**settings, "SALES_AGENT_DB": str(work / "offline.db")}), work
        )
        started = time.monotonic()
        with _endpoint(url) as base_url:
            endpoints = json.dumps(
                [{"name": name, "base_url": base_url, "model": llama_server.MODEL_NAME}]
            )
            db = work / "model.db"
            env = app_env(
                {**settings, "SALES_AGENT_DB": str(db), "SALES_AGENT_ENDPOINTS": endpoints}
            )
            cards = replay_each(messages, env, work)
        seconds = time.monotonic() - started
        steps = step_figures(db, name)
    for card in cards:
        for step, f in steps.items():
            f.offline_turns += str(card["providers"].get(step, "")).startswith("offline/")
    every = range(len(messages))
    by_model = [i for i in every if str(cards[i]["providers"].get("detect", "")).startswith(name)]
    return Report(
        n=len(messages),
        endpoint=base_url,
        model=llama_server.MODEL_NAME,
        seconds=round(seconds, 1),
        steps=steps,
        model_answered_detect=len(by_model),
        card_accuracy=_accuracy(cards, messages, every) or 0.0,
        model_answered_accuracy=_accuracy(cards, messages, by_model),
        offline_accuracy=_accuracy(offline, messages, every) or 0.0,
        offline_accuracy_same_turns=_accuracy(offline, messages, by_model),
        settings=settings,
        commit=_commit(),
        load_average=os.getloadavg(),
    )


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def markdown(r: Report) -> str:
    lines = [
        f"{r.n} holdout messages, {r.model} at {r.endpoint}, commit {r.commit}, "
        f"{r.seconds:.0f} s, load average {r.load_average[0]:.1f} at the end "
        f"({', '.join(f'{k}={v}' for k, v in r.settings.items())})",
        "",
        "| step | attempts parsed | answers parsed | failures by kind "
        "| turns on the offline tier |",
        "|---|---|---|---|---|",
    ]
    for step, f in r.steps.items():
        kinds = ", ".join(f"{k} {v}" for k, v in f.failures.items()) or "–"
        lines.append(
            f"| {step} | {f.parsed} of {f.attempts} | {f.parsed} of {f.answered} | {kinds} | "
            f"{f.offline_turns} of {r.n} |"
        )
    if any(f.reasons for f in r.steps.values()):
        lines += ["", "Rejection reasons (from llm_calls):"]
        for step, f in r.steps.items():
            for reason, count in f.reasons.items():
                lines.append(f"- {step}: {reason} ×{count}")
    lines += [
        "",
        "| situation accuracy | value |",
        "|---|---|",
        f"| cards of the model run (fallbacks included) | {_pct(r.card_accuracy)} |",
        f"| detect answered by the model: {r.model_answered_detect} of {r.n} turns | "
        f"{_pct(r.model_answered_accuracy)} |",
        f"| offline tier, same {r.model_answered_detect} turns | "
        f"{_pct(r.offline_accuracy_same_turns)} |",
        f"| offline tier, all {r.n} turns | {_pct(r.offline_accuracy)} |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.real_model_parse", description=__doc__)
    p.add_argument("--n", type=int, default=30, help="holdout messages (from the top)")
    p.add_argument("--url", help="an OpenAI-compatible base URL already serving the model")
    p.add_argument("--turn-budget", type=float, help="SALES_AGENT_TURN_BUDGET_S for the run")
    p.add_argument("--holdout", type=Path, default=HOLDOUT)
    p.add_argument("--out", type=Path, default=ROOT / "bench-out")
    args = p.parse_args(argv)
    try:
        report = measure(args.n, args.url, args.turn_budget, args.holdout)
    except (llama_server.SetupError, RuntimeError) as exc:
        print(f"real_model_parse: error: {exc}", file=sys.stderr)
        return 1
    table = markdown(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real-model-parse.json").write_text(
        json.dumps(asdict(report), indent=2), encoding="utf-8"
    )
    (args.out / "real-model-parse.md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
