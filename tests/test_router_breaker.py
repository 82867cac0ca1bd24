"""The circuit breaker's rules, on a fake clock."""

from __future__ import annotations

from engine.llm.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_five_straight_failures_and_probes_after_the_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(cooldown_s=30, clock=clock)
    for _ in range(4):
        b.failure()
    assert b.state == "closed" and b.available()
    b.failure()
    assert b.state == "open" and not b.available() and not b.acquire()
    clock.now += 29.9
    assert not b.available()
    clock.now += 0.2
    assert b.snapshot()["state"] == "half_open"
    assert b.acquire() and b.state == "half_open"
    assert not b.acquire()  # one probe at a time
    b.failure()  # the probe failed: open again, for another cooldown
    assert b.state == "open" and not b.available() and b.times_opened == 2
    clock.now += 30
    assert b.acquire()
    b.success()
    assert b.state == "closed" and b.snapshot()["recent_failures"] == 0


def test_opens_at_half_errors_over_the_last_twenty_calls() -> None:
    b = CircuitBreaker(clock=Clock())
    for i in range(20):  # alternate: never 5 in a row, but 50% of the window
        b.failure() if i % 2 else b.success()
        if b.state == "open":
            break
    assert b.state == "open" and i == 9  # opens once 10 calls (the minimum) show 50% errors
    b2 = CircuitBreaker(clock=Clock())
    for i in range(40):  # one failure in three: stays closed
        b2.failure() if i % 3 == 0 else b2.success()
    assert b2.state == "closed"


def test_cancelled_calls_are_no_verdict_and_free_the_probe() -> None:
    clock = Clock()
    b = CircuitBreaker(cooldown_s=1, clock=clock)
    for _ in range(5):
        b.failure()
    clock.now += 1
    assert b.acquire()
    b.release()  # the probe lost a race: no verdict, the next call may probe
    assert b.state == "half_open" and b.acquire()


def test_down_and_bad_answers_are_counted_apart_and_say_why_it_opened() -> None:
    b = CircuitBreaker(clock=Clock())
    for _ in range(4):
        b.failure("down")
    b.failure("bad")  # five failures in a row, but not five of one kind
    assert b.state == "closed"
    for _ in range(4):
        b.failure("bad")
    assert b.state == "open" and b.opened_for == "bad"
    snap = b.snapshot()
    assert snap["opened_for"] == "bad" and snap["times_opened"] == 1
    b2 = CircuitBreaker(clock=Clock())
    for _ in range(5):
        b2.failure()  # the default kind: down
    assert b2.opened_for == "down"
