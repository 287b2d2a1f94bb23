"""One tool-calling conversation moved between OpenAI, Anthropic and Gemini mid-way.

Three loopback servers answer in each vendor's reply shape (``*_fakes.py``). A conversation
(a system prompt; a user turn with text, an image by bytes and one by https URL) is started
on one vendor, which thinks (with signatures where the vendor has them) and makes two
parallel calls; the tool results (one an error) are appended in OpenAI's shape and the
history continues on another vendor through ``rt.generate(model=..., messages=history)``,
which thinks and makes one more call; its result goes back and a third step runs on a third
vendor, or back on the first. Every body each server received is checked against that
vendor's documented request schema (``tests/wire/vendor_schemas.py``: the official SDKs'
request types, google-genai's, and the rules the references state), and against the
portable rules of ``runtime/providers/*_request.py``:

* tool results are matched to their calls on every vendor: by id on OpenAI and Anthropic, by
  name (and id where the id is Gemini's own) on Gemini;
* Gemini gives calls no ids: the runtime makes unique ones, which OpenAI and Anthropic get
  and which are never sent back to Gemini as ids;
* reasoning goes back verbatim, with its signature, only to the vendor that made it; any
  other vendor's is dropped (no signature, no redacted data, no thought text travels);
* Anthropic's thinking is left out of a call whose last tool-calling turn came from another
  vendor (the API rejects it then), and sent otherwise;
* a Gemini model that checks signatures (Gemini 3) gets the documented placeholder on
  another vendor's calls, and ids outside Anthropic's characters still pair up there.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from runtime.providers.gemini_request import SIGNATURE_SENTINEL
from runtime.service import LLMRuntime
from runtime.types import Completion, Message, ToolCallDone, ToolResult
from tests.loopback import LoopbackServer, Reply
from tests.unit.helpers import catalog, runtime_for
from tests.wire import anthropic_fakes, gemini_fakes, openai_fakes
from tests.wire.vendor_schemas import (
    check_anthropic,
    check_openai,
    check_request,
)

VENDORS = ("openai", "anthropic", "gemini")
#: The catalog id of each vendor's model, and the name the vendor knows it by.
MODELS = {"openai": "gpt-5-mini", "anthropic": "claude-sonnet", "gemini": "gemini-2.5-flash"}
WIRE_MODELS = {
    "openai": "gpt-5-mini",
    "anthropic": anthropic_fakes.MODEL,
    "gemini": "gemini-2.5-flash",
}
CLASSES = {
    "openai": "runtime.providers.openai_provider.OpenAIProvider",
    "anthropic": "runtime.providers.anthropic_provider.AnthropicProvider",
    "gemini": "runtime.providers.gemini_provider.GeminiProvider",
}
KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
CAPABILITIES = {
    "openai": {"reasoning": "effort"},
    "anthropic": {"reasoning": "budget", "structured_output": "native"},
    "gemini": {"reasoning": "budget"},
}

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PHOTO_URL = "https://upload.example.org/photos/paris.jpg"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    {
        "type": "function",  # OpenAI's shape: the runtime takes both
        "function": {
            "name": "get_time",
            "description": "Local time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
]
START: list[Any] = [
    {"role": "system", "content": "Answer briefly."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Is this Paris? What is the weather there and in Oslo?"},
            {"type": "image", "data": PNG, "media_type": "image/png"},
            {"type": "image_url", "image_url": {"url": PHOTO_URL}},
        ],
    },
]
FINAL_TEXT = "Yes, that is Paris: 18 C there; Oslo has no data, and it is 21:05 in Oslo."


def secret(vendor: str, step: int, what: str) -> str:
    """A signature (or redacted data) unique to its vendor and step: base64, as Gemini's are."""
    return base64.b64encode(f"{vendor}-{step}-{what}".encode()).decode()


def thought(vendor: str, step: int) -> str:
    return f"[{vendor} thinking at step {step}]"


