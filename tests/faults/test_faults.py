"""Faults injected by a loopback server, through LLMRuntime and the real OpenAI wire provider.

Each test asserts the exact number of requests the server received, the exact waits the
runtime asked for (an injected FakeClock: nothing sleeps between attempts; ``rand()`` is 0.5,
so with ``initial_backoff: 1`` the jittered backoffs are 0.5, 1.0, 2.0...) and the outcome.
Real network timeouts still take real time, so they are kept at 0.2 s.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest

from runtime import errors
from runtime.service import LLMRuntime
from tests.faults.conftest import KEY, MakeRuntime
from tests.faults.fault_server import FaultServer, Recorded, Reply
from tests.loopback import sse
from tests.unit.helpers import FakeClock
from tests.wire.openai_fakes import completion, error_body, stream_events

RETRY = {"initial_backoff": 1.0, "multiplier": 2.0, "max_backoff": 8.0}


def model(**fields: Any) -> dict[str, Any]:
    """Model "m" on provider "p" with the test retry policy (``retry=`` fields merged in)."""
    retry = {**RETRY, **fields.pop("retry", {})}
    return {"provider": "p", "retry": retry, **fields}


def rate_limited(**headers: str) -> Reply:
    body = error_body(
        "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
        type="requests",
        code="rate_limit_exceeded",
    )
    return Reply(429, body, headers=headers)


def overloaded(status: int = 503) -> Reply:
    return Reply(status, error_body("The server is overloaded.", type="server_error"))


def ok(text: str = "fine") -> Reply:
    return Reply(body=completion(text))


def where(srv: FaultServer) -> str:
    """The server's host:port, as errors name it."""
    return srv.url.removeprefix("http://")


def models_sent(srv: FaultServer) -> list[str]:
    return [r.json["model"] for r in srv.requests]


async def until(server: FaultServer, predicate: Callable[[FaultServer], bool]) -> None:
    """Wait (at most 5 s) until the server's state satisfies ``predicate``.

    The wait runs in a worker thread so this loop keeps serving the client meanwhile.
    """
    assert await asyncio.to_thread(server.wait_for, predicate), "the server never got there"


async def collect(stream: Any, seen: list[str]) -> None:
    async for delta in stream:
        seen.append(delta)


# ---------------------------------------------------------------------------- 429


