"""Hardening from the pre-1.0 review: key hygiene, timeouts, budgets, templates, CLI paths."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runtime import errors
from runtime.cli import main
from runtime.config import RetryConfig
from runtime.engine.retry import backoff_delay
from runtime.providers.base import ChatProvider
from runtime.testing import ScriptedProvider
from runtime.types import ChatRequest, ProviderResponse, StreamEvent

from .helpers import FakeClock, catalog, runtime_for

HERE = "tests.unit.test_hardening"


class OwnTimeoutProvider(ChatProvider):
    """A provider whose own client gives up with the builtin TimeoutError (socket.timeout)."""

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        raise TimeoutError("the vendor client timed out")

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        raise TimeoutError("the vendor client timed out")
        yield  # pragma: no cover - makes this an async generator


def _no_limits_catalog() -> Any:
    # "null means no limit" (TimeoutConfig's docstring): no total, no first-token limit.
    return catalog(
        {"m": {"provider": "p", "retry": {"max_attempts": 1}}},
        providers={"p": {"class": f"{HERE}.OwnTimeoutProvider"}},
        settings={"timeouts": {"total": None}},
    )


async def test_provider_timeout_without_total_limit_is_ours_in_generate() -> None:
    rt = runtime_for(_no_limits_catalog())
    with pytest.raises(errors.ProviderError) as info:
        await rt.generate(model="m", prompt="x")
    assert "total time limit" not in str(info.value)


async def test_provider_timeout_without_limits_is_ours_in_stream() -> None:
    rt = runtime_for(_no_limits_catalog())
    with pytest.raises(errors.ProviderError):
        async for _ in rt.stream(model="m", prompt="x"):
            pass


async def test_provider_own_timeout_is_not_blamed_on_the_total_limit() -> None:
    cat = catalog(
        {"m": {"provider": "p", "retry": {"max_attempts": 1}}},
        providers={"p": {"class": f"{HERE}.OwnTimeoutProvider"}},
    )
    rt = runtime_for(cat)
    with pytest.raises(errors.ProviderError) as info:
        await rt.generate(model="m", prompt="x")
    assert "total time limit of 600s" not in str(info.value)


async def test_total_wait_budget_spans_the_fallbacks_of_one_call() -> None:
    retry = {
        "max_attempts": 5,
        "initial_backoff": 1.0,
        "multiplier": 1.0,
        "total_wait_budget": 1.5,
    }
    cat = catalog(
        {
            "a": {"provider": "s", "fallbacks": ["b"], "retry": retry},
            "b": {"provider": "s", "provider_model": "vendor-b", "retry": retry},
        }
    )
    clock = FakeClock()
    rt = runtime_for(cat, clock)  # rand = 0.5: every backoff is 0.5 s
    provider = rt.provider_for("a")
    assert isinstance(provider, ScriptedProvider)
    provider.queue(*[errors.ServerError(str(i)) for i in range(10)])
    with pytest.raises(errors.ServerError) as info:
        await rt.generate(model="a", prompt="x")
    # a: four attempts, three waits of 0.5 s fill the budget; b: one attempt, then a fourth
    # wait would pass the budget the two models share, so b is not retried.
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert [c.model for c in provider.calls] == ["a"] * 4 + ["vendor-b"]
    assert [m for m, _ in info.value.failures] == ["b"]


def test_call_max_tokens_beats_extra_params_under_the_wire_name() -> None:
    cat = catalog(
        {
            "m": {
                "provider": "s",
                "max_tokens_param": "max_completion_tokens",
                "extra_params": {"max_completion_tokens": 100},
            }
        }
    )
    rt = runtime_for(cat)
    request = rt.build_request("m", prompt="x", max_tokens=5)
    # Every wire provider sends body[max_tokens_param] = max_tokens, then merges params over
    # it, so a leftover params entry under the wire name silently wins over the call.
    body = {request.max_tokens_param: request.max_tokens, **request.params}
    assert body == {"max_completion_tokens": 5}


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{{ 1 / 0 }}", id="zero-division"),
        pytest.param("{{ messages[0].content + 1 }}", id="type-error"),
    ],
)
async def test_chat_template_runtime_errors_are_invalid_request(template: str) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "chat_template": template}}))
    with pytest.raises(errors.InvalidRequestError):
        await rt.generate(model="m", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"replies": [{"txt": "typo"}]}, id="unknown-reply-key"),
        pytest.param({"delay": "soon"}, id="bad-delay"),
    ],
)
async def test_provider_construction_failure_is_ours(options: dict[str, Any]) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}, providers={"s": {"options": options}}))
    with pytest.raises(errors.LLMRuntimeError):
        await rt.generate(model="m", prompt="x")


async def test_non_ascii_api_key_is_reported_as_ours() -> None:
    cat = catalog(
        {"m": {"provider": "openai"}},
        providers={
            "openai": {
                "class": "runtime.providers.openai_provider.OpenAIProvider",
                "api_key_env": "OPENAI_API_KEY",
                "base_url": "http://127.0.0.1:9/v1",
            }
        },
    )
    rt = runtime_for(cat, environ={"OPENAI_API_KEY": "sk-\u2019pasted"})
    try:
        with pytest.raises(errors.LLMRuntimeError) as info:
            await rt.generate(model="m", prompt="x")
        assert "pasted" not in str(info.value)
    finally:
        await rt.aclose()


async def test_attempts_agree_between_generate_and_stream_after_missing_key() -> None:
    cat = catalog(
        {
            "a": {"provider": "s", "requires_api_key_env": "NOPE_API_KEY", "fallbacks": ["b"]},
            "b": {"provider": "s"},
        }
    )
    rt = runtime_for(cat, environ={})
    result = await rt.generate(model="a", prompt="x")
    stream = rt.stream(model="a", prompt="x")
    async for _ in stream:
        pass
    assert stream.completion is not None
    assert result.attempts == stream.completion.attempts


def test_backoff_with_a_large_multiplier_is_capped_not_overflowing() -> None:
    policy = RetryConfig(max_attempts=20, multiplier=1e200, max_backoff=20.0)
    error = errors.ServerError("boom")
    assert backoff_delay(policy, 3, error, rand=lambda: 1.0) == 20.0


def test_cli_explain_with_a_text_max_tokens_prints_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["explain", "-m", "local-gemma", "-p", "max_tokens=abc", "hi"], out=io.StringIO())
    assert code in (1, 2)
    assert "Traceback" not in capsys.readouterr().err


def test_cli_schema_write_to_an_unwritable_place_prints_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = main(["schema", "--write", str(blocker / "schemas")], out=io.StringIO())
    assert code == 1
    assert "schemas" in capsys.readouterr().err