# --------------------------------------------------------------------------- vendor replies


def openai_reply(step: int, calls: list[tuple[str, str, str]], stream: bool) -> Reply:
    """Chat Completions has no reasoning output: calls (id, name, JSON text) or the answer."""
    if stream:
        if calls:
            pieces = tuple((cid, name, openai_fakes.split(args, 7)) for cid, name, args in calls)
            return openai_fakes.tool_call_stream(pieces)
        return openai_fakes.stream_reply(texts=tuple(openai_fakes.split(FINAL_TEXT, 11)))
    if calls:
        tool_calls = [openai_fakes.tool_call(*call) for call in calls]
        body = openai_fakes.completion(None, finish_reason="tool_calls", tool_calls=tool_calls)
    else:
        body = openai_fakes.completion(FINAL_TEXT)
    return Reply(body=body)


def anthropic_reply(step: int, calls: list[tuple[str, str, str]], stream: bool) -> Reply:
    """A thinking block with its signature (and a redacted one first), then calls or text."""
    text, signature = thought("anthropic", step), secret("anthropic", step, "sig")
    redacted = secret("anthropic", step, "redacted")
    stop = "tool_use" if calls else "end_turn"
    if stream:
        blocks: list[tuple[Any, ...]] = [
            ("redacted_thinking", redacted),
            ("thinking", [text[:9], text[9:]], signature),
        ]
        if calls:
            blocks += [("tool_use", cid, name, openai_fakes.split(a, 5)) for cid, name, a in calls]
        else:
            blocks.append(("text", openai_fakes.split(FINAL_TEXT, 13)))
        return anthropic_fakes.stream_reply(anthropic_fakes.block_stream(blocks, stop_reason=stop))
    content = [
        anthropic_fakes.redacted_block(redacted),
        anthropic_fakes.thinking_block(text, signature),
    ]
    content += [anthropic_fakes.tool_use_block(c, n, json.loads(a)) for c, n, a in calls]
    body = anthropic_fakes.message_body(
        [] if calls else [FINAL_TEXT], stop_reason=stop, blocks=content
    )
    return Reply(body=body)


def gemini_reply(step: int, calls: list[tuple[str, str, str]], stream: bool) -> Reply:
    """A thought summary, the calls (no ids: the Gemini API gives none) with the signature on
    the first call, as Gemini 2.5 sends them; or the answer with its signature."""
    parts: list[dict[str, Any]] = [{"text": thought("gemini", step), "thought": True}]
    signature = secret("gemini", step, "sig")
    if calls:
        for index, (_, name, args) in enumerate(calls):
            parts.append(
                gemini_fakes.function_call(
                    name, json.loads(args), signature=signature if index == 0 else None
                )
            )
    else:
        parts.append({"text": FINAL_TEXT, "thoughtSignature": signature})
    usage = gemini_fakes.usage(40, 12, 60, thoughts=8)

    def chunk(*chunk_parts: dict[str, Any], finish: str | None) -> dict[str, Any]:
        body = gemini_fakes.response(
            gemini_fakes.parts_candidate(*chunk_parts, finish=finish),
            usage_metadata=usage if finish else None,
        )
        body["responseId"] = f"gemini-response-{step}"  # unique per response, as Gemini's are
        return body

    if stream:  # the thought first, then the rest with the finish reason
        return gemini_fakes.sse_reply(
            [chunk(parts[0], finish=None), chunk(*parts[1:], finish="STOP")]
        )
    return Reply(body=chunk(*parts, finish="STOP"))