@pytest.mark.parametrize(
    ("headers", "sleeps"),
    [
        pytest.param({"retry-after": "2"}, [2.0], id="retry-after-seconds"),
        pytest.param({"retry-after-ms": "1500"}, [1.5], id="retry-after-ms"),
        pytest.param({"retry-after-ms": "1500", "retry-after": "2"}, [1.5], id="ms-wins"),
        pytest.param({}, [0.5], id="no-hint-jittered-backoff"),
    ],
)
async def test_429_waits_as_told_then_succeeds(
    make_runtime: MakeRuntime, server: FaultServer, headers: dict[str, str], sleeps: list[float]
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    server.queue(rate_limited(**headers), ok())
    result = await rt.generate(model="m", prompt="hi")
    assert (result.text, result.model, result.attempts) == ("fine", "m", 2)
    assert clock.sleeps == sleeps
    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body  # the same request, resent


async def test_429_retry_after_http_date(
    make_runtime: MakeRuntime, server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An HTTP date is read against the wall clock: frozen here on a whole second, so the
    # wait is exactly the 5 s the date says (asyncio and the sockets use monotonic time).
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    monkeypatch.setattr(time, "time", lambda: now)
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    when = email.utils.formatdate(now + 5, usegmt=True)
    server.queue(rate_limited(**{"retry-after": when}), ok())
    assert await rt.completion("hi", "m") == "fine"
    assert len(server.requests) == 2
    assert clock.sleeps == [5.0]


async def test_429_retry_after_beyond_max_is_not_waited_for(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model(retry={"max_retry_after": 10})}, clock=clock)
    server.queue(rate_limited(**{"retry-after": "30"}))
    with pytest.raises(errors.RateLimitError) as info:
        await rt.completion("hi", "m")
    assert info.value.retry_after == 30.0
    assert info.value.status_code == 429
    assert "Rate limit reached for gpt-4o-mini" in str(info.value)
    assert KEY not in str(info.value)
    assert clock.sleeps == []
    assert len(server.requests) == 1


async def test_429_retry_after_beyond_max_tries_the_fallback_at_once(
    make_runtime: MakeRuntime, server: FaultServer, other_server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime(
        {
            "m": model(retry={"max_retry_after": 10}, fallbacks=["backup"]),
            "backup": {"provider": "q", "provider_model": "backup-vendor"},
        },
        clock=clock,
    )
    server.queue(rate_limited(**{"retry-after": "30"}))
    other_server.queue(ok("from backup"))
    result = await rt.generate(model="m", prompt="hi")
    assert (result.text, result.model, result.provider, result.attempts) == (
        "from backup",
        "backup",
        "q",
        2,
    )
    assert clock.sleeps == []
    assert (models_sent(server), models_sent(other_server)) == (["m"], ["backup-vendor"])


async def test_total_wait_budget_stops_the_retries(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model(retry={"max_attempts": 10, "total_wait_budget": 5})}, clock=clock)
    server.queue(*[rate_limited(**{"retry-after": "2"}) for _ in range(3)])
    with pytest.raises(errors.RateLimitError):
        await rt.completion("hi", "m")
    assert clock.sleeps == [2.0, 2.0]  # a third wait would pass the budget of 5 s
    assert len(server.requests) == 3


# ---------------------------------------------------------------------------- 5xx


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(overloaded(500), id="500"),
        pytest.param(Reply(502, "<html><body>502 Bad Gateway</body></html>"), id="502-html"),
        pytest.param(overloaded(503), id="503"),
        pytest.param(Reply(reset=True), id="reset-before-the-reply"),
        pytest.param(
            Reply(chunks=[b'{"choices": ', b"[]}"], content_type="application/json", cut_after=1),
            id="reset-mid-body",
        ),
    ],
)
async def test_5xx_and_resets_are_retried_then_succeed(
    make_runtime: MakeRuntime, server: FaultServer, reply: Reply
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    server.queue(reply, ok())
    result = await rt.generate(model="m", prompt="hi")
    assert (result.text, result.attempts) == ("fine", 2)
    assert clock.sleeps == [0.5]
    assert len(server.requests) == 2


async def test_503_until_max_attempts_raises_server_error(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model(retry={"max_attempts": 3})}, clock=clock)
    server.queue(overloaded(), overloaded(), overloaded())
    with pytest.raises(errors.ServerError) as info:
        await rt.completion("hi", "m")
    assert str(info.value) == "[provider 'p', model 'm', HTTP 503] The server is overloaded."
    assert info.value.status_code == 503
    assert len(server.requests) == 3
    assert clock.sleeps == [0.5, 1.0]


async def test_503_retry_after_is_honoured(make_runtime: MakeRuntime, server: FaultServer) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    reply = overloaded()
    reply.headers["retry-after"] = "3"
    server.queue(reply, ok())
    assert await rt.completion("hi", "m") == "fine"
    assert clock.sleeps == [3.0]
    assert len(server.requests) == 2


