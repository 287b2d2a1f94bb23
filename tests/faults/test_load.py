"""Load: 10,200 calls at concurrency 64 through LLMRuntime and OpenAIProvider, faults mixed in.

A loopback ``FaultServer`` picks each request's fate from the call's id (in its prompt) and
its attempt number, so every call's outcome and request count is known in advance. The test
proves that every call ends in exactly one result or one typed runtime error, that no call is
lost or duplicated, that nothing leaks (tasks, connections) and that memory stays flat across
rounds. Bounded and loopback only; no timing assertions.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from typing import Any

from runtime import errors
from runtime.engine.resolve import Timing
from runtime.service import LLMRuntime
from tests.faults.fault_server import FaultServer, Recorded, Reply
from tests.loopback import sse
from tests.unit.helpers import catalog
from tests.wire.openai_fakes import completion, error_body, stream_events

ROUNDS = 3
CALLS_PER_ROUND = 3_400  # 10,200 calls in all
CONCURRENCY = 64
MAX_ATTEMPTS = 3
#: Bytes the traced memory may grow from the end of the first traced round (the second) to
#: the end of the last: a leak of 1.5 kB per call (a Completion, a task, a socket) passes it.
MEMORY_GROWTH_BOUND = 5 * 1024 * 1024

OK = "ok"


@dataclass(frozen=True)
class Scenario:
    """What the server answers on each attempt (the last repeats) and how the call ends."""

    replies: tuple[str, ...]
    outcome: str | type[errors.LLMRuntimeError]  # OK, or the exact error class
    requests: int  # requests the server must see for this call

    @property
    def name(self) -> str:
        return self.outcome if isinstance(self.outcome, str) else self.outcome.__name__


# By k = id % 100: about 80% answer at once; the rest meet one fault or a lasting one.
MIX: list[tuple[range, Scenario]] = [
    (range(0, 80), Scenario(("ok",), OK, 1)),
    (range(80, 84), Scenario(("429", "ok"), OK, 2)),
    (range(84, 88), Scenario(("503", "ok"), OK, 2)),
    (range(88, 90), Scenario(("503",), errors.ServerError, MAX_ATTEMPTS)),
    (range(90, 93), Scenario(("reset", "ok"), OK, 2)),
    (range(93, 95), Scenario(("malformed",), errors.MalformedResponseError, 1)),
    (range(95, 97), Scenario(("400",), errors.BadRequestError, 1)),
    (range(97, 98), Scenario(("reset",), errors.ProviderConnectionError, MAX_ATTEMPTS)),
    (range(98, 99), Scenario(("429",), errors.RateLimitError, MAX_ATTEMPTS)),
    (range(99, 100), Scenario(("500", "502", "ok"), OK, 3)),
]
#: Streamed calls with k == 99 are cut after their first text instead: raised, never retried.
CUT_STREAM = Scenario(("cut",), errors.ProviderConnectionError, 1)


def streamed(n: int) -> bool:
    """Every fifth block of 100 ids is streamed, so each fault meets both paths."""
    return (n // 100) % 5 == 0


def scenario(n: int) -> Scenario:
    k = n % 100
    if k == 99 and streamed(n):
        return CUT_STREAM
    return next(s for ks, s in MIX if k in ks)


_ERRORS = {
    "429": Reply(
        429,
        error_body("Rate limit reached.", type="requests", code="rate_limit_exceeded"),
        headers={"retry-after-ms": "1"},
    ),
    "500": Reply(500, error_body("The server had an error.", type="server_error")),
    "502": Reply(502, "<html><body>502 Bad Gateway</body></html>"),
    "503": Reply(503, error_body("The server is overloaded.", type="server_error")),
    "400": Reply(400, error_body("Invalid value for 'temperature'.", param="temperature")),
    "reset": Reply(reset=True),
}


def reply_for(kind: str, n: int, stream: bool) -> Reply:
    if kind in _ERRORS:
        return _ERRORS[kind]
    if kind == "malformed":
        if stream:
            return Reply(chunks=sse([(None, "{not json")]))
        return Reply(body='{"choices": [', content_type="application/json")
    if kind == "cut":  # role chunk, "ok ", then a reset
        return Reply(chunks=stream_events(("ok ", str(n))), cut_after=2)
    assert kind == "ok"
    if stream:
        return Reply(chunks=stream_events(("ok ", str(n))))
    return Reply(body=completion(f"ok {n}"))


def call_id(request: Recorded) -> int:
    return int(request.json["messages"][0]["content"].removeprefix("call-"))


class MixHandler:
    """The server side: the reply for this id's next attempt (runs on the server's thread)."""

    def __init__(self) -> None:
        self.attempts: Counter[int] = Counter()

    def __call__(self, request: Recorded) -> Reply:
        n = call_id(request)
        self.attempts[n] += 1
        replies = scenario(n).replies
        kind = replies[min(self.attempts[n], len(replies)) - 1]
        return reply_for(kind, n, bool(request.json.get("stream")))


async def one_call(rt: LLMRuntime, n: int, gate: asyncio.Semaphore) -> tuple[str, int]:
    """One call, streamed or not by its id; returns (text, attempts the runtime reports)."""
    async with gate:
        if streamed(n):
            stream = rt.stream(model="m", prompt=f"call-{n}")
            try:
                text = "".join([delta async for delta in stream])
            finally:
                await stream.aclose()
            assert stream.completion is not None
            return text, stream.completion.attempts
        result = await rt.generate(model="m", prompt=f"call-{n}")
        return result.text, result.attempts


def outcome_name(outcome: Any) -> str:
    return OK if isinstance(outcome, tuple) else type(outcome).__name__


async def run_round(
    rt: LLMRuntime, server: FaultServer, handler: MixHandler, ids: range
) -> Counter[str]:
    """Run ``ids`` concurrently, check each call and the server's log; return outcome counts."""
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes = await asyncio.gather(*(one_call(rt, n, gate) for n in ids), return_exceptions=True)
    assert len(outcomes) == len(ids)

    foreign = [o for o in outcomes if isinstance(o, BaseException)]
    foreign = [o for o in foreign if not isinstance(o, errors.LLMRuntimeError)]
    assert foreign == [], f"{len(foreign)} calls ended in a foreign exception: {foreign[:3]!r}"

    wrong = []
    for n, outcome in zip(ids, outcomes, strict=True):
        want = scenario(n)
        if want.outcome == OK:
            if outcome != (f"ok {n}", want.requests):
                wrong.append((n, want, outcome))
        elif type(outcome) is not want.outcome:
            wrong.append((n, want, outcome))
    assert wrong == [], f"{len(wrong)} calls ended wrongly, e.g. {wrong[:3]!r}"

    # Every id reached the server exactly as often as its scenario says (successes: as
    # often as the runtime reported), streamed exactly when the call was a stream.
    per_id = Counter(call_id(r) for r in server.requests)
    assert per_id == {n: scenario(n).requests for n in ids}
    assert all(bool(r.json.get("stream")) == streamed(call_id(r)) for r in server.requests)
    assert server.max_in_flight <= CONCURRENCY

    counts = Counter(outcome_name(o) for o in outcomes)
    server.clear()
    handler.attempts.clear()
    return counts