REPLIES = {"openai": openai_reply, "anthropic": anthropic_reply, "gemini": gemini_reply}
#: The calls each step asks for: (id the vendor gives, name, JSON arguments).
STEP_CALLS = {
    1: [
        ("1a", "get_weather", '{"city": "Paris"}'),
        ("1b", "get_weather", '{"city": "Oslo"}'),  # the same tool twice: Gemini pairs by order
    ],
    2: [("2a", "get_time", '{"city": "Oslo"}')],
    3: [],
}
VENDOR_IDS = {"openai": "call_{}X9kQm", "anthropic": "toolu_01{}Vq7", "gemini": None}
RESULTS = {"Paris": "18 C, sunny", "Oslo": "no data for Oslo"}


def calls_for(vendor: str, step: int) -> list[tuple[str, str, str]]:
    pattern = VENDOR_IDS[vendor]
    return [
        (pattern.format(cid) if pattern else "", name, args) for cid, name, args in STEP_CALLS[step]
    ]


# --------------------------------------------------------------------------- the runtime


@dataclass
class Servers:
    by_vendor: dict[str, LoopbackServer]
    #: (vendor, body) of every request, in the order they were made.
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def collect(self) -> None:
        for vendor, server in self.by_vendor.items():
            for recorded in server.requests:
                self.sent.append((vendor, recorded.json))
            server.requests.clear()


@pytest.fixture(scope="module")
def shared() -> Iterator[dict[str, LoopbackServer]]:
    servers = {vendor: LoopbackServer() for vendor in VENDORS}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def servers(shared: dict[str, LoopbackServer]) -> Servers:
    for server in shared.values():
        server.reset()
    return Servers(shared)


def runtime(servers: Servers, gemini_reasoning: str = "budget") -> LLMRuntime:
    """The three vendors' models on the servers; ``gemini_reasoning: effort`` is Gemini 3."""
    urls = {vendor: server.url for vendor, server in servers.by_vendor.items()}
    urls["gemini"] += "/v1beta"
    cat = catalog(
        {
            MODELS[vendor]: {
                "provider": vendor,
                "provider_model": WIRE_MODELS[vendor],
                "max_tokens_param": "max_completion_tokens" if vendor == "openai" else "max_tokens",
                "retry": {"max_attempts": 1},
                "capabilities": {
                    "tools": True,
                    "parallel_tool_calls": True,
                    "images": True,
                    **CAPABILITIES[vendor],
                    **({"reasoning": gemini_reasoning} if vendor == "gemini" else {}),
                },
            }
            for vendor in VENDORS
        },
        providers={
            vendor: {
                "class": CLASSES[vendor],
                "api_key_env": KEYS[vendor],
                "base_url": urls[vendor],
            }
            for vendor in VENDORS
        },
    )
    return runtime_for(cat, environ={KEYS[v]: f"test-key-{v}-0123456789" for v in VENDORS})


async def step(
    rt: LLMRuntime, servers: Servers, vendor: str, n: int, history: list[Any], stream: bool
) -> Completion:
    """Step ``n`` of the conversation on ``vendor``: its fake answers, the runtime decodes."""
    server = servers.by_vendor[vendor]
    server.queue(REPLIES[vendor](n, calls_for(vendor, n), stream))
    kwargs: dict[str, Any] = {"tools": TOOLS, "reasoning": {"effort": "low"}}
    if not stream:
        result = await rt.generate(model=MODELS[vendor], messages=history, **kwargs)
    else:
        done = []
        async with rt.stream_events(model=MODELS[vendor], messages=history, **kwargs) as events:
            done = [e.call async for e in events if isinstance(e, ToolCallDone)]
            completion = events.completion
        assert completion is not None
        assert tuple(done) == completion.tool_calls  # each call also came as soon as complete
        result = completion
    servers.collect()
    return result


def answer(result: Completion) -> list[Any]:
    """The assistant turn and a tool message per call (OpenAI's shape; Oslo's is an error)."""
    out: list[Any] = [result.message]
    for call in result.tool_calls:
        city = call.arguments["city"]
        if call.name == "get_time":
            out.append({"role": "tool", "tool_call_id": call.id, "content": "21:05"})
        elif city == "Oslo":  # an error result, which only our own shape can say
            out.append(Message("tool", [ToolResult(call.id, RESULTS[city], is_error=True)]))
        else:
            out.append({"role": "tool", "tool_call_id": call.id, "content": RESULTS[city]})
    return out