# ---------------------------------------------------------------------------- not retried


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        pytest.param(
            400,
            error_body("Invalid value for 'temperature'.", param="temperature"),
            errors.BadRequestError,
            id="400",
        ),
        pytest.param(
            401,
            error_body("Incorrect API key provided.", code="invalid_api_key"),
            errors.AuthenticationError,
            id="401",
        ),
        pytest.param(
            403,
            error_body("Project does not have access.", type="permission_error"),
            errors.PermissionDeniedError,
            id="403",
        ),
        pytest.param(
            404,
            error_body("The model `gpt-9` does not exist.", code="model_not_found"),
            errors.NotFoundError,
            id="404",
        ),
        pytest.param(
            400,
            error_body(
                "This model's maximum context length is 128000 tokens.",
                code="context_length_exceeded",
                param="messages",
            ),
            errors.ContextLengthExceededError,
            id="400-context-length",
        ),
    ],
)
async def test_client_errors_are_not_retried(
    make_runtime: MakeRuntime,
    server: FaultServer,
    status: int,
    body: dict[str, Any],
    kind: type[errors.ProviderError],
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model(retry={"max_attempts": 5})}, clock=clock)
    server.queue(Reply(status, body))
    with pytest.raises(kind) as info:
        await rt.completion("hi", "m")
    assert type(info.value) is kind
    assert info.value.status_code == status
    assert body["error"]["message"] in str(info.value)
    assert KEY not in str(info.value)
    assert len(server.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        pytest.param(
            Reply(body='{"choices": [', content_type="application/json"),
            "[provider 'p', model 'm', HTTP 200] "
            "POST /chat/completions: the reply is not JSON: '{\"choices\": ['",
            id="not-json",
        ),
        pytest.param(
            Reply(body={"object": "chat.completion"}),
            "[provider 'p', model 'm'] the chat completion reply has no choices",
            id="no-choices",
        ),
    ],
)
async def test_malformed_reply_is_not_retried(
    make_runtime: MakeRuntime, server: FaultServer, reply: Reply, message: str
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    server.queue(reply)
    with pytest.raises(errors.MalformedResponseError) as info:
        await rt.completion("hi", "m")
    assert str(info.value) == message
    assert len(server.requests) == 1
    assert clock.sleeps == []


async def test_insufficient_quota_429_is_not_retried(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    server.queue(
        Reply(
            429,
            error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                type="insufficient_quota",
                code="insufficient_quota",
            ),
        )
    )
    with pytest.raises(errors.RateLimitError) as info:
        await rt.completion("hi", "m")
    assert info.value.vendor_code == "insufficient_quota"
    assert info.value.retryable is False  # waiting does not refill a quota
    assert len(server.requests) == 1
    assert clock.sleeps == []


# ---------------------------------------------------------------------------- transport


async def test_connection_reset_until_max_attempts(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model(retry={"max_attempts": 2})}, clock=clock)
    server.queue(Reply(reset=True), Reply(reset=True))
    with pytest.raises(errors.ProviderConnectionError) as info:
        await rt.completion("hi", "m")
    assert str(info.value) == (
        f"[provider 'p', model 'm'] POST /chat/completions to {where(server)} failed (ReadError)"
    )
    assert len(server.requests) == 2
    assert clock.sleeps == [0.5]


