"""The sync face: the same calls without await, on one loop it owns, from several threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtime import errors
from runtime.sync import SyncRuntime
from runtime.testing import Script, ScriptedProvider
from tests.unit.helpers import catalog, runtime_for


def make() -> tuple[SyncRuntime, ScriptedProvider]:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    provider = rt.provider_for("m")
    assert isinstance(provider, ScriptedProvider)
    return rt.sync(), provider


def test_calls_block_and_return_what_the_async_api_returns() -> None:
    with make()[0] as rt:
        assert rt.completion("hello", "m") == "hello"
        result = rt.generate(model="m", prompt="one two")
        assert (result.text, result.model, result.finish_reason) == ("one two", "m", "stop")
        assert rt.explain(model="m", prompt="x")["model"] == "m"


def test_streaming_is_a_plain_iterator_with_the_completion_at_the_end() -> None:
    with make()[0] as rt:
        stream = rt.stream(model="m", prompt="a b c")
        assert stream.completion is None
        assert list(stream) == ["a", " b", " c"]
        assert stream.completion is not None
        assert stream.completion.text == "a b c"
        kinds = [type(e).__name__ for e in rt.stream_events(model="m", prompt="x y")]
        assert kinds == ["TextDelta", "TextDelta", "StreamEnd"]


def test_closing_a_stream_early_frees_it() -> None:
    rt, provider = make()
    with rt:
        provider.queue(Script(chunks=["a", "b", "c"], chunk_delay=0.01))
        with rt.stream(model="m", prompt="x") as stream:
            assert next(stream) == "a"
        assert list(stream) == []  # closed: nothing more comes
        assert rt.completion("after", "m") == "after"


def test_several_threads_call_at_once_on_one_loop() -> None:
    rt, provider = make()
    loops: set[int] = set()
    real_chat = provider.chat

    async def chat(request):  # type: ignore[no-untyped-def]
        loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0.01)
        return await real_chat(request)

    provider.chat = chat  # type: ignore[method-assign]
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = rt.completion(f"p{i}", "m")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    rt.close()
    assert results == {i: f"p{i}" for i in range(16)}
    assert len(loops) == 1


async def test_called_inside_a_running_loop_it_refuses_clearly() -> None:
    rt, _ = make()
    try:
        with pytest.raises(RuntimeError) as info:
            rt.completion("x", "m")
        assert "use the async API there (await rt.generate(...))" in str(info.value)
    finally:
        await asyncio.to_thread(rt.close)


def test_close_stops_the_loop_thread_and_closes_the_runtime() -> None:
    rt, _ = make()
    rt.completion("x", "m")
    thread = rt._thread
    assert thread is not None
    assert thread.is_alive()
    rt.close()
    rt.close()  # idempotent
    assert not thread.is_alive()
    assert rt.runtime.closed
    with pytest.raises(errors.RuntimeClosedError):
        rt.completion("x", "m")


def test_errors_arrive_as_themselves() -> None:
    rt, provider = make()
    with rt:
        provider.queue(errors.BadRequestError("no"))
        with pytest.raises(errors.BadRequestError) as info:
            rt.generate(model="m", prompt="x")
        assert info.value.model_id == "m"
