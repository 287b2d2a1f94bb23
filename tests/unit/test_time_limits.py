"""Stream time limits name the limit that fired: the total, first_token or idle one."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import errors
from runtime.testing import Script, ScriptedProvider

from .helpers import catalog, runtime_for


async def _stream_error(timeouts: dict[str, Any], script: Script) -> tuple[str, list[str]]:
    rt = runtime_for(
        catalog({"m": {"provider": "s", "timeouts": timeouts, "retry": {"max_attempts": 1}}})
    )
    provider = rt.provider_for("m")
    assert isinstance(provider, ScriptedProvider)
    provider.queue(script)
    seen: list[str] = []

    async def drain() -> None:
        async for delta in rt.stream(model="m", prompt="x"):
            seen.append(delta)

    with pytest.raises(errors.ProviderTimeoutError) as info:
        await drain()
    await rt.aclose()
    return str(info.value), seen


async def test_the_total_limit_mid_stream_is_reported_as_the_total() -> None:
    # A chunk every 0.05 s: the idle limit (5 s) never fires, the total (0.2 s) does.
    message, seen = await _stream_error(
        {"total": 0.2, "idle": 5}, Script(chunks=["a"] * 1000, chunk_delay=0.05)
    )
    assert seen  # text arrived before the total ran out
    assert message == (
        "[provider 's', model 'm'] stream: the total time limit of 0.2s was exceeded "
        "(timeouts.total)"
    )


async def test_the_total_limit_before_the_first_token_is_reported_as_the_total() -> None:
    message, seen = await _stream_error(
        {"total": 0.2, "first_token": 2}, Script(chunks=["a"], delay=5)
    )
    assert seen == []
    assert "the total time limit of 0.2s was exceeded (timeouts.total)" in message
    assert "first token" not in message


async def test_the_first_token_limit_is_reported_as_itself() -> None:
    message, _ = await _stream_error(
        {"total": 30, "first_token": 0.1}, Script(chunks=["a"], delay=5)
    )
    assert message == (
        "[provider 's', model 'm'] stream: no first token within 0.1s (timeouts.first_token)"
    )


async def test_the_idle_limit_is_reported_as_itself() -> None:
    message, seen = await _stream_error(
        {"total": 30, "idle": 0.1}, Script(chunks=["a", "b"], chunk_delay=5)
    )
    assert seen == ["a"]
    assert message == "[provider 's', model 'm'] stream: no next chunk within 0.1s (timeouts.idle)"