# --------------------------------------------------------------------------- the checks


def check_images(vendor: str, body: dict[str, Any]) -> None:
    """The user turn's two images arrived in the vendor's own image shape."""
    data = base64.b64encode(PNG).decode()
    text = json.dumps(body)
    if vendor == "openai":
        parts = body["messages"][1]["content"]
        assert parts[1:] == [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
            {"type": "image_url", "image_url": {"url": PHOTO_URL}},
        ]
    elif vendor == "anthropic":
        blocks = body["messages"][0]["content"]
        assert blocks[1:] == [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": data},
            },
            {"type": "image", "source": {"type": "url", "url": PHOTO_URL}},
        ]
    else:
        parts = body["contents"][0]["parts"]
        assert parts[1:] == [
            {"inlineData": {"mimeType": "image/png", "data": data}},
            {"fileData": {"fileUri": PHOTO_URL, "mimeType": "image/jpeg"}},
        ]
    assert text.count(data) == 1


def sent_calls(vendor: str, body: dict[str, Any]) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(id, name, arguments) of every tool call in the history, as sent."""
    out: list[tuple[str | None, str, dict[str, Any]]] = []
    if vendor == "openai":
        for message in body["messages"]:
            for call in message.get("tool_calls") or ():
                function = call["function"]
                out.append((call["id"], function["name"], json.loads(function["arguments"])))
    elif vendor == "anthropic":
        for message in body["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else ():
                if block["type"] == "tool_use":
                    out.append((block["id"], block["name"], block["input"]))
    else:
        for content in body["contents"]:
            for part in content["parts"]:
                if "functionCall" in part:
                    call = part["functionCall"]
                    out.append((call.get("id"), call["name"], call["args"]))
    return out


def sent_results(vendor: str, body: dict[str, Any]) -> list[tuple[str | None, str, bool]]:
    """(call id, content, is_error) of every tool result, as sent (Gemini: name for id)."""
    out: list[tuple[str | None, str, bool]] = []
    if vendor == "openai":
        for message in body["messages"]:
            if message["role"] == "tool":
                out.append((message["tool_call_id"], message["content"], False))
    elif vendor == "anthropic":
        for message in body["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else ():
                if block["type"] == "tool_result":
                    error = block.get("is_error", False)
                    out.append((block["tool_use_id"], block["content"], error))
    else:
        for content in body["contents"]:
            for part in content["parts"]:
                if "functionResponse" in part:
                    response = part["functionResponse"]
                    [(key, value)] = response["response"].items()
                    out.append((response.get("id"), value, key == "error"))
    return out


def check_history(vendor: str, body: dict[str, Any], made: list[tuple[str, Completion]]) -> None:
    """The calls made so far (by whichever vendor) and their results, as ``vendor`` needs."""
    calls = [(v, c) for v, result in made for c in result.tool_calls]
    sent = sent_calls(vendor, body)
    assert [(name, args) for _, name, args in sent] == [
        (c.name, dict(c.arguments)) for _, c in calls
    ]
    ids = [c.id for _, c in calls]
    assert len(set(ids)) == len(ids), f"call ids repeat across the conversation: {ids}"
    results = sent_results(vendor, body)
    contents = ["21:05" if c.name == "get_time" else RESULTS[c.arguments["city"]] for _, c in calls]
    errors = [c.name == "get_weather" and c.arguments["city"] == "Oslo" for _, c in calls]
    if vendor == "gemini":
        # No made-up id goes to Gemini; another vendor's ids do (they pair parallel calls).
        expected_ids = [None if v == "gemini" else c.id for v, c in calls]
        assert [cid for cid, _, _ in sent] == expected_ids
        assert all(not (cid or "").startswith("gcall_") for cid, _, _ in sent)
        # OpenAI's error results say so only in their text; ours carry is_error everywhere.
        assert results == [
            (i, t, e) for i, t, e in zip(expected_ids, contents, errors, strict=True)
        ]
    else:
        # Every vendor's ids, Gemini's made-up ones included, pair calls and results.
        assert [cid for cid, _, _ in sent] == ids
        flags = errors if vendor == "anthropic" else [False] * len(errors)
        assert results == list(zip(ids, contents, flags, strict=True))


def check_reasoning(vendor: str, body: dict[str, Any], made: list[tuple[str, Completion]]) -> None:
    """Reasoning goes back verbatim to the vendor that made it, and to no other."""
    text = json.dumps(body)
    for n, (origin, _) in enumerate(made, 1):
        own = origin == vendor
        # What each vendor's fake sent: Anthropic a signed and a redacted thinking block,
        # Gemini a thought summary and a signature, OpenAI no reasoning at all.
        sent = {"anthropic": ("sig", "redacted"), "gemini": ("sig",), "openai": ()}[origin]
        for what in ("sig", "redacted"):
            expected = own and what in sent
            assert (secret(origin, n, what) in text) == expected, (vendor, origin, n, what)
        expected = own and origin != "openai"
        assert (thought(origin, n) in text) == expected, (vendor, origin, n, "text")
    if vendor == "anthropic":
        # The last turn that called tools: Anthropic's own (or none) -> thinking is sent;
        # another vendor's -> thinking is left out (the documented rule), history kept.
        last = next((origin for origin, r in reversed(made) if r.tool_calls), None)
        thinking = body.get("thinking")
        if last in (None, "anthropic"):
            assert thinking == {"type": "enabled", "budget_tokens": 1024}
        else:
            assert thinking is None


def check_request_shape(vendor: str, body: dict[str, Any]) -> None:
    """The vendor's documented schema: a failure names the field that is wrong."""
    check_request(vendor, body)
    if vendor == "openai":
        assert body["reasoning_effort"] == "low"
    if vendor == "gemini":
        assert body["generationConfig"]["thinkingConfig"] == {
            "thinkingBudget": 1024,
            "includeThoughts": True,
        }


