"""Tools, structured output and capabilities through the engine (scripted provider, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from runtime import errors
from runtime.testing import Script, ScriptedProvider
from runtime.types import (
    Message,
    StreamEnd,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolResult,
)
from tests.unit.helpers import YourProvider, catalog, runtime_for

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


class City(BaseModel):
    city: str


class Answer(BaseModel):
    answer: str
    confidence: float


def scripted(rt: Any, model: str = "m") -> ScriptedProvider:
    provider = rt.provider_for(model)
    assert isinstance(provider, ScriptedProvider)
    return provider


@pytest.mark.parametrize(
    "tool",
    [
        pytest.param(Tool("get_weather", "Current weather", WEATHER), id="Tool"),
        pytest.param(
            {"name": "get_weather", "description": "Current weather", "parameters": WEATHER},
            id="dict",
        ),
        pytest.param(
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": WEATHER,
                },
            },
            id="openai",
        ),
    ],
)
async def test_every_tool_shape_reaches_the_provider_as_one_tool(tool: Any) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    await rt.generate(model="m", prompt="weather?", tools=[tool], tool_choice="auto")
    request = scripted(rt).calls[-1]
    assert request.tools == (Tool("get_weather", "Current weather", WEATHER),)
    assert request.tool_choice == "auto"
    assert "tools" not in request.params


def test_a_pydantic_class_as_parameters_gives_its_schema() -> None:
    assert Tool("find", "", City).parameters == City.model_json_schema()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"tools": [Tool("a")], "tool_choice": {"name": "b"}},
            "tool_choice names 'b', which is not one of the tools given",
            id="unknown-choice",
        ),
        pytest.param(
            {"tool_choice": "required"}, "tool_choice 'required' needs tools", id="no-tools"
        ),
        pytest.param(
            {"tools": [Tool("a"), {"name": "a"}]}, "tools: the name 'a' is given twice", id="dupe"
        ),
        pytest.param(
            {"tools": [{"name": "bad name"}]},
            "tools[0]: tool name 'bad name': use 1-64 letters, digits, _ or - (every vendor "
            "accepts these)",
            id="name",
        ),
        pytest.param(
            {"reasoning": {"effort": "max"}},
            "reasoning.effort: expected low, medium or high, got 'max'",
            id="effort",
        ),
        pytest.param(
            {"response_format": {"type": "json_object"}},
            "response_format: give a JSON Schema (or a pydantic model class); {'type': "
            "'json_object'} has no schema to validate the reply against",
            id="json-object",
        ),
    ],
)
async def test_bad_portable_arguments_are_refused_before_any_request(
    kwargs: dict[str, Any], message: str
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    with pytest.raises(errors.InvalidRequestError) as info:
        await rt.generate(model="m", prompt="x", **kwargs)
    assert str(info.value) == message
    assert scripted(rt).calls == []


CALL = ToolCall("call_1", "get_weather", {"city": "Paris"})


async def test_a_tool_call_comes_back_with_its_parsed_arguments_and_finish_reason() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue(Script(text="", tool_calls=[CALL], finish_reason="stop"))
    result = await rt.generate(model="m", prompt="weather?", tools=[Tool("get_weather")])
    assert result.tool_calls == (CALL,)
    assert result.finish_reason == "tool_calls"  # the call, even though the vendor said stop
    assert result.message == Message("assistant", [CALL])


async def test_the_assistant_turn_and_a_tool_result_continue_the_conversation() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue(Script(tool_calls=[CALL]), "18 C and sunny in Paris")
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await rt.generate(model="m", messages=messages, tools=[Tool("get_weather")])
    messages += [first.message, {"role": "tool", "tool_call_id": CALL.id, "content": "18 C"}]
    second = await rt.generate(model="m", messages=messages, tools=[Tool("get_weather")])
    assert second.text == "18 C and sunny in Paris"
    sent = scripted(rt).calls[-1].messages
    assert [m.role for m in sent] == ["user", "assistant", "tool"]
    assert sent[1].tool_calls == (CALL,)
    assert sent[2].parts == (ToolResult("call_1", "18 C"),)


async def test_stream_events_give_argument_fragments_then_the_whole_call() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue(Script(chunks=["Let me check."], tool_calls=[CALL]))
    stream = rt.stream_events(model="m", prompt="weather?", tools=[Tool("get_weather")])
    events = [event async for event in stream]
    kinds = [type(e) for e in events]
    assert kinds[0] is TextDelta
    assert kinds[-1] is StreamEnd
    fragments = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(fragments) >= 2
    assert "".join(e.arguments for e in fragments) == '{"city": "Paris"}'
    done = [e for e in events if isinstance(e, ToolCallDone)]
    assert done == [ToolCallDone(0, CALL)]
    assert kinds.index(ToolCallDone) < kinds.index(StreamEnd)
    assert stream.completion is not None
    assert stream.completion.tool_calls == (CALL,)


async def test_the_text_stream_still_yields_only_text() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue(Script(chunks=["a", "b"], tool_calls=[CALL]))
    stream = rt.stream(model="m", prompt="x", tools=[Tool("get_weather")])
    assert [d async for d in stream] == ["a", "b"]
    assert stream.completion is not None
    assert stream.completion.tool_calls == (CALL,)


# --------------------------------------------------------------------------- structured output


async def test_a_pydantic_response_format_parses_the_reply() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue('{"answer": "Paris", "confidence": 0.9}')
    result = await rt.generate(model="m", prompt="capital?", response_format=Answer)
    assert result.parsed == Answer(answer="Paris", confidence=0.9)
    request = scripted(rt).calls[-1]
    assert request.response_format is not None
    assert request.response_format.schema == Answer.model_json_schema()


async def test_a_schema_dict_validates_and_returns_the_value() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue('```json\n{"city": "Lyon"}\n```')
    result = await rt.generate(model="m", prompt="x", response_format=WEATHER)
    assert result.parsed == {"city": "Lyon"}


@pytest.mark.parametrize(
    ("reply", "fmt", "problem"),
    [
        pytest.param("not json", Answer, "not JSON", id="not-json"),
        pytest.param(
            '{"answer": "x"}', Answer, "confidence: Field required (1 problem(s))", id="pydantic"
        ),
        pytest.param('{"city": 3}', WEATHER, "city: 3 is not of type 'string'", id="schema"),
    ],
)
async def test_a_reply_that_does_not_validate_raises_with_the_raw_text(
    reply: str, fmt: Any, problem: str
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue(reply)
    with pytest.raises(errors.StructuredOutputError) as info:
        await rt.generate(model="m", prompt="x", response_format=fmt)
    assert info.value.raw_text == reply
    assert info.value.problem.startswith(problem)
    assert isinstance(info.value, errors.LLMRuntimeError)


async def test_a_stream_gets_parsed_at_the_end() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    scripted(rt).queue(Script(chunks=['{"city": ', '"Nice"}']))
    stream = rt.stream(model="m", prompt="x", response_format=City)
    assert "".join([d async for d in stream]) == '{"city": "Nice"}'
    assert stream.completion is not None
    assert stream.completion.parsed == City(city="Nice")


# --------------------------------------------------------------------------- capabilities


async def test_a_capability_declared_false_is_refused_before_any_request() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "capabilities": {"tools": False}}}))
    with pytest.raises(errors.CapabilityError) as info:
        await rt.generate(model="m", prompt="x", tools=[Tool("a")])
    assert str(info.value) == "model 'm' does not support tools (capabilities in models.yaml)"
    assert info.value.capability == "tools"
    assert scripted(rt).calls == []


async def test_images_to_a_model_without_them_are_refused() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "capabilities": {"images": False}}}))
    image = {"type": "image", "url": "https://example.com/cat.png"}
    with pytest.raises(errors.CapabilityError) as info:
        await rt.generate(model="m", messages=[{"role": "user", "content": [image]}])
    assert info.value.capability == "images"


async def test_a_fallback_that_lacks_the_capability_is_passed_over() -> None:
    rt = runtime_for(
        catalog(
            {
                "a": {"provider": "s", "fallbacks": ["b", "c"], "retry": {"max_attempts": 1}},
                "b": {"provider": "s", "capabilities": {"tools": False}},
                "c": {"provider": "s"},
            }
        )
    )
    provider = scripted(rt, "a")
    provider.queue(errors.ServerError("down"), Script(tool_calls=[CALL]))
    result = await rt.generate(model="a", prompt="x", tools=[Tool("get_weather")])
    assert result.model == "c"
    assert [c.model for c in provider.calls] == ["a", "c"]
    assert [m for m, _ in result.failures] == ["a"]


async def test_a_provider_class_that_cannot_send_tools_is_refused_clearly() -> None:
    cat = catalog(
        {"m": {"provider": "seed"}}, {"seed": {"class": f"{YourProvider.__module__}.YourProvider"}}
    )
    rt = runtime_for(cat)
    with pytest.raises(errors.CapabilityError) as info:
        await rt.generate(model="m", prompt="x", tools=[Tool("a")])
    assert str(info.value) == "model 'm': its provider class YourProvider cannot send tools"
