"""The one place a call is observed: hooks, the usage ledger, the log line and tracing.

The call loop tells ``Observer`` what happens (an attempt starts, a retry, a fallback, the
end); the observer tells the hooks, the ledger, the ``runtime`` logger (one INFO line per
call, DEBUG details) and, when configured, OpenTelemetry. With no hook, no tracer and
logging at WARNING, the cost per call is a few attribute reads.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..hooks import HookKind, Hooks, safe_params
from ..types import ChatRequest, Completion

if TYPE_CHECKING:  # made on first use: a runtime that makes no call never imports them
    from ..ledger import UsageLedger
    from ..pricing import PriceBook

__all__ = ["CallTrace", "Observer", "Pricer"]

log = logging.getLogger("runtime")
_ids = itertools.count(1)


class Observer:
    """Hooks, ledger, logging and tracing of one runtime."""

    def __init__(self) -> None:
        self.hooks = Hooks()
        self._ledger: UsageLedger | None = None
        self._prices: PriceBook | None = None
        self.tracer: Any = None  # runtime.tracing.Tracer, when OpenTelemetry is set up

    @property
    def ledger(self) -> UsageLedger:
        """The usage totals (made on first use)."""
        if self._ledger is None:
            from ..ledger import UsageLedger

            self._ledger = UsageLedger()
        return self._ledger

    @property
    def prices(self) -> PriceBook:
        """The rate cards (made on first use)."""
        if self._prices is None:
            from ..pricing import PriceBook

            self._prices = PriceBook()
        return self._prices

    def start(self, model: str, provider: str, *, stream: bool) -> CallTrace:
        return CallTrace(self, next(_ids), model, provider, stream)


class Pricer:
    """Prices one call from its usage, when its cost is first read (never during the call)."""

    __slots__ = ("base_url", "book", "model_ref", "pricing", "usage")

    def __init__(
        self, book: PriceBook, pricing: Any, model_ref: str, base_url: str | None, usage: Any
    ) -> None:
        self.book = book
        self.pricing = pricing
        self.model_ref = model_ref
        self.base_url = base_url
        self.usage = usage

    def __call__(self) -> Any:
        from ..pricing import cost_of

        card = self.book.card(self.pricing, self.model_ref, self.base_url, block=True)
        return cost_of(card, self.usage)


class CallTrace:
    """What one call has done so far, for the observer."""

    __slots__ = ("call_id", "model", "observer", "provider", "span", "stream")

    def __init__(
        self, observer: Observer, call_id: int, model: str, provider: str, stream: bool
    ) -> None:
        self.observer = observer
        self.call_id = call_id
        self.model = model
        self.provider = provider
        self.stream = stream
        tracer = observer.tracer
        self.span = tracer.start(model, provider, stream) if tracer is not None else None

    def attempt(
        self,
        model: str,
        provider: str,
        request: ChatRequest,
        attempt: int,
        secrets: tuple[str | None, ...] = (),
        instance: Any = None,
    ) -> None:
        hooks = self.observer.hooks
        if self.span is not None:
            self.span.request(model, provider, request, instance)
        if hooks.wants("request"):
            from ..hook_events import RequestEvent

            hooks.emit(
                RequestEvent(
                    self.call_id,
                    model,
                    provider,
                    request.model,
                    attempt,
                    self.stream,
                    safe_params(
                        {
                            **request.params,
                            "temperature": request.temperature,
                            "max_tokens": request.max_tokens,
                        },
                        secrets,
                    ),
                )
            )

    def retry(self, model: str, attempt: int, delay: float, error: Exception) -> None:
        if self.span is not None:
            self.span.event("retry", model=model, attempt=attempt, delay=delay, error=error)
        if self.observer.hooks.wants("retry"):
            from ..hook_events import RetryEvent

            self.observer.hooks.emit(RetryEvent(self.call_id, model, attempt, delay, error))

    def first_chunk(self) -> None:
        """The first piece of a streamed answer arrived."""
        if self.span is not None:
            self.span.first_chunk()

    def fallback(self, failed: str, nxt: str, error: Exception) -> None:
        if self.span is not None:
            self.span.event("fallback", model=failed, next=nxt, error=error)
        if self.observer.hooks.wants("fallback"):
            from ..hook_events import FallbackEvent

            self.observer.hooks.emit(FallbackEvent(self.call_id, failed, nxt, error))

    def pricer(self, pricing: Any, model_ref: str, base_url: str | None, usage: Any) -> Pricer:
        """What prices the call when its cost is first read (a ``Completion.pricer``)."""
        return Pricer(self.observer.prices, pricing, model_ref, base_url, usage)

    def succeeded(
        self, completion: Completion, *, pricing: Any = None, base_url: str | None = None
    ) -> Completion:
        """Price lazily, record, tell everyone; returns the completion to give the caller.

        A completion made with a ``Pricer`` (``pricer()``) is given as it is; otherwise one
        is made from ``pricing`` and ``base_url``.
        """
        price = completion.pricer
        if not isinstance(price, Pricer):
            model_ref = completion.provider_model or completion.model
            price = self.pricer(pricing, model_ref, base_url, completion.usage)
            completion = replace(completion, pricer=price)
        card = price.book.card(price.pricing, price.model_ref, price.base_url)
        cost = self.observer.ledger.record(completion, card)
        if self.span is not None:
            self.span.end(completion)
        hooks = self.observer.hooks
        kind: HookKind = "stream_end" if self.stream else "response"
        if hooks.wants(kind):
            from ..hook_events import ResponseEvent, StreamEndEvent

            event = StreamEndEvent if self.stream else ResponseEvent
            hooks.emit(event(self.call_id, completion))
        if log.isEnabledFor(logging.INFO):
            u = completion.usage
            log.info(
                "call %s model=%r provider=%r latency=%.3fs tokens=%s+%s attempts=%d cost=%s%s",
                "stream" if self.stream else "generate",
                completion.model,
                completion.provider,
                completion.latency,
                u.prompt_tokens if u.prompt_tokens is not None else "?",
                u.completion_tokens if u.completion_tokens is not None else "?",
                completion.attempts,
                "?" if cost is None else f"{cost.amount:.6f}{cost.currency}",
                f" fallback_from={[m for m, _ in completion.failures]!r}"
                if completion.failures
                else "",
            )
        return completion

    def stopped(self, reason: BaseException) -> None:
        """The call ended with neither a result nor one of our errors: a stream the caller
        closed early, a cancellation, or a foreign exception. Only the span is told."""
        if self.span is not None:
            self.span.stop(reason)

    def failed(self, error: Exception, latency: float) -> None:
        self.observer.ledger.record_error(self.model)
        if self.span is not None:
            self.span.fail(error, latency)
        hooks = self.observer.hooks
        if hooks.wants("error"):
            from ..hook_events import ErrorEvent

            hooks.emit(ErrorEvent(self.call_id, self.model, error, latency, self.stream))
        log.info(
            "call %s model=%r failed: %s after %.3fs",
            "stream" if self.stream else "generate",
            self.model,
            type(error).__name__,
            latency,
        )
