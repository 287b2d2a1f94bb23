"""Time limits of one attempt: the total limit, and a stream's first-token and idle limits.

Every failure of a provider's awaitable becomes one of ours here: our deadline raises
``ProviderTimeoutError`` naming the limit that fired; a ``TimeoutError`` of the provider's own
is not blamed on our limit; any foreign exception is wrapped with the key scrubbed, and one
of ours that a provider raised has the key scrubbed from its text (and its causes') too, so
no provider, however it was written, can put its key into an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

from ..config import TimeoutConfig
from ..errors import LLMRuntimeError, MalformedResponseError, ProviderError, ProviderTimeoutError
from ..providers.base import LLMProvider
from ..redact import scrub
from ..types import StreamEnd, StreamEvent, UsageUpdate

__all__ = ["Deadline", "deadline_in", "foreign_error", "guarded", "scrub_error", "timed_events"]

T = TypeVar("T")


class Deadline:
    """One timer for one attempt: when it fires, the task awaiting the provider is cancelled.

    Cheaper than an ``asyncio.timeout`` per await (one timer handle for the whole attempt,
    whatever the number of awaits under it), with its semantics: a cancellation that our
    timer caused becomes a timeout, any other one propagates.
    """

    __slots__ = ("_handle", "_task", "fired")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self.fired = False
        self._task: asyncio.Task[Any] | None = None  # the task awaiting, when one is
        self._handle = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.fired = True
        if self._task is not None:
            self._task.cancel()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``; TimeoutError (ours, ``fired`` set) when the timer fires."""
        if self.fired:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # a coroutine never awaited: close it, so nothing warns
            raise TimeoutError
        task = self._task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.fired and task is not None and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            self._task = None

    def close(self) -> None:
        self._handle.cancel()


def deadline_in(limit: float) -> Deadline:
    """A ``Deadline`` ``limit`` seconds from now (event-loop time, as asyncio.timeout's)."""
    loop = asyncio.get_running_loop()
    return Deadline(loop, loop.time() + limit)


async def guarded(
    awaitable: Awaitable[T],
    limit: float | None,
    expired: str,
    *,
    provider: LLMProvider,
    provider_name: str,
    model: str,
    deadline: Deadline | None = None,
) -> T:
    """Await a provider's ``awaitable`` within ``limit`` seconds; every failure becomes ours.

    ``expired`` is the message when our limit fires. ``deadline``: an attempt's deadline
    set already (then ``limit`` is not read). StopAsyncIteration passes through (the end of
    a stream is the caller's to judge).
    """
    own = None
    if deadline is None and limit is not None:
        deadline = own = deadline_in(limit)
    try:
        if deadline is None:
            return await awaitable
        try:
            return await deadline.wait(awaitable)
        except TimeoutError:
            if deadline.fired:
                raise ProviderTimeoutError(expired, provider=provider_name, model=model) from None
            raise
    except TimeoutError as exc:  # the provider's own client gave up
        raise ProviderTimeoutError(
            foreign_error(exc, provider_name, model, provider.api_key).message,
            provider=provider_name,
            model=model,
        ) from exc
    except StopAsyncIteration:
        raise
    except LLMRuntimeError as exc:
        scrub_error(exc, secrets_of(provider))
        raise
    except Exception as exc:
        raise foreign_error(exc, provider_name, model, provider.api_key) from exc
    finally:
        if own is not None:
            own.close()


def secrets_of(provider: LLMProvider) -> tuple[str | None, ...]:
    """The values ``provider`` must never print: its key, and a wire provider's secrets."""
    return (provider.api_key, *getattr(provider, "secrets", ()))


def scrub_error(error: BaseException, secrets: Iterable[str | None]) -> None:
    """Scrub ``secrets`` from ``error``'s text and from every exception chained under it.

    The one safety net under every provider: the wire providers scrub what they quote
    already, but a provider that raises ``ServerError(f"... {self.api_key}")`` would
    otherwise show the key in the message, the repr and the traceback.
    """
    keys = tuple(s for s in secrets if s)
    if not keys:
        return
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, LLMRuntimeError):
            text = link._text()
            clean = scrub(text, keys)
            if clean != text:
                link._set_text(clean)
        args = tuple(scrub(a, keys) if isinstance(a, str) else a for a in link.args)
        if args != link.args:  # touch only what held a secret
            link.args = args
        link = link.__cause__ or link.__context__