# --------------------------------------------------------------------------- the conversation

PATHS = [
    pytest.param(path, id="-".join(path))
    for path in itertools.product(VENDORS, repeat=3)
    if path[0] != path[1] and path[1] != path[2]
]
MODES = [pytest.param(False, id="generate"), pytest.param(True, id="stream")]


@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("path", PATHS)
async def test_a_conversation_moves_between_vendors(
    servers: Servers, path: tuple[str, str, str], stream: bool
) -> None:
    rt = runtime(servers)
    history: list[Any] = list(START)
    made: list[tuple[str, Completion]] = []
    try:
        for n, vendor in enumerate(path, 1):
            result = await step(rt, servers, vendor, n, history, stream)
            # What each server received, before the reply was read into the history.
            sent_vendor, body = servers.sent[-1]
            assert sent_vendor == vendor
            check_request_shape(vendor, body)
            check_images(vendor, body)
            check_history(vendor, body, made)
            check_reasoning(vendor, body, made)
            made.append((vendor, result))
            history += answer(result)
    finally:
        await rt.aclose()
    assert len(servers.sent) == 3
    first, second, third = (result for _, result in made)
    assert first.finish_reason == second.finish_reason == "tool_calls"
    assert [c.name for c in first.tool_calls] == ["get_weather", "get_weather"]
    assert [c.name for c in second.tool_calls] == ["get_time"]
    assert (third.finish_reason, third.text, third.tool_calls) == ("stop", FINAL_TEXT, ())
    for (vendor, result), n in zip(made, (1, 2, 3), strict=True):
        if vendor == "openai":
            assert result.reasoning is None
        else:
            assert result.reasoning == thought(vendor, n)
        if vendor == "gemini":  # ids made for Gemini's calls: unique and stable
            assert all(c.id.startswith("gcall_") for c in result.tool_calls)


