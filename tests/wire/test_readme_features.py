"""The README's feature examples, run as written against loopback fakes of the vendors.

Each example loads the bundled catalog and calls hosted models (``gpt-4o-mini``,
``claude-sonnet``, ``gemini-2.5-flash``); the vendors' ``*_BASE_URL`` variables point them at
loopback servers answering in the vendors' reply shapes, and every request body they receive
is checked against the vendor's documented schema (``vendor_schemas``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.loopback import LoopbackServer, Reply
from tests.readme import python_blocks, run_example
from tests.wire import anthropic_fakes, gemini_fakes, openai_fakes
from tests.wire.vendor_schemas import check_request

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def vendors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, LoopbackServer]]:
    """Loopback servers for the three vendors, the bundled catalog pointed at them."""
    servers = {name: LoopbackServer().start() for name in ("openai", "anthropic", "gemini")}
    suffix = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}
    for name, server in servers.items():
        monkeypatch.setenv(f"{name.upper()}_BASE_URL", server.url + suffix[name])
        monkeypatch.setenv(f"{name.upper()}_API_KEY", f"readme-test-key-{name}")
    monkeypatch.chdir(tmp_path)  # no ./providers.yaml: the bundled catalog, as a user has it
    yield servers
    for server in servers.values():
        server.stop()


def bodies(server: LoopbackServer, vendor: str) -> list[dict[str, Any]]:
    """The JSON bodies the server received, each valid by the vendor's schema."""
    out = [r.json for r in server.requests]
    for body in out:
        check_request(vendor, body)
    return out


def test_tool_calling(
    vendors: dict[str, LoopbackServer], capsys: pytest.CaptureFixture[str]
) -> None:
    openai = vendors["openai"]
    calls = [
        openai_fakes.tool_call("call_P1", "get_weather", '{"city": "Paris"}'),
        openai_fakes.tool_call("call_O2", "get_weather", '{"city": "Oslo"}'),
    ]
    openai.queue(
        Reply(body=openai_fakes.completion(None, finish_reason="tool_calls", tool_calls=calls)),
        Reply(body=openai_fakes.completion("Paris: 18 C and sunny; Oslo: 4 C and rain.")),
        openai_fakes.tool_call_stream(
            (("call_R3", "get_weather", openai_fakes.split('{"city": "Rome"}', 4)),)
        ),
    )
    [code] = python_blocks("Features", "Tool calling")
    run_example(code)
    assert capsys.readouterr().out == (
        "Paris: 18 C and sunny; Oslo: 4 C and rain.\n"
        "call: get_weather {'city': 'Rome'}\n"
        "tool_calls\n"
    )
    first, second, third = bodies(openai, "openai")
    assert [r.path for r in openai.requests] == ["/v1/chat/completions"] * 3
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_P1", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_O2", "content": "4 C, rain"},
    ]
    assert third["stream"] is True


def test_images(vendors: dict[str, LoopbackServer], capsys: pytest.CaptureFixture[str]) -> None:
    Path("photo.png").write_bytes(PNG)
    anthropic = vendors["anthropic"]
    anthropic.queue(Reply(body=anthropic_fakes.message_body("Both show the Eiffel Tower.")))
    [code] = python_blocks("Features", "Images")
    run_example(code)
    assert capsys.readouterr().out == "Both show the Eiffel Tower.\n"
    [body] = bodies(anthropic, "anthropic")
    text, by_url, by_bytes = body["messages"][0]["content"]
    assert text["type"] == "text"
    assert by_url["source"]["type"] == "url"
    assert by_url["source"]["url"].startswith("https://upload.wikimedia.org/")
    assert by_bytes["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(PNG).decode(),
    }


def test_reasoning(vendors: dict[str, LoopbackServer], capsys: pytest.CaptureFixture[str]) -> None:
    anthropic, gemini = vendors["anthropic"], vendors["gemini"]
    thinking = anthropic_fakes.thinking_block("1001 = 7 * 143 = 7 * 11 * 13.", "EqQBCkgIARABGAIiQ")
    anthropic.queue(Reply(body=anthropic_fakes.message_body("No.", blocks=[thinking])))
    gemini.queue(
        Reply(
            body=gemini_fakes.response(
                gemini_fakes.candidate("No.", thoughts=("Divisible by 7.",)),
                usage_metadata=gemini_fakes.usage(12, 2, 30, thoughts=16),
            )
        )
    )
    [code] = python_blocks("Features", "Reasoning")
    run_example(code)
    assert capsys.readouterr().out == (
        "thought: 1001 = 7 * 143 = 7 * 11 * 13.\nanswer: No.\n"
        "thought: Divisible by 7.\nanswer: No.\n"
    )
    [claude] = bodies(anthropic, "anthropic")
    assert claude["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert claude["max_tokens"] == 4096  # the model's default, above the budget
    [flash] = bodies(gemini, "gemini")
    assert flash["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }


def test_moving_a_conversation_between_vendors(
    vendors: dict[str, LoopbackServer], capsys: pytest.CaptureFixture[str]
) -> None:
    gemini, anthropic, openai = vendors["gemini"], vendors["anthropic"], vendors["openai"]
    gemini.queue(
        Reply(
            body=gemini_fakes.response(
                gemini_fakes.parts_candidate(
                    gemini_fakes.function_call("get_weather", {"city": "Paris"}),
                    gemini_fakes.function_call("get_weather", {"city": "Oslo"}),
                )
            )
        )
    )
    anthropic.queue(Reply(body=anthropic_fakes.message_body("Both are at 18 C.")))
    openai.queue(Reply(body=openai_fakes.completion("Equal.")))
    [code] = python_blocks("Features", "Moving a conversation between vendors")
    run_example(code)
    assert capsys.readouterr().out == "Equal.\n"
    [_], [claude], [gpt] = (bodies(gemini, "gemini"), bodies(anthropic, "anthropic"),
                            bodies(openai, "openai"))  # fmt: skip
    # Gemini's calls had no ids: the ones the runtime made pair calls and results elsewhere.
    uses = [b for b in claude["messages"][1]["content"] if b["type"] == "tool_use"]
    results = claude["messages"][2]["content"]
    ids = [u["id"] for u in uses]
    assert len(set(ids)) == 2
    assert all(i.startswith("gcall_") for i in ids)
    assert [r["tool_use_id"] for r in results] == ids
    assert [c["id"] for c in gpt["messages"][1]["tool_calls"]] == ids
    assert [m["tool_call_id"] for m in gpt["messages"][2:4]] == ids
    assert json.loads(gpt["messages"][1]["tool_calls"][1]["function"]["arguments"]) == {
        "city": "Oslo"
    }
