"""The engine's parts on their own: decisions as values, the accumulator, errors that pickle."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from runtime import errors
from runtime.config import ModelConfig, RetryConfig
from runtime.engine.retry import GiveUp, Next, RetryIn, decide_fallback, decide_retry
from runtime.types import (
    Accumulator,
    ProviderResponse,
    ReasoningDelta,
    ReasoningPart,
    StreamEnd,
    TextDelta,
    TextPart,
    ToolArgumentsError,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    Usage,
    UsageUpdate,
)

POLICY = RetryConfig(max_attempts=3, initial_backoff=1.0, max_backoff=8.0, max_retry_after=30)


def half() -> float:
    return 0.5


# --------------------------------------------------------------------------- decide_retry


@pytest.mark.parametrize(
    ("attempt", "error", "waited", "delivered", "expected"),
    [
        pytest.param(1, errors.ServerError("x"), 0.0, False, RetryIn(0.5), id="first-backoff"),
        pytest.param(2, errors.ServerError("x"), 0.0, False, RetryIn(1.0), id="doubles"),
        pytest.param(
            3, errors.ServerError("x"), 0.0, False, GiveUp("3 attempts made"), id="exhausted"
        ),
        pytest.param(
            1, errors.BadRequestError("x"), 0.0, False, GiveUp("not retryable"), id="not-retryable"
        ),
        pytest.param(
            1, errors.RateLimitError("x", retry_after=7.0), 0.0, False, RetryIn(7.0), id="hint"
        ),
        pytest.param(
            1,
            errors.RateLimitError("x", retry_after=31.0),
            0.0,
            False,
            GiveUp("the server asked to wait 31s, more than max_retry_after (30s)"),
            id="hint-too-long",
        ),
        pytest.param(
            1,
            errors.ServerError("x"),
            119.8,
            False,
            GiveUp("the wait budget of 120s would be exceeded"),
            id="budget",
        ),
        pytest.param(
            1,
            errors.ProviderConnectionError("cut"),
            0.0,
            True,
            GiveUp("output was already delivered to the caller"),
            id="delivered",
        ),
    ],
)
def test_decide_retry(
    attempt: int,
    error: errors.ProviderError,
    waited: float,
    delivered: bool,
    expected: RetryIn | GiveUp,
) -> None:
    assert decide_retry(POLICY, attempt, error, waited, delivered=delivered, rand=half) == expected


# --------------------------------------------------------------------------- decide_fallback


def model(mid: str, window: int | None = None) -> ModelConfig:
    return ModelConfig(id=mid, provider="p", context_window=window)


@pytest.mark.parametrize(
    ("error", "failed", "candidate", "delivered", "expected"),
    [
        pytest.param(errors.ServerError("x"), model("a"), model("b"), False, Next.TRY, id="5xx"),
        pytest.param(
            errors.RateLimitError("quota"), model("a"), model("b"), False, Next.TRY, id="429"
        ),
        pytest.param(
            errors.MissingAPIKeyError("K", provider="p"),
            model("a"),
            model("b"),
            False,
            Next.TRY,
            id="no-key",
        ),
        pytest.param(
            errors.AuthenticationError("bad key"),
            model("a"),
            model("b"),
            False,
            Next.STOP,
            id="auth",
        ),
        pytest.param(
            errors.ContextLengthExceededError("long"),
            model("a", 8000),
            model("b", 8000),
            False,
            Next.SKIP,
            id="context-same-window",
        ),
        pytest.param(
            errors.ContextLengthExceededError("long"),
            model("a", 8000),
            model("b", 128000),
            False,
            Next.TRY,
            id="context-larger-window",
        ),
        pytest.param(
            errors.ServerError("x"), model("a"), model("b"), True, Next.STOP, id="delivered"
        ),
    ],
)
def test_decide_fallback(
    error: errors.LLMRuntimeError,
    failed: ModelConfig,
    candidate: ModelConfig,
    delivered: bool,
    expected: Next,
) -> None:
    assert decide_fallback(error, failed, candidate, delivered=delivered) is expected


# --------------------------------------------------------------------------- accumulator


def accumulate(events: list[Any]) -> ProviderResponse:
    acc = Accumulator(origin="test")
    for event in events:
        acc.add(event)
    return acc.response()


def test_the_same_events_give_the_same_response_as_the_json_path() -> None:
    parsed = ProviderResponse(
        None,
        "tool_calls",
        Usage(10, 5),
        "vendor-model",
        parts=[
            ReasoningPart("think", signature="sig", origin="test"),
            TextPart("Let me look."),
            ToolCall("c1", "get_weather", {"city": "Paris"}),
        ],
        id="resp-1",
    )
    assert accumulate(parsed.events()) == parsed


def test_fragments_interleaved_by_index_build_each_call() -> None:
    response = accumulate(
        [
            TextDelta("Hel"),
            TextDelta("lo"),
            ToolCallDelta(0, "c0", "a", '{"x"'),
            ToolCallDelta(1, "c1", "b", '{"y": '),
            ToolCallDelta(0, arguments=": 1}"),
            ToolCallDelta(1, arguments="[2]}"),
            UsageUpdate(Usage(prompt_tokens=3)),
            StreamEnd("tool_calls", Usage(completion_tokens=4), "m"),
        ]
    )
    assert response.text == "Hello"
    assert response.tool_calls == (ToolCall("c0", "a", {"x": 1}), ToolCall("c1", "b", {"y": [2]}))
    assert response.usage == Usage(prompt_tokens=3, completion_tokens=4)
    assert response.finish_reason == "tool_calls"


def test_a_tool_call_said_stop_is_reported_as_tool_calls() -> None:
    response = accumulate([ToolCallDone(0, ToolCall("c", "f", {})), StreamEnd("stop")])
    assert response.finish_reason == "tool_calls"


def test_reasoning_blocks_keep_their_signature_and_order() -> None:
    response = accumulate(
        [
            ReasoningDelta("a", index=0),
            ReasoningDelta("b", index=0),
            ReasoningDelta(signature="s0", index=0),
            ReasoningDelta(redacted="opaque", index=1),
            TextDelta("answer"),
            StreamEnd("stop"),
        ]
    )
    assert response.parts == (
        ReasoningPart("ab", "s0", None, "test"),
        ReasoningPart("", None, "opaque", "test"),
        TextPart("answer"),
    )
    assert response.reasoning == "ab"


@pytest.mark.parametrize("raw", ['{"x": ', "[1, 2]", "not json"])
def test_arguments_that_are_not_a_json_object_raise_with_the_raw_text(raw: str) -> None:
    with pytest.raises(ToolArgumentsError) as info:
        accumulate([ToolCallDelta(0, "c", "f", raw), StreamEnd("tool_calls")])
    assert (info.value.name, info.value.raw) == ("f", raw)


def test_unknown_events_are_ignored() -> None:
    response = accumulate([TextDelta("x"), object(), StreamEnd("stop")])
    assert response.text == "x"


# --------------------------------------------------------------------------- pickling


def every_error() -> list[errors.LLMRuntimeError]:
    problem = errors.ConfigProblem("models.yaml", 3, 5, "models.x", "bad")
    rate = errors.RateLimitError(
        "slow down", retry_after=2.5, provider="p", model="vm", status_code=429, vendor_code="r"
    )
    rate.model_id, rate.attempts = "m", 3
    return [
        errors.LLMRuntimeError("the base class"),
        errors.ConfigError([problem]),
        errors.ConfigError("one line"),
        errors.UnknownModelError("gpt-4o-mni", "gpt-4o-mini"),
        errors.UnknownProviderError("opena", "openai"),
        errors.InvalidRequestError("bad argument"),
        errors.CapabilityError("no tools here", capability="tools", model="m"),
        errors.StructuredOutputError("not JSON", raw_text="{", problem="not JSON", model="m"),
        errors.TemplateError("model 'm': its chat_template broke a bound", model="m"),
        errors.RuntimeClosedError("closed"),
        errors.MissingAPIKeyError("OPENAI_API_KEY", provider="openai", model="gpt-4o-mini"),
        errors.MissingDependencyError("openai", "openai", purpose="the SDK provider"),
        rate,
        errors.ServerError("down", retry_after=1.0, status_code=503),
        errors.ToolArgumentsError("bad args", raw_arguments='{"x"', tool_name="f", model="m"),
        errors.MissingAPIKeyError("A_KEY", provider="a").with_failures([("b", rate)]),
        *(
            cls("message", provider="p", model="m", status_code=500)
            for cls in (
                errors.ProviderError,
                errors.AuthenticationError,
                errors.PermissionDeniedError,
                errors.NotFoundError,
                errors.BadRequestError,
                errors.ContextLengthExceededError,
                errors.ContentFilteredError,
                errors.ProviderTimeoutError,
                errors.ProviderConnectionError,
                errors.MalformedResponseError,
                errors.ResponseTooLargeError,
            )
        ),
    ]


@pytest.mark.parametrize("error", every_error(), ids=lambda e: type(e).__name__)
def test_every_error_survives_a_pickle_round_trip(error: errors.LLMRuntimeError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy).keys() == vars(error).keys()
    for name, value in vars(error).items():
        if name != "failures":
            assert getattr(copy, name) == value, name
    assert [(m, str(e)) for m, e in copy.failures] == [(m, str(e)) for m, e in error.failures]
    if isinstance(error, errors.ProviderError):
        assert copy.retryable == error.retryable


def test_every_error_class_is_covered_by_the_pickle_test() -> None:
    covered = {type(e) for e in every_error()}
    declared = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.LLMRuntimeError)
    }
    assert declared - covered == set()


def test_with_failures_keeps_the_type_and_fields_of_the_first_error() -> None:
    first = errors.MissingAPIKeyError("OPENAI_API_KEY", provider="openai", model="gpt-4o-mini")
    later = errors.MissingAPIKeyError("GROQ_API_KEY", provider="groq", model="my-fast-model")
    combined = first.with_failures([("my-fast-model", later)])
    assert isinstance(combined, errors.MissingAPIKeyError)
    assert combined.env_var == "OPENAI_API_KEY"
    assert combined.failures == (("my-fast-model", later),)
    assert first.failures == ()  # the original is untouched
    assert str(combined) == (
        "model 'gpt-4o-mini' (provider 'openai') needs an API key: set the environment "
        "variable OPENAI_API_KEY\n"
        "  and every fallback failed too (1):\n"
        "  - model 'my-fast-model': model 'my-fast-model' (provider 'groq') needs an API key: "
        "set the environment variable GROQ_API_KEY"
    )