def _is_token(event: StreamEvent) -> bool:
    return not isinstance(event, UsageUpdate | StreamEnd)


async def timed_events(
    source: AsyncIterator[StreamEvent],
    timeouts: TimeoutConfig,
    total: float | None,
    *,
    provider: LLMProvider,
    provider_name: str,
    model: str,
    total_name: str = "timeouts.total",
) -> AsyncGenerator[StreamEvent, None]:
    """``source``'s events under the first-token, idle-gap and ``total`` time limits.

    ``total_name`` says where the total limit comes from, for the message when it fires.

    Ends after the ``StreamEnd`` event; a source that stops without one raises
    MalformedResponseError. The total limit is one timer for the whole stream; a timer per
    event is set only when a first-token or idle limit applies.
    """
    if timeouts.first_token is None and timeouts.idle is None:
        # One deadline, or none: this loop, not a generator under this one (a layer less
        # per event), and ``guarded``'s checks written out for the same reason.
        deadline = deadline_in(total) if total is not None else None
        expired = (
            f"stream: the total time limit of {total:g}s was exceeded ({total_name})"
            if total is not None
            else ""
        )
        next_event = source.__anext__
        try:
            while True:
                try:
                    if deadline is None:
                        event = await next_event()
                    else:
                        event = await deadline.wait(next_event())
                except StopAsyncIteration:
                    raise MalformedResponseError(
                        "the stream ended without a final event",
                        provider=provider_name,
                        model=model,
                    ) from None
                except TimeoutError as exc:
                    if deadline is not None and deadline.fired:
                        error = ProviderTimeoutError(expired, provider=provider_name, model=model)
                        scrub_error(error, secrets_of(provider))
                        raise error from None
                    raise ProviderTimeoutError(  # the provider's own client gave up
                        foreign_error(exc, provider_name, model, provider.api_key).message,
                        provider=provider_name,
                        model=model,
                    ) from exc
                except LLMRuntimeError as exc:
                    scrub_error(exc, secrets_of(provider))
                    raise
                except Exception as exc:
                    raise foreign_error(exc, provider_name, model, provider.api_key) from exc
                yield event
                if isinstance(event, StreamEnd):
                    return
        finally:
            if deadline is not None:
                deadline.close()
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
    loop = asyncio.get_running_loop()
    start = loop.time()  # real time: asyncio.timeout counts it too
    first = True
    try:
        while True:
            limit = timeouts.first_token if first else timeouts.idle
            what = ""
            if limit is not None:
                what = (
                    f"no first token within {limit:g}s (timeouts.first_token)"
                    if first
                    else f"no next chunk within {limit:g}s (timeouts.idle)"
                )
            if total is not None:
                left = max(0.0, total - (loop.time() - start))
                if limit is None or left <= limit:
                    limit = left
                    what = f"the total time limit of {total:g}s was exceeded ({total_name})"
            try:
                event = await guarded(
                    anext(source),
                    limit,
                    f"stream: {what}",
                    provider=provider,
                    provider_name=provider_name,
                    model=model,
                )
            except StopAsyncIteration:
                raise MalformedResponseError(
                    "the stream ended without a final event", provider=provider_name, model=model
                ) from None
            if isinstance(event, StreamEnd):
                yield event
                return
            if _is_token(event):
                first = False
            yield event
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def foreign_error(exc: Exception, provider: str, model: str, api_key: str | None) -> ProviderError:
    """Wrap an exception a provider let escape, with any key scrubbed from its text."""
    text = scrub(str(exc), (api_key,))
    # The original stays chained as __cause__ (its type and traceback help): scrub its text
    # too, or every traceback of the wrapper prints the key again.
    exc.args = tuple(scrub(a, (api_key,)) if isinstance(a, str) else a for a in exc.args)
    return ProviderError(
        f"the provider raised {type(exc).__name__}: {text}", provider=provider, model=model
    )