async def test_a_foreign_history_continues_on_a_gemini_model_that_checks_signatures(
    servers: Servers,
) -> None:
    # Gemini 3 (declared reasoning: effort) refuses function calls without a signature in
    # the current turn: another vendor's calls get Google's documented placeholder, on the
    # first call of each step, and the effort goes as thinkingLevel.
    rt = runtime(servers, gemini_reasoning="effort")
    history: list[Any] = list(START)
    made: list[tuple[str, Completion]] = []
    try:
        for n, vendor in enumerate(("openai", "anthropic"), 1):
            result = await step(rt, servers, vendor, n, history, stream=False)
            made.append((vendor, result))
            history += answer(result)
        await step(rt, servers, "gemini", 3, history, stream=False)
    finally:
        await rt.aclose()
    vendor, body = servers.sent[-1]
    assert vendor == "gemini"
    check_request("gemini", body)
    check_history("gemini", body, made)
    check_reasoning("gemini", body, made)
    assert body["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "LOW",
        "includeThoughts": True,
    }
    turns = [content["parts"] for content in body["contents"] if content["role"] == "model"]
    assert [[part.get("thoughtSignature") for part in parts] for parts in turns] == [
        [SIGNATURE_SENTINEL, None],  # OpenAI's two parallel calls
        [SIGNATURE_SENTINEL],  # Anthropic's call (its thinking dropped)
    ]


async def test_ids_another_vendor_cannot_take_are_mapped_on_both_sides(servers: Servers) -> None:
    # Some OpenAI-compatible servers (Moonshot's Kimi, for one) give ids like
    # "functions.get_weather:0", outside the characters Anthropic takes: the call and its
    # result must still pair up there.
    calls = [
        openai_fakes.tool_call("functions.get_weather:0", "get_weather", '{"city": "Paris"}'),
        openai_fakes.tool_call("functions.get_weather:1", "get_weather", '{"city": "Oslo"}'),
    ]
    servers.by_vendor["openai"].queue(
        Reply(body=openai_fakes.completion(None, finish_reason="tool_calls", tool_calls=calls))
    )
    servers.by_vendor["anthropic"].queue(anthropic_reply(2, [], stream=False))
    rt = runtime(servers)
    try:
        history: list[Any] = list(START)
        first = await rt.generate(model=MODELS["openai"], messages=history, tools=TOOLS)
        history += answer(first)
        await rt.generate(model=MODELS["anthropic"], messages=history, tools=TOOLS)
    finally:
        await rt.aclose()
    servers.collect()
    vendor, body = servers.sent[-1]
    assert vendor == "anthropic"
    check_anthropic(body)
    assistant, results = body["messages"][1:3]
    assert [b["id"] for b in assistant["content"]] == [
        "functions_get_weather_0",
        "functions_get_weather_1",
    ]
    assert [b["tool_use_id"] for b in results["content"]] == [
        "functions_get_weather_0",
        "functions_get_weather_1",
    ]


# --------------------------------------------------------------------------- the schemas fail


def valid_bodies() -> dict[str, dict[str, Any]]:
    """One small valid body per vendor, with a tool call and its result."""
    return {
        "openai": {
            "model": "gpt-5-mini",
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
            ],
        },
        "anthropic": {
            "model": anthropic_fakes.MODEL,
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
                },
            ],
        },
        "gemini": {
            "contents": [
                {"role": "user", "parts": [{"text": "Weather?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {}}}]},
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "w", "response": {"output": "ok"}}}],
                },
            ]
        },
    }


