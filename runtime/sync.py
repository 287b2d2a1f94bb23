"""The sync face: the runtime's API without ``await``, for scripts and plain functions.

``load_runtime(...).sync()`` (or ``runtime.sync.load_runtime(...)``) returns a
``SyncRuntime``: every call runs on one background event loop that it owns, in a daemon
thread, and blocks the calling thread until the result is there. Several threads may call
it at once (their calls run concurrently on that loop). ``close()`` (or ``with``) closes the
runtime's clients, then stops the loop and joins its thread. Streaming is a plain iterator.

Called from a thread that is running an event loop (async code, a notebook cell), it refuses
with a clear error instead of blocking that loop: use the async API there.

Nothing here is a second copy of the logic: each method submits the async runtime's own
coroutine to the loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import RuntimeClosedError

if TYPE_CHECKING:
    from .config import ModelConfig
    from .service import LLMRuntime
    from .streams import _CallStream
    from .types import Completion, StreamEvent

__all__ = ["SyncRuntime", "SyncStream", "load_runtime"]

T = TypeVar("T")


class SyncRuntime:
    """``LLMRuntime`` without await; see the module docstring."""

    def __init__(self, runtime: LLMRuntime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ the loop

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeClosedError("this SyncRuntime was closed; create a new one")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="llm-runtime-sync", daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                "SyncRuntime was called from inside a running event loop (async code or a "
                "notebook cell): blocking here would stall that loop; use the async API there "
                "(await rt.generate(...))"
            )
        try:
            loop = self._ensure_loop()
        except BaseException:
            coro.close()
            raise
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncRuntime cannot be called from its own event loop thread")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result()

    # ------------------------------------------------------------------ the API

    @property
    def runtime(self) -> LLMRuntime:
        """The async runtime underneath (use it only through this object's loop)."""
        return self._runtime

    @property
    def models(self) -> Mapping[str, ModelConfig]:
        return self._runtime.models

    def model(self, model_id: str) -> ModelConfig:
        return self._runtime.model(model_id)

    def completion(
        self,
        prompt: str,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> str:
        """``LLMRuntime.completion``, blocking."""
        return self._run(self._runtime.completion(prompt, model, temperature, max_tokens, **kwargs))

    def generate(self, **kwargs: Any) -> Completion:
        """``LLMRuntime.generate``, blocking."""
        return self._run(self._runtime.generate(**kwargs))

    def explain(self, **kwargs: Any) -> dict[str, Any]:
        """``LLMRuntime.explain``, blocking."""
        return self._run(self._runtime.explain(**kwargs))

    def stream(self, **kwargs: Any) -> SyncStream[str]:
        """``LLMRuntime.stream`` as a plain iterator of text deltas."""
        return SyncStream(self, lambda: self._runtime.stream(**kwargs))

    def stream_events(self, **kwargs: Any) -> SyncStream[StreamEvent]:
        """``LLMRuntime.stream_events`` as a plain iterator of typed events."""
        return SyncStream(self, lambda: self._runtime.stream_events(**kwargs))

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the runtime's clients, stop the loop, join its thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if threading.current_thread() is not thread:
                asyncio.run_coroutine_threadsafe(self._runtime.aclose(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def __enter__(self) -> SyncRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncRuntime over {self._runtime!r}>"


class SyncStream(Iterator[T]):
    """A streamed call as a plain iterator; ``completion`` once it has ended, ``close()``."""

    def __init__(self, owner: SyncRuntime, start: Any) -> None:
        self._owner = owner
        self._start = start
        self._stream: _CallStream | None = None
        self._done = False

    def __iter__(self) -> SyncStream[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        if self._stream is None:
            self._stream = self._owner._run(_make(self._start))
        try:
            return self._owner._run(_next(self._stream))  # type: ignore[no-any-return]
        except StopAsyncIteration:
            self._done = True
            raise StopIteration from None

    @property
    def completion(self) -> Completion | None:
        return self._stream.completion if self._stream is not None else None

    def close(self) -> None:
        """Stop the stream and free its connection (also on ``with`` exit)."""
        if self._stream is not None and not self._done:
            self._done = True
            self._owner._run(self._stream.aclose())

    def __enter__(self) -> SyncStream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _make(start: Any) -> Any:
    return start()  # created on the loop: the stream's generator belongs to it


async def _next(stream: Any) -> Any:
    return await stream.__anext__()


def load_runtime(
    providers: str | os.PathLike[str] | None = None,
    models: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> SyncRuntime:
    """``runtime.load_runtime(...)`` wrapped in a ``SyncRuntime``."""
    from . import load_runtime as load

    return SyncRuntime(load(providers, models, **kwargs))
