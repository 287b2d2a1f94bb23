"""The runtime service through the shipped test doubles: merging, policy, lifecycle, streams."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from runtime import errors
from runtime.providers.registry import register_provider, unregister_provider
from runtime.testing import Script, ScriptedProvider
from runtime.types import ChatRequest, Message, Usage

from .helpers import YourProvider, catalog, runtime_for


def _last(rt: Any, model: str) -> ChatRequest:
    provider = rt.provider_for(model)
    assert isinstance(provider, ScriptedProvider)
    return provider.calls[-1]


async def test_completion_returns_text_and_sends_model_defaults() -> None:
    rt = runtime_for(
        catalog(
            {
                "m": {
                    "provider": "s",
                    "provider_model": "vendor-m",
                    "default_temperature": 0.3,
                    "default_max_tokens": 50,
                    "max_tokens_param": "max_completion_tokens",
                    "extra_params": {"top_p": 0.9},
                }
            }
        )
    )
    assert await rt.completion("hello world", "m") == "hello world"
    request = _last(rt, "m")
    assert request.model == "vendor-m"
    assert request.messages == (Message("user", "hello world"),)
    assert request.temperature == 0.3
    assert request.max_tokens == 50
    assert request.max_tokens_param == "max_completion_tokens"
    assert dict(request.params) == {"top_p": 0.9}


async def test_merge_order_call_over_extra_params_over_defaults() -> None:
    rt = runtime_for(
        catalog(
            {
                "m": {
                    "provider": "s",
                    "default_temperature": 0.3,
                    "default_max_tokens": 50,
                    "extra_params": {"top_p": 0.9, "temperature": 0.5, "seed": 1},
                }
            }
        )
    )
    await rt.completion("x", "m")
    first = _last(rt, "m")
    assert (first.temperature, dict(first.params)) == (0.5, {"top_p": 0.9, "seed": 1})
    await rt.completion("x", "m", temperature=0.1, max_tokens=7, top_p=0.2)
    second = _last(rt, "m")
    assert (second.temperature, second.max_tokens) == (0.1, 7)
    assert dict(second.params) == {"top_p": 0.2, "seed": 1}


async def test_max_tokens_given_under_the_wire_name_counts_as_max_tokens() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "max_tokens_param": "max_completion_tokens"}}))
    await rt.completion("x", "m", max_completion_tokens=11)
    request = _last(rt, "m")
    assert request.max_tokens == 11
    assert "max_completion_tokens" not in request.params


@pytest.mark.parametrize(
    ("policy", "call", "expected_temperature", "expected_params"),
    [
        pytest.param({}, {"temperature": 0.2}, 0.2, {}, id="no-policy"),
        pytest.param(
            {"unsupported_params": ["temperature", "top_p"]},
            {"temperature": 0.2, "top_p": 0.5, "seed": 3},
            None,
            {"seed": 3},
            id="unsupported-dropped",
        ),
        pytest.param(
            {"fixed_params": {"temperature": 1}},
            {"temperature": 0.2},
            1,
            {},
            id="fixed-overrides",
        ),
        pytest.param(
            {"fixed_params": {"reasoning_effort": "low"}},
            {},
            None,
            {"reasoning_effort": "low"},
            id="fixed-extra",
        ),
    ],
)
async def test_parameter_policy_drop(
    policy: dict[str, Any],
    call: dict[str, Any],
    expected_temperature: float | None,
    expected_params: dict[str, Any],
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", **policy}}))
    await rt.completion("x", "m", **call)
    request = _last(rt, "m")
    assert request.temperature == expected_temperature
    assert dict(request.params) == expected_params


async def test_parameter_policy_drop_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime_for(catalog({"o": {"provider": "s", "unsupported_params": ["temperature"]}}))
    with caplog.at_level(logging.WARNING, logger="runtime"):
        await rt.completion("x", "o", temperature=0.2)
    assert (
        caplog.messages.count(
            "model 'o': parameter 'temperature' dropped (unsupported_params of this model)"
        )
        == 1
    )


async def test_default_temperature_is_dropped_silently_when_unsupported() -> None:
    rt = runtime_for(
        catalog(
            {
                "o": {
                    "provider": "s",
                    "default_temperature": 0.7,
                    "unsupported_params": ["temperature"],
                }
            }
        )
    )
    await rt.completion("x", "o")
    assert _last(rt, "o").temperature is None


@pytest.mark.parametrize(
    ("policy", "call", "message"),
    [
        pytest.param(
            {"unsupported_params": ["temperature"]},
            {"temperature": 0.2},
            "model 'm': parameter 'temperature' is not supported by this model",
            id="unsupported",
        ),
        pytest.param(
            {"fixed_params": {"temperature": 1}},
            {"temperature": 0.2},
            "model 'm': parameter 'temperature' is fixed to 1 for this model (got 0.2)",
            id="fixed",
        ),
        pytest.param(
            {
                "unsupported_params": ["max_completion_tokens"],
                "max_tokens_param": "max_completion_tokens",
            },
            {"max_tokens": 5},
            "model 'm': parameter 'max_completion_tokens' is not supported by this model",
            id="max-tokens-by-wire-name",
        ),
    ],
)
async def test_parameter_policy_error(
    policy: dict[str, Any], call: dict[str, Any], message: str
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "on_unsupported": "error", **policy}}))
    with pytest.raises(errors.InvalidRequestError) as info:
        await rt.completion("x", "m", **call)
    assert str(info.value) == message
    assert rt.provider_for("m").calls == []  # type: ignore[attr-defined]


async def test_fixed_value_given_explicitly_is_accepted_under_error_policy() -> None:
    rt = runtime_for(
        catalog(
            {"m": {"provider": "s", "on_unsupported": "error", "fixed_params": {"temperature": 1}}}
        )
    )
    await rt.completion("x", "m", temperature=1)
    assert _last(rt, "m").temperature == 1


async def test_unknown_model_suggests_the_closest_id() -> None:
    rt = runtime_for(catalog({"gpt-4o-mini": {"provider": "s"}}))
    with pytest.raises(errors.UnknownModelError) as info:
        await rt.completion("x", "gpt-4o-mnii")
    assert str(info.value) == (
        "unknown model 'gpt-4o-mnii' (did you mean 'gpt-4o-mini'?); "
        "run 'llm-runtime models' to list the configured ones"
    )


async def test_missing_api_key_names_the_variable() -> None:
    rt = runtime_for(
        catalog({"m": {"provider": "s"}}, {"s": {"api_key_env": "ACME_API_KEY"}}), environ={}
    )
    with pytest.raises(errors.MissingAPIKeyError) as info:
        await rt.completion("x", "m")
    assert str(info.value) == (
        "model 'm' (provider 's') needs an API key: set the environment variable ACME_API_KEY"
    )


async def test_model_key_env_overrides_provider_key_env_and_instances_are_shared() -> None:
    env = {"A_API_KEY": "key-a", "B_API_KEY": "key-b"}
    rt = runtime_for(
        catalog(
            {
                "m1": {"provider": "s"},
                "m2": {"provider": "s"},
                "m3": {"provider": "s", "requires_api_key_env": "B_API_KEY"},
            },
            {"s": {"api_key_env": "A_API_KEY"}},
        ),
        environ=env,
    )
    p1, p2, p3 = (rt.provider_for(m) for m in ("m1", "m2", "m3"))
    assert p1 is p2
    assert p3 is not p1
    assert (p1.api_key, p3.api_key) == ("key-a", "key-b")


async def test_base_url_env_of_model_then_provider_then_base_url() -> None:
    cat = catalog(
        {"m": {"provider": "s", "base_url_env": "M_URL"}, "n": {"provider": "s"}},
        {"s": {"base_url": "http://default", "base_url_env": "S_URL"}},
    )
    assert runtime_for(cat, environ={}).provider_for("m").base_url == "http://default"
    rt = runtime_for(cat, environ={"S_URL": "http://s", "M_URL": "http://m"})
    assert rt.provider_for("m").base_url == "http://m"
    assert rt.provider_for("n").base_url == "http://s"


async def test_generate_returns_completion_with_usage_and_model() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    rt.provider_for("m").queue(  # type: ignore[attr-defined]
        Script(text="hi there", usage=Usage(3, 2), finish_reason="length")
    )
    result = await rt.generate(
        model="m",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    assert (result.text, result.finish_reason, result.model, result.provider) == (
        "hi there",
        "length",
        "m",
        "s",
    )
    assert result.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    assert result.attempts == 1
    assert _last(rt, "m").messages == (Message("system", "be brief"), Message("user", "hi"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param({}, "give exactly one of prompt= or messages=", id="neither"),
        pytest.param(
            {"prompt": "x", "messages": [{"role": "user", "content": "y"}]},
            "give exactly one of prompt= or messages=",
            id="both",
        ),
        pytest.param(
            {"messages": [{"role": "robot", "content": "y"}]},
            "messages[0].role: expected one of system, user, assistant, tool; got 'robot'",
            id="bad-role",
        ),
        pytest.param({"messages": []}, "messages: at least one message is needed", id="empty"),
        pytest.param(
            {"prompt": "x", "stream": True},
            "stream: set by the runtime, not a call parameter",
            id="reserved",
        ),
    ],
)
async def test_bad_arguments_are_invalid_request_errors(call: dict[str, Any], message: str) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    with pytest.raises(errors.InvalidRequestError) as info:
        await rt.generate(model="m", **call)
    assert str(info.value) == message


async def test_stream_yields_deltas_then_completion() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    rt.provider_for("m").queue(Script(chunks=["Hel", "lo", "!"], usage=Usage(1, 3)))  # type: ignore[attr-defined]
    stream = rt.stream(model="m", prompt="x")
    assert [d async for d in stream] == ["Hel", "lo", "!"]
    assert stream.completion is not None
    assert stream.completion.text == "Hello!"
    assert stream.completion.usage == Usage(1, 3)
    assert stream.completion.finish_reason == "stop"


async def test_model_without_streaming_yields_one_chunk() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "supports_streaming": False}}))
    rt.provider_for("m").queue(Script(chunks=["a", "b", "c"]))  # type: ignore[attr-defined]
    assert [d async for d in rt.stream(model="m", prompt="x")] == ["abc"]


async def test_seed_provider_through_register_provider() -> None:
    register_provider("yours", YourProvider)
    try:
        rt = runtime_for(
            catalog(
                {
                    "y": {
                        "provider": "yours",
                        "default_temperature": 0.4,
                        "default_max_tokens": 99,
                        "max_tokens_param": "max_new_tokens",
                        "extra_params": {"top_k": 5},
                    },
                    "z": {"provider": "yours", "default_max_tokens": 10},
                },
                providers={},
            )
        )
        assert await rt.completion("hi", "y") == "y says: hi"
        stream = rt.stream(model="z", prompt="yo")
        assert [d async for d in stream] == ["z says: yo"]
        calls = rt.provider_for("y").calls  # type: ignore[attr-defined]
        assert calls[0] == {
            "prompt": "hi",
            "model": "y",
            "temperature": 0.4,
            "max_tokens": None,
            "kwargs": {"top_k": 5, "max_new_tokens": 99},
            "api_key": None,
            "base_url": None,
        }
        assert calls[1]["max_tokens"] == 10
        assert calls[1]["kwargs"] == {}
    finally:
        unregister_provider("yours")


async def test_chat_template_renders_messages_into_the_prompt() -> None:
    template = (
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    rt = runtime_for(catalog({"m": {"provider": "s", "chat_template": template}}))
    await rt.generate(model="m", messages=[{"role": "user", "content": "hi"}])
    assert _last(rt, "m").as_prompt() == "<user>hi</user><assistant>"
    await rt.generate(model="m", prompt="plain")
    assert _last(rt, "m").as_prompt() == "plain"


async def test_chat_template_runs_in_a_sandbox() -> None:
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    rt = runtime_for(catalog({"m": {"provider": "s", "chat_template": evil}}))
    with pytest.raises(errors.TemplateError) as info:  # an InvalidRequestError, as before
        await rt.generate(model="m", messages=[{"role": "user", "content": "hi"}])
    assert isinstance(info.value, errors.InvalidRequestError)
    assert str(info.value).startswith("model 'm': its chat_template was refused by the sandbox: ")


async def test_aclose_is_idempotent_and_a_closed_runtime_refuses_calls() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    async with rt:
        await rt.completion("x", "m")
    assert rt.closed
    await rt.aclose()
    with pytest.raises(errors.RuntimeClosedError):
        await rt.completion("x", "m")
    with pytest.raises(errors.RuntimeClosedError):
        rt.stream(model="m", prompt="x")


async def test_aclose_closes_every_provider_instance() -> None:
    closed: list[str] = []

    class Closing(ScriptedProvider):
        async def aclose(self) -> None:
            closed.append(self.api_key or "")

    register_provider("closing", Closing)
    try:
        rt = runtime_for(
            catalog(
                {
                    "a": {"provider": "closing", "requires_api_key_env": "K1"},
                    "b": {"provider": "closing", "requires_api_key_env": "K2"},
                },
                providers={},
            ),
            environ={"K1": "one", "K2": "two"},
        )
        await rt.completion("x", "a")
        await rt.completion("x", "b")
        await rt.aclose()
        assert sorted(closed) == ["one", "two"]
    finally:
        unregister_provider("closing")


async def test_foreign_exception_from_a_provider_is_wrapped_and_scrubbed() -> None:
    rt = runtime_for(
        catalog({"m": {"provider": "s", "requires_api_key_env": "S_API_KEY"}}),
        environ={"S_API_KEY": "canary-secret-1"},
    )
    rt.provider_for("m").queue(RuntimeError("bad key canary-secret-1"))  # type: ignore[attr-defined]
    with pytest.raises(errors.ProviderError) as info:
        await rt.completion("x", "m")
    assert str(info.value) == (
        "[provider 's', model 'm'] the provider raised RuntimeError: bad key ***"
    )
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_explain_redacts_the_key_and_sends_nothing() -> None:
    rt = runtime_for(
        catalog({"m": {"provider": "s", "requires_api_key_env": "S_API_KEY"}}),
        environ={"S_API_KEY": "canary-secret-2"},
    )
    described = await rt.explain(model="m", prompt="canary-secret-2 in prompt")
    assert "canary-secret-2" not in repr(described)
    assert described["api_key"] == "set"
    assert described["request"]["args"]["prompt"] == "*** in prompt"
    assert rt.provider_for("m").calls == []  # type: ignore[attr-defined]


def test_repr_of_provider_never_shows_the_key() -> None:
    provider = ScriptedProvider(api_key="canary-secret-3", base_url="http://x")
    assert "canary-secret-3" not in repr(provider)
    assert repr(provider) == "<ScriptedProvider base_url='http://x' api_key=set>"