def _drop(path: tuple[Any, ...]) -> Any:
    def edit(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("vendor", "edit", "problem"),
    [
        pytest.param(
            "openai", _drop(("messages", 2, "tool_call_id")), "tool_call_id", id="openai-no-call-id"
        ),
        pytest.param(
            "openai", _set(("messages", 1, "reasoning"), "x"), "reasoning", id="openai-unknown-key"
        ),
        pytest.param(
            "openai",
            _set(("messages", 2, "tool_call_id"), "call_2"),
            "answers no call",
            id="openai-unmatched-result",
        ),
        pytest.param(
            "openai",
            _set(("messages", 0, "content"), [{"type": "image", "url": "https://x/y.png"}]),
            "image",
            id="openai-our-image-shape",
        ),
        pytest.param(
            "anthropic",
            _drop(("messages", 2, "content", 0, "tool_use_id")),
            "tool_use_id",
            id="anthropic-no-tool-use-id",
        ),
        pytest.param(
            "anthropic",
            _set(("messages", 1, "content", 0, "id"), "call.1"),
            "tool_use id 'call.1'",
            id="anthropic-bad-id",
        ),
        pytest.param(
            "anthropic",
            _set(("messages", 2, "content", 0, "tool_use_id"), "toolu_2"),
            "calls ['toolu_1'] answered by ['toolu_2']",
            id="anthropic-unmatched-result",
        ),
        pytest.param(
            "anthropic",
            _set(("thinking",), {"type": "enabled", "budget_tokens": 2048}),
            "thinking budget 2048 vs max_tokens",
            id="anthropic-budget-over-max",
        ),
        pytest.param(
            "anthropic",
            _set(("messages", 1, "content", 0, "signature"), "sig"),
            "signature",
            id="anthropic-unknown-key",
        ),
        pytest.param(
            "gemini",
            _drop(("contents", 2, "parts", 0, "functionResponse", "name")),
            "functionResponse.name",
            id="gemini-no-response-name",
        ),
        pytest.param(
            "gemini",
            _set(("contents", 2, "parts", 0, "text"), "also text"),
            "one kind of data per part",
            id="gemini-two-kinds-of-data",
        ),
        pytest.param(
            "gemini",
            _set(("contents", 1, "role"), "assistant"),
            "role: 'assistant'",
            id="gemini-role",
        ),
        pytest.param(
            "gemini",
            _set(("contents", 2, "parts"), [{"text": "no answer"}]),
            "responses [] for calls ['w']",
            id="gemini-unanswered-call",
        ),
        pytest.param(
            "gemini",
            _set(
                ("contents", 0, "parts", 0), {"inlineData": {"mimeType": "image/png", "data": "!"}}
            ),
            "base64",
            id="gemini-bad-base64",
        ),
        pytest.param(
            "gemini",
            _set(("contents", 0, "parts", 0), {"functionResult": {"name": "w"}}),
            "functionResult",
            id="gemini-unknown-key",
        ),
        pytest.param(
            "gemini",
            _set(("toolConfig",), {"functionCallingConfig": {"mode": "FORCED"}}),
            "FORCED",
            id="gemini-unknown-mode",
        ),
    ],
)
def test_the_vendor_schemas_refuse_invalid_bodies(vendor: str, edit: Any, problem: str) -> None:
    body = valid_bodies()[vendor]
    check_request(vendor, body)  # valid as it is
    edit(body)
    with pytest.raises((ValidationError, AssertionError, UserWarning)) as info:
        check_request(vendor, body)
    assert problem in str(info.value)


def test_streaming_bodies_are_checked_against_the_streaming_types() -> None:
    bodies = valid_bodies()
    check_openai({**bodies["openai"], "stream": True, "stream_options": {"include_usage": True}})
    check_anthropic({**bodies["anthropic"], "stream": True})
    with pytest.raises(ValidationError) as info:
        check_anthropic({**bodies["anthropic"], "stream": True, "stream_options": {}})
    assert "stream_options" in str(info.value)
