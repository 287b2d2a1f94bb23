"""Retries, backoff, Retry-After, fallbacks, time limits and rate limits, with an injected clock."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime import errors
from runtime.config import LimitsConfig, RetryConfig
from runtime.engine.limits import Limiter
from runtime.engine.retry import backoff_delay
from runtime.testing import Script, ScriptedProvider

from .helpers import FakeClock, catalog, runtime_for


def _scripted(rt: Any, model: str) -> ScriptedProvider:
    provider = rt.provider_for(model)
    assert isinstance(provider, ScriptedProvider)
    return provider


async def _drain(stream: AsyncIterator[str], seen: list[str]) -> None:
    """Consume a stream, keeping every delta seen before it ended or raised."""
    async for delta in stream:
        seen.append(delta)


def _retry(**fields: Any) -> dict[str, Any]:
    return {"retry": {"initial_backoff": 1.0, "multiplier": 2.0, "max_backoff": 8.0, **fields}}


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        pytest.param(errors.ServerError("boom"), 3, id="5xx-retried"),
        pytest.param(errors.RateLimitError("slow"), 3, id="429-retried"),
        pytest.param(errors.ProviderTimeoutError("slow"), 3, id="timeout-retried"),
        pytest.param(errors.ProviderConnectionError("reset"), 3, id="connection-retried"),
        pytest.param(errors.BadRequestError("bad"), 1, id="400-not-retried"),
        pytest.param(errors.AuthenticationError("who"), 1, id="401-not-retried"),
        pytest.param(errors.PermissionDeniedError("no"), 1, id="403-not-retried"),
        pytest.param(errors.NotFoundError("gone"), 1, id="404-not-retried"),
        pytest.param(errors.ContextLengthExceededError("long"), 1, id="context-not-retried"),
        pytest.param(errors.MalformedResponseError("junk"), 1, id="malformed-not-retried"),
    ],
)
async def test_what_is_retried(error: errors.ProviderError, attempts: int) -> None:
    clock = FakeClock()
    rt = runtime_for(catalog({"m": {"provider": "s", **_retry(max_attempts=3)}}), clock)
    provider = _scripted(rt, "m")
    provider.queue(error, error, error)
    with pytest.raises(type(error)) as info:
        await rt.completion("x", "m")
    assert [c.model for c in provider.calls] == ["m"] * attempts
    assert info.value.attempts == attempts
    # rand() is 0.5: half of the ceilings 1 and 2 between the attempts; none when not retried
    assert clock.sleeps == [0.5, 1.0][: attempts - 1]


async def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    clock = FakeClock()
    rt = runtime_for(catalog({"m": {"provider": "s", **_retry(max_attempts=6)}}), clock)
    provider = _scripted(rt, "m")
    provider.queue(*[errors.ServerError("boom")] * 5, "ok")
    result = await rt.generate(model="m", prompt="x")
    assert result.text == "ok"
    assert result.attempts == 6
    # rand() is 0.5: half of the ceiling 1, 2, 4, 8, 8 (capped at max_backoff)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]


@pytest.mark.parametrize(
    ("retry_after", "sleeps", "succeeds"),
    [
        pytest.param(3.0, [3.0], True, id="honoured"),
        pytest.param(0.0, [0.0], True, id="zero"),
        pytest.param(61.0, [], False, id="longer-than-max-retry-after"),
    ],
)
async def test_retry_after_is_honoured_up_to_the_cap(
    retry_after: float, sleeps: list[float], succeeds: bool
) -> None:
    clock = FakeClock()
    rt = runtime_for(catalog({"m": {"provider": "s", **_retry(max_retry_after=60)}}), clock)
    _scripted(rt, "m").queue(errors.RateLimitError("slow", retry_after=retry_after), "ok")
    if succeeds:
        assert await rt.completion("x", "m") == "ok"
    else:
        with pytest.raises(errors.RateLimitError):
            await rt.completion("x", "m")
    assert clock.sleeps == sleeps


async def test_retry_after_is_read_afresh_on_every_attempt() -> None:
    clock = FakeClock()
    rt = runtime_for(catalog({"m": {"provider": "s", **_retry(max_attempts=4)}}), clock)
    _scripted(rt, "m").queue(
        errors.RateLimitError("a", retry_after=2.0),
        errors.ServerError("b", retry_after=7.0),
        errors.ServerError("c"),
        "ok",
    )
    assert await rt.completion("x", "m") == "ok"
    assert clock.sleeps == [2.0, 7.0, 2.0]  # the third is jittered backoff: 0.5 * 4


async def test_total_wait_budget_stops_retrying() -> None:
    clock = FakeClock()
    rt = runtime_for(
        catalog({"m": {"provider": "s", **_retry(max_attempts=10, total_wait_budget=5.0)}}), clock
    )
    provider = _scripted(rt, "m")
    provider.queue(*[errors.RateLimitError("slow", retry_after=2.0)] * 10)
    with pytest.raises(errors.RateLimitError):
        await rt.completion("x", "m")
    assert clock.sleeps == [2.0, 2.0]
    assert [c.model for c in provider.calls] == ["m"] * 3


async def test_retry_config_layers_runtime_provider_model() -> None:
    clock = FakeClock()
    cat = catalog(
        {"m": {"provider": "s", "retry": {"max_attempts": 2}}, "n": {"provider": "s"}},
        {"s": {"retry": {"initial_backoff": 4.0}}},
        settings={"retry": {"max_attempts": 5, "initial_backoff": 1.0}},
    )
    rt = runtime_for(cat, clock)
    _scripted(rt, "m").queue(*[errors.ServerError("x")] * 5)
    with pytest.raises(errors.ServerError):
        await rt.completion("x", "m")
    assert clock.sleeps == [2.0]  # model: 2 attempts; provider: backoff 4 * 0.5
    clock.sleeps.clear()
    _scripted(rt, "n").queue(*[errors.ServerError("x")] * 2)  # 3 were left: 5 in the queue
    with pytest.raises(errors.ServerError):
        await rt.completion("x", "n")
    assert clock.sleeps == [2.0, 4.0, 8.0, 10.0]  # runtime: 5 attempts; ceilings 4, 8, 16, 20


def test_backoff_delay_function() -> None:
    policy = RetryConfig(initial_backoff=1, multiplier=3, max_backoff=5)
    assert backoff_delay(policy, 1, errors.ServerError("x"), rand=lambda: 1.0) == 1.0
    assert backoff_delay(policy, 2, errors.ServerError("x"), rand=lambda: 1.0) == 3.0
    assert backoff_delay(policy, 3, errors.ServerError("x"), rand=lambda: 1.0) == 5.0
    assert backoff_delay(policy, 3, errors.ServerError("x"), rand=lambda: 0.0) == 0.0


# ---------------------------------------------------------------------------- fallbacks


def _fallback_catalog(**primary: Any) -> Any:
    return catalog(
        {
            "a": {
                "provider": "s",
                "fallbacks": ["b", "c"],
                "retry": {"max_attempts": 2},
                "context_window": 1000,
                **primary,
            },
            "b": {"provider": "s", "provider_model": "vendor-b", "context_window": 500},
            "c": {"provider": "s", "provider_model": "vendor-c", "context_window": 9000},
        }
    )


async def test_fallback_after_retries_are_exhausted() -> None:
    clock = FakeClock()
    rt = runtime_for(_fallback_catalog(), clock)
    provider = _scripted(rt, "a")
    provider.queue(errors.ServerError("1"), errors.ServerError("2"), "from b")
    result = await rt.generate(model="a", prompt="x")
    assert (result.text, result.model, result.attempts) == ("from b", "b", 3)
    assert [c.model for c in provider.calls] == ["a", "a", "vendor-b"]
    assert clock.sleeps == [0.25]  # between a's two attempts (0.5 * 0.5); b is tried at once


async def test_no_fallback_on_a_caller_error() -> None:
    clock = FakeClock()
    rt = runtime_for(_fallback_catalog(), clock)
    provider = _scripted(rt, "a")
    provider.queue(errors.BadRequestError("bad"))
    with pytest.raises(errors.BadRequestError):
        await rt.generate(model="a", prompt="x")
    assert [c.model for c in provider.calls] == ["a"]
    assert clock.sleeps == []


async def test_context_length_falls_back_only_to_a_larger_window() -> None:
    clock = FakeClock()
    rt = runtime_for(_fallback_catalog(), clock)
    provider = _scripted(rt, "a")
    provider.queue(errors.ContextLengthExceededError("too long"), "from c")
    result = await rt.generate(model="a", prompt="x")
    assert (result.text, result.model) == ("from c", "c")
    assert [c.model for c in provider.calls] == ["a", "vendor-c"]  # b (500) skipped
    assert clock.sleeps == []


async def test_the_first_error_is_raised_naming_every_fallback_failure() -> None:
    clock = FakeClock()
    rt = runtime_for(_fallback_catalog(), clock)
    provider = _scripted(rt, "a")
    provider.queue(*[errors.ServerError(str(i)) for i in range(2)])
    provider.queue(errors.ServerError("b1"), errors.ServerError("b2"), errors.ServerError("b3"))
    provider.queue(errors.ServerError("c1"), errors.ServerError("c2"), errors.ServerError("c3"))
    with pytest.raises(errors.ServerError) as info:
        await rt.generate(model="a", prompt="x")
    error = info.value
    assert (error.model_id, error.model, error.attempts) == ("a", "a", 2)
    assert [(m, type(e).__name__, e.message) for m, e in error.failures] == [
        ("b", "ServerError", "b3"),
        ("c", "ServerError", "c3"),
    ]
    assert str(error) == (
        "[provider 's', model 'a'] 1\n"
        "  and every fallback failed too (2):\n"
        "  - model 'b': [provider 's', model 'b' ('vendor-b' at the vendor)] b3\n"
        "  - model 'c': [provider 's', model 'c' ('vendor-c' at the vendor)] c3"
    )
    assert [c.model for c in provider.calls] == ["a"] * 2 + ["vendor-b"] * 3 + ["vendor-c"] * 3
    # a: 2 attempts, b and c: 3 each; the default backoff starts at 0.5 and doubles
    assert clock.sleeps == [0.25, 0.25, 0.5, 0.25, 0.5]


async def test_exhausted_quota_is_not_retried_but_falls_back() -> None:
    rt = runtime_for(_fallback_catalog())
    provider = _scripted(rt, "a")
    # As the seam builds it for insufficient_quota: whole at construction, never patched.
    quota = errors.RateLimitError("You exceeded your current quota", retryable=False)
    assert quota.retryable is False
    assert pickle.loads(pickle.dumps(quota)).retryable is False
    assert errors.RateLimitError("slow down").retryable is True  # the class's default
    provider.queue(quota, "from b")
    result = await rt.generate(model="a", prompt="x")
    assert (result.text, result.model, result.attempts) == ("from b", "b", 2)
    assert [c.model for c in provider.calls] == ["a", "vendor-b"]


async def test_missing_key_of_primary_falls_back() -> None:
    cat = catalog(
        {
            "a": {"provider": "s", "requires_api_key_env": "NOPE_API_KEY", "fallbacks": ["b"]},
            "b": {"provider": "s"},
        }
    )
    clock = FakeClock()
    rt = runtime_for(cat, clock, environ={})
    result = await rt.generate(model="a", prompt="x")
    assert result.model == "b"
    assert [c.model for c in _scripted(rt, "b").calls] == ["b"]  # a was never called
    assert clock.sleeps == []


async def test_stream_retries_and_falls_back_before_the_first_delta() -> None:
    clock = FakeClock()
    rt = runtime_for(_fallback_catalog(), clock)
    provider = _scripted(rt, "a")
    provider.queue(errors.ServerError("1"), errors.ServerError("2"), Script(chunks=["b", "!"]))
    stream = rt.stream(model="a", prompt="x")
    assert [d async for d in stream] == ["b", "!"]
    assert stream.completion is not None
    assert (stream.completion.model, stream.completion.attempts) == ("b", 3)
    assert [c.model for c in provider.calls] == ["a", "a", "vendor-b"]
    assert clock.sleeps == [0.25]


async def test_stream_never_retries_after_text_reached_the_caller() -> None:
    clock = FakeClock()
    rt = runtime_for(_fallback_catalog(), clock)
    provider = _scripted(rt, "a")
    provider.queue(Script(chunks=["par", "tial"], error=errors.ServerError("cut"), fail_after=1))
    seen: list[str] = []
    with pytest.raises(errors.ServerError):
        await _drain(rt.stream(model="a", prompt="x"), seen)
    assert seen == ["par"]
    assert [c.model for c in provider.calls] == ["a"]
    assert clock.sleeps == []


# ---------------------------------------------------------------------------- time limits


async def test_total_timeout_raises_our_timeout_error_and_is_retried() -> None:
    clock = FakeClock()
    rt = runtime_for(
        catalog(
            {"m": {"provider": "s", "timeouts": {"total": 0.05}, "retry": {"max_attempts": 2}}}
        ),
        clock,
    )
    provider = _scripted(rt, "m")
    provider.queue(Script(text="late", delay=5), "fast")
    assert await rt.completion("x", "m") == "fast"
    assert len(provider.calls) == 2
    assert clock.sleeps == [0.25]
    provider.queue(Script(text="late", delay=5), Script(text="late", delay=5))
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await rt.completion("x", "m")
    assert "total time limit of 0.05s" in str(info.value)
    assert len(provider.calls) == 4
    assert clock.sleeps == [0.25, 0.25]


async def test_stream_first_token_timeout() -> None:
    rt = runtime_for(
        catalog(
            {
                "m": {
                    "provider": "s",
                    "timeouts": {"first_token": 0.05},
                    "retry": {"max_attempts": 1},
                }
            }
        )
    )
    _scripted(rt, "m").queue(Script(chunks=["a"], delay=5))
    with pytest.raises(errors.ProviderTimeoutError) as info:
        async for _ in rt.stream(model="m", prompt="x"):
            pass
    assert "no first token within 0.05s" in str(info.value)


async def test_stream_idle_gap_timeout_after_text_is_not_retried() -> None:
    rt = runtime_for(
        catalog({"m": {"provider": "s", "timeouts": {"idle": 0.05}, "retry": {"max_attempts": 3}}})
    )
    provider = _scripted(rt, "m")
    provider.queue(Script(chunks=["a", "b"], chunk_delay=5))
    seen: list[str] = []
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await _drain(rt.stream(model="m", prompt="x"), seen)
    assert seen == ["a"]
    assert "no next chunk within 0.05s" in str(info.value)
    assert [c.model for c in provider.calls] == ["m"]


# ---------------------------------------------------------------------------- limits


async def test_max_concurrency_is_enforced_and_slots_are_released() -> None:
    rt = runtime_for(
        catalog({"m": {"provider": "s"}}, {"s": {"limits": {"max_concurrency": 2}}}),
        clock=FakeClock(),
    )
    provider = _scripted(rt, "m")
    running = 0
    peak = 0
    real_chat = provider.chat

    async def counting_chat(request: Any) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.01)
            return await real_chat(request)
        finally:
            running -= 1

    provider.chat = counting_chat  # type: ignore[method-assign]
    results = await asyncio.gather(*(rt.completion(f"p{i}", "m") for i in range(10)))
    assert sorted(results) == sorted(f"p{i}" for i in range(10))
    assert peak == 2
    limiter = rt._snapshot.limiter("provider:s")
    assert limiter.in_flight == 0


async def test_cancelling_a_waiting_or_running_call_releases_its_slot() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "limits": {"max_concurrency": 1}}}))
    provider = _scripted(rt, "m")
    provider.queue(Script(text="slow", delay=10))
    running = asyncio.ensure_future(rt.completion("x", "m"))
    waiting = asyncio.ensure_future(rt.completion("y", "m"))
    await asyncio.sleep(0.01)
    limiter = rt._snapshot.limiter("model:m")
    assert limiter.in_flight == 1
    waiting.cancel()
    running.cancel()
    for task in (running, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert limiter.in_flight == 0
    assert len(provider.calls) == 1  # the waiting call never reached the provider
    provider.queue("fast")
    assert await rt.completion("z", "m") == "fast"


async def test_requests_per_minute_waits_exactly_until_a_slot_frees() -> None:
    clock = FakeClock()
    limiter = Limiter(LimitsConfig(requests_per_minute=2), clock=clock, sleep=clock.sleep)
    for _ in range(3):
        async with limiter.slot():
            pass
    assert clock.sleeps == [60.0]
    clock.now += 30  # starts in the window: t=60 (the third); t=90 now takes the second slot
    for _ in range(2):
        async with limiter.slot():
            pass
    assert clock.sleeps == [60.0, 30.0]  # the fourth waits until t=60 leaves the window