async def test_ten_thousand_calls_with_faults_lose_nothing_and_leak_nothing() -> None:
    baseline = asyncio.all_tasks()
    handler = MixHandler()
    with FaultServer(handler) as server:
        cat = catalog(
            {
                "m": {
                    "provider": "p",
                    "retry": {"max_attempts": MAX_ATTEMPTS, "initial_backoff": 0.001},
                }
            },
            {
                "p": {
                    "class": "runtime.providers.openai_provider.OpenAIProvider",
                    "base_url": server.url,
                    "api_key_env": "LOAD_API_KEY",
                }
            },
        )
        # rand() == 0: backoff is 0 s; a 429's retry-after-ms of 1 is a real 1 ms sleep.
        rt = LLMRuntime(cat, environ={"LOAD_API_KEY": "sk-load"}, _timing=Timing(rand=lambda: 0.0))
        totals: Counter[str] = Counter()
        sizes: list[int] = []
        tracing = tracemalloc.is_tracing()
        try:
            for round_ in range(ROUNDS):
                if round_ == 1 and not tracing:
                    # Round 0 warms up (pool, caches) untraced: tracing triples a round's time.
                    tracemalloc.start()
                first = round_ * CALLS_PER_ROUND
                ids = range(first, first + CALLS_PER_ROUND)
                totals += await run_round(rt, server, handler, ids)
                gc.collect()
                if round_:
                    sizes.append(tracemalloc.get_traced_memory()[0])
        finally:
            if not tracing:
                tracemalloc.stop()
        await rt.aclose()
        assert await asyncio.to_thread(server.wait_for, lambda s: s.open_connections == 0), (
            f"{server.open_connections} connection(s) left open after aclose()"
        )
    assert asyncio.all_tasks() == baseline

    calls = ROUNDS * CALLS_PER_ROUND
    expected = Counter(scenario(n).name for n in range(calls))
    assert totals == expected
    assert totals[OK] + sum(v for k, v in totals.items() if k != OK) == calls
    growth = sizes[-1] - sizes[0]
    assert growth < MEMORY_GROWTH_BOUND, f"traced memory grew {growth} bytes: {sizes}"