async def test_read_stall_times_out_is_retried_and_leaves_no_half_used_connection(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime(
        # "calm" shares m's provider, hence its connection pool, without the tight timeout.
        {"m": model(retry={"max_attempts": 2}, timeouts={"read": 0.2}), "calm": model()},
        clock=clock,
    )
    server.queue(Reply(stall=3, body=completion("late")), Reply(stall=3, body=completion("late")))
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await rt.completion("hi", "m")
    assert str(info.value) == (
        f"[provider 'p', model 'm'] POST /chat/completions to {where(server)} failed (ReadTimeout)"
    )
    assert len(server.requests) == 2
    assert clock.sleeps == [0.5]
    # The client hung up on both stalled connections instead of pooling them half-read...
    await until(server, lambda s: s.hangups == 2)
    # ...so the next call gets its own answer, not a late one left on a reused connection.
    server.queue(ok("fresh"))
    assert await rt.completion("again", "calm") == "fresh"
    assert rt.provider_for("calm") is rt.provider_for("m")
    assert len(server.requests) == 3


async def test_connection_refused_is_retried_then_falls_back(
    make_runtime: MakeRuntime, other_server: FaultServer
) -> None:
    # A bound socket that never listens: connecting to it is refused at once.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed_port.getsockname()[1]}"
        clock = FakeClock()
        rt = make_runtime(
            {"m": model(fallbacks=["backup"]), "backup": {"provider": "q"}},
            providers={"p": {"base_url": url}},
            clock=clock,
        )
        other_server.queue(ok("from backup"))
        result = await rt.generate(model="m", prompt="hi")
    assert (result.text, result.model, result.attempts) == ("from backup", "backup", 4)
    assert clock.sleeps == [0.5, 1.0]  # three refused attempts on m, then backup at once
    assert models_sent(other_server) == ["backup"]


@pytest.mark.skipif(
    sys.platform != "linux", reason="relies on Linux dropping SYNs to a full backlog"
)
async def test_connect_timeout_is_retried(make_runtime: MakeRuntime) -> None:
    # A listener that never accepts, its backlog already full: Linux drops further SYNs,
    # so connecting hangs until the connect timeout.
    with socket.socket() as listener, ExitStack() as fillers:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(3):
            filler = fillers.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(address)
        await asyncio.sleep(0.05)  # let the fillers' handshakes fill the queue
        clock = FakeClock()
        rt = make_runtime(
            {"m": model(retry={"max_attempts": 2}, timeouts={"connect": 0.2})},
            providers={"p": {"base_url": f"http://127.0.0.1:{address[1]}"}},
            clock=clock,
        )
        with pytest.raises(errors.ProviderTimeoutError) as info:
            await rt.completion("hi", "m")
    assert str(info.value) == (
        "[provider 'p', model 'm'] POST /chat/completions: "
        f"cannot connect to 127.0.0.1:{address[1]} (ConnectTimeout)"
    )
    assert clock.sleeps == [0.5]  # two attempts


async def test_connection_closed_by_the_server_while_idle_is_not_reused(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    rt = make_runtime({"m": model()})
    server.queue(Reply(body=completion("first"), close=True), ok("second"))
    assert await rt.completion("hi", "m") == "first"
    await until(server, lambda s: s.open_connections == 0)  # the server's FIN went out
    result = await rt.generate(model="m", prompt="again")
    assert (result.text, result.attempts) == ("second", 1)  # a new connection, no retry
    assert server.connections_opened == 2


# ---------------------------------------------------------------------------- streams


@pytest.mark.parametrize(
    ("broken", "sleeps"),
    [
        pytest.param(
            Reply(chunks=stream_events(), cut_after=1), [0.5], id="reset-after-role-chunk"
        ),
        pytest.param(
            Reply(chunks=stream_events(texts=(), done=False)), [0.5], id="no-done-no-text"
        ),
        pytest.param(Reply(reset=True), [0.5], id="reset-before-headers"),
        pytest.param(overloaded(), [0.5], id="503"),
        pytest.param(rate_limited(**{"retry-after": "2"}), [2.0], id="429-retry-after"),
        pytest.param(
            Reply(
                chunks=sse([(None, error_body("The server had an error.", type="server_error"))])
            ),
            [0.5],
            id="error-event",
        ),
    ],
)
async def test_stream_failure_before_any_text_is_retried(
    make_runtime: MakeRuntime, server: FaultServer, broken: Reply, sleeps: list[float]
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    server.queue(broken, Reply(chunks=stream_events(("Hel", "lo"))))
    stream = rt.stream(model="m", prompt="hi")
    assert [d async for d in stream] == ["Hel", "lo"]
    assert stream.completion is not None
    assert (stream.completion.attempts, stream.completion.finish_reason) == (2, "stop")
    assert clock.sleeps == sleeps
    assert len(server.requests) == 2
    assert server.requests[0].json["stream"] is True


async def test_stream_cut_after_text_is_raised_not_retried(
    make_runtime: MakeRuntime, server: FaultServer, other_server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime(
        {"m": model(fallbacks=["backup"]), "backup": {"provider": "q"}},
        clock=clock,
    )
    server.queue(Reply(chunks=stream_events(("Hel", "lo", "!")), cut_after=2))
    seen: list[str] = []
    with pytest.raises(errors.ProviderConnectionError) as info:
        await collect(rt.stream(model="m", prompt="hi"), seen)
    assert str(info.value) == (
        "[provider 'p', model 'm'] POST /chat/completions: "
        f"the stream from {where(server)} broke (ReadError)"
    )
    assert seen == ["Hel"]
    assert len(server.requests) == 1
    assert other_server.requests == []  # no fallback either: text reached the caller
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("second", "outcome"),
    [
        pytest.param(Reply(chunks=stream_events(("ok",))), "ok", id="then-fast"),
        pytest.param(
            Reply(chunks=stream_events(), delays={0: 3}), errors.ProviderTimeoutError, id="slow"
        ),
    ],
)
async def test_slow_first_token_times_out_and_is_retried(
    make_runtime: MakeRuntime, server: FaultServer, second: Reply, outcome: Any
) -> None:
    clock = FakeClock()
    rt = make_runtime(
        {"m": model(retry={"max_attempts": 2}, timeouts={"first_token": 1.0})}, clock=clock
    )
    # 1 s, not less: on a loaded machine the fast second reply must still make it.
    server.queue(Reply(chunks=stream_events(), delays={0: 5}), second)
    seen: list[str] = []
    if outcome == "ok":
        await collect(rt.stream(model="m", prompt="hi"), seen)
        assert seen == ["ok"]
    else:
        with pytest.raises(errors.ProviderTimeoutError) as info:
            await collect(rt.stream(model="m", prompt="hi"), seen)
        assert str(info.value) == (
            "[provider 'p', model 'm'] stream: no first token within 1s (timeouts.first_token)"
        )
        assert seen == []
    assert len(server.requests) == 2
    assert clock.sleeps == [0.5]
    await until(server, lambda s: s.hangups == 1 + (outcome != "ok"))


async def test_idle_gap_after_text_is_raised_not_retried(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model(retry={"max_attempts": 3}, timeouts={"idle": 0.2})}, clock=clock)
    # chunks: role, "Hel", then a 3 s gap before "lo"
    server.queue(Reply(chunks=stream_events(("Hel", "lo")), delays={2: 3}))
    seen: list[str] = []
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await collect(rt.stream(model="m", prompt="hi"), seen)
    assert str(info.value) == (
        "[provider 'p', model 'm'] stream: no next chunk within 0.2s (timeouts.idle)"
    )
    assert seen == ["Hel"]
    assert len(server.requests) == 1
    assert clock.sleeps == []


async def test_malformed_stream_event_is_not_retried(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime({"m": model()}, clock=clock)
    server.queue(Reply(chunks=sse([(None, "{not json")])))
    with pytest.raises(errors.MalformedResponseError) as info:
        await collect(rt.stream(model="m", prompt="hi"), [])
    assert str(info.value) == "[provider 'p', model 'm'] a stream event is not JSON: '{not json'"
    assert len(server.requests) == 1
    assert clock.sleeps == []


async def test_leaving_a_stream_early_frees_its_slot_and_connection(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    rt = make_runtime({"m": model()}, providers={"p": {"limits": {"max_concurrency": 1}}})
    # role, "Hel", then a long pause before "lo": the caller stops reading after "Hel".
    server.queue(Reply(chunks=stream_events(("Hel", "lo")), delays={2: 30}), ok("next"))
    async with rt.stream(model="m", prompt="hi") as stream:
        async for delta in stream:
            assert delta == "Hel"
            break
    assert stream.completion is None
    await until(server, lambda s: s.hangups == 1)  # the half-read response was not pooled
    async with asyncio.timeout(5):  # only possible if the slot was given back
        assert await rt.completion("again", "m") == "next"


async def test_cancelled_stream_consumer_leaks_no_task_and_frees_its_slot(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    rt = make_runtime({"m": model()}, providers={"p": {"limits": {"max_concurrency": 1}}})
    server.queue(Reply(chunks=stream_events(("Hel", "lo")), delays={2: 30}), ok("next"))
    seen: list[str] = []
    text_arrived = asyncio.Event()

    async def consume() -> None:
        async for delta in rt.stream(model="m", prompt="hi"):
            seen.append(delta)
            text_arrived.set()

    baseline = asyncio.all_tasks()
    consumer = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await text_arrived.wait()  # "Hel" reached the caller; "lo" is 30 s away
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert seen == ["Hel"]
    assert asyncio.all_tasks() == baseline
    await until(server, lambda s: s.hangups == 1)
    async with asyncio.timeout(5):
        assert await rt.completion("again", "m") == "next"


# ---------------------------------------------------------------------------- fallbacks


async def test_fallback_model_answers_when_the_primary_keeps_failing(
    make_runtime: MakeRuntime, server: FaultServer, other_server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime(
        {
            "m": model(retry={"max_attempts": 2}, fallbacks=["backup"]),
            "backup": {"provider": "q", "provider_model": "backup-vendor"},
        },
        clock=clock,
    )
    server.queue(overloaded(), overloaded())
    other_server.queue(ok("from backup"))
    result = await rt.generate(model="m", prompt="hi")
    assert (result.text, result.model, result.provider, result.attempts) == (
        "from backup",
        "backup",
        "q",
        3,
    )
    assert (models_sent(server), models_sent(other_server)) == (["m", "m"], ["backup-vendor"])
    assert clock.sleeps == [0.5]


async def test_context_length_falls_back_to_a_larger_window_only(
    make_runtime: MakeRuntime, server: FaultServer, other_server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime(
        {
            "m": model(context_window=8000, fallbacks=["small", "big"]),
            "small": {"provider": "q", "context_window": 4000},
            "big": {"provider": "q", "context_window": 128000},
        },
        clock=clock,
    )
    server.queue(
        Reply(
            400,
            error_body(
                "This model's maximum context length is 8000 tokens.",
                code="context_length_exceeded",
            ),
        )
    )
    other_server.queue(ok("long answer"))
    result = await rt.generate(model="m", prompt="a very long prompt")
    assert (result.text, result.model, result.attempts) == ("long answer", "big", 2)
    assert (models_sent(server), models_sent(other_server)) == (["m"], ["big"])
    assert clock.sleeps == []  # a fallback is tried at once


async def test_stream_falls_back_before_the_first_byte(
    make_runtime: MakeRuntime, server: FaultServer, other_server: FaultServer
) -> None:
    clock = FakeClock()
    rt = make_runtime(
        {
            "m": model(retry={"max_attempts": 2}, fallbacks=["backup"]),
            "backup": {"provider": "q"},
        },
        clock=clock,
    )
    server.queue(overloaded(), Reply(reset=True))
    other_server.queue(Reply(chunks=stream_events(("from ", "backup"))))
    stream = rt.stream(model="m", prompt="hi")
    assert [d async for d in stream] == ["from ", "backup"]
    assert stream.completion is not None
    assert (stream.completion.model, stream.completion.attempts) == ("backup", 3)
    assert (models_sent(server), models_sent(other_server)) == (["m", "m"], ["backup"])
    assert clock.sleeps == [0.5]


# ---------------------------------------------------------------------------- limits


def echo(request: Recorded) -> Reply:
    """Answer with the prompt, after holding the request for 50 ms."""
    return Reply(stall=0.05, body=completion(request.json["messages"][0]["content"]))


async def test_max_concurrency_bounds_requests_in_flight(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    server.handler = echo
    rt = make_runtime({"m": model()}, providers={"p": {"limits": {"max_concurrency": 3}}})
    results = await asyncio.gather(*(rt.completion(f"call {i}", "m") for i in range(20)))
    assert results == [f"call {i}" for i in range(20)]
    assert len(server.requests) == 20
    assert server.max_in_flight == 3


async def test_requests_per_minute_waits_on_the_injected_clock(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    server.handler = lambda request: ok()
    clock = FakeClock()
    rt = make_runtime(
        {"m": model()}, providers={"p": {"limits": {"requests_per_minute": 2}}}, clock=clock
    )
    results = await asyncio.gather(*(rt.completion(f"call {i}", "m") for i in range(5)))
    assert results == ["fine"] * 5
    assert len(server.requests) == 5
    # two start at t=0, two at t=60, one at t=120: each wait ends exactly as a slot frees
    assert clock.sleeps == [60.0, 60.0]
    assert clock.now == 120.0


async def test_cancelled_call_leaks_no_task_and_releases_its_slot(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    rt = make_runtime({"m": model()}, providers={"p": {"limits": {"max_concurrency": 1}}})
    server.queue(Reply(stall=30, body=completion("late")), ok("fresh"))
    baseline = asyncio.all_tasks()
    call = asyncio.create_task(rt.completion("hi", "m"))
    await until(server, lambda s: len(s.requests) == 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert asyncio.all_tasks() == baseline
    await until(server, lambda s: s.hangups == 1)  # the cancelled request's connection was closed
    # max_concurrency is 1: this call can only start if the cancelled one gave its slot back.
    async with asyncio.timeout(5):
        assert await rt.completion("again", "m") == "fresh"
    assert len(server.requests) == 2


async def test_runtime_closes_every_connection(
    make_runtime: MakeRuntime, server: FaultServer
) -> None:
    server.handler = echo
    rt: LLMRuntime = make_runtime({"m": model()})
    await asyncio.gather(*(rt.completion(f"call {i}", "m") for i in range(5)))
    assert server.open_connections >= 1
    await rt.aclose()
    await until(server, lambda s: s.open_connections == 0)
    assert server.connections_opened >= 1
