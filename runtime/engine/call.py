"""The one call loop: candidates -> attempts -> events, for ``generate`` and ``stream`` alike.

``Call.events()`` walks the fallback chain; for each model it makes attempts until one
succeeds or ``decide_retry`` gives up, then asks ``decide_fallback`` about the next model.
Streaming, every event is forwarded as it arrives and "output already delivered" is a
property of the loop: once the caller has seen a delta, nothing is retried or sent again.
Not streaming, the provider's reply is taken whole. Either way the attempt's result becomes
``Call.completion``; when every model failed, the first model's error is raised with every
other failure attached (``LLMRuntimeError.failures``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..config import ModelConfig, TemplateConfig
from ..errors import (
    CapabilityError,
    InvalidRequestError,
    LLMRuntimeError,
    ProviderError,
    ToolArgumentsError,
)
from ..prompts import render_template
from ..providers.base import LLMProvider
from ..request import PolicyNote, compose_request
from ..types import (
    Accumulator,
    ChatRequest,
    Completion,
    Message,
    ProviderResponse,
    StreamEnd,
    StreamEvent,
    UsageUpdate,
)
from ..types import ToolArgumentsError as _RawToolArgumentsError
from .deadlines import guarded, timed_events
from .observe import CallTrace, Observer
from .resolve import Instances, ModelPlan, Snapshot

if TYPE_CHECKING:
    from .retry import Next

__all__ = ["RUNTIME_OWNED", "Call", "CallArgs"]

log = logging.getLogger("runtime")

#: Keyword arguments the runtime takes for itself, never sent to a vendor.
RUNTIME_OWNED = frozenset({"timeout", "api_key", "base_url"})


@dataclass(frozen=True, slots=True)
class CallArgs:
    """The arguments of one call, as the caller gave them (runtime-owned ones split off)."""

    prompt: str | None = None
    messages: Iterable[Message | Mapping[str, Any]] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None  # a total limit for each attempt of this call
    api_key: str | None = field(default=None, repr=False)  # a key for this call only

    @classmethod
    def split(
        cls,
        prompt: str | None,
        messages: Iterable[Message | Mapping[str, Any]] | None,
        temperature: float | None,
        max_tokens: int | None,
        kwargs: Mapping[str, Any],
        templates: Mapping[str, TemplateConfig] | None = None,
    ) -> CallArgs:
        """Take ``timeout``, ``api_key``, ``template`` and ``variables`` out of the keyword
        arguments (a named template becomes the messages); refuse ``base_url``."""
        if not kwargs:  # the common call: nothing to take out
            if (
                messages is not None  # (a prompt call: no ABC check of None)
                and not isinstance(messages, list | tuple)
                and isinstance(messages, Iterable)
            ):
                messages = list(messages)  # read once: every attempt and fallback reads it
            return cls(prompt, messages, temperature, max_tokens, _NO_PARAMS)
        params = dict(kwargs)
        template = params.pop("template", None)
        variables = params.pop("variables", None)
        if template is not None or variables is not None:
            messages = _from_template(template, variables, prompt, messages, templates or {})
            prompt = None
        if "base_url" in params:
            raise InvalidRequestError(
                "base_url cannot be given per call: set base_url (or base_url_env) for the "
                "provider in providers.yaml"
            )
        timeout = params.pop("timeout", None)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            raise InvalidRequestError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        api_key = params.pop("api_key", None)
        if api_key is not None and not isinstance(api_key, str):
            raise InvalidRequestError("api_key must be a string")
        if isinstance(messages, Iterable) and not isinstance(messages, list | tuple):
            messages = list(messages)  # read once: every attempt and fallback reads it again
        return cls(
            prompt,
            messages,
            temperature,
            max_tokens,
            params,
            float(timeout) if timeout is not None else None,
            api_key or None,
        )

    def request_for(
        self, model: ModelConfig, plan: ModelPlan | None = None
    ) -> tuple[ChatRequest, tuple[PolicyNote, ...]]:
        """The request ``model`` receives for these arguments; with its ``plan``, the
        request carries the plan's connect and read timeouts too."""
        if plan is None:
            return compose_request(
                model, self.prompt, self.messages, self.temperature, self.max_tokens, self.params
            )
        return compose_request(
            model,
            self.prompt,
            self.messages,
            self.temperature,
            self.max_tokens,
            self.params,
            capabilities=plan.capabilities,
            connect_timeout=plan.timeouts.connect,
            read_timeout=plan.timeouts.read,
        )


#: The parameters of a call that passed no keyword arguments (shared, never changed).
_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


def _from_template(
    name: Any,
    variables: Any,
    prompt: str | None,
    messages: Any,
    templates: Mapping[str, TemplateConfig],
) -> tuple[Message, ...]:
    if not isinstance(name, str):
        raise InvalidRequestError("variables= goes with template=, the name of a template")
    if prompt is not None or messages is not None:
        raise InvalidRequestError("give template= or prompt= / messages=, not both")
    if variables is not None and not isinstance(variables, Mapping):
        raise InvalidRequestError("variables must be a mapping of variable name to value")
    template = templates.get(name)
    if template is None:
        from ..suggest import did_you_mean

        hint = did_you_mean(name, templates)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise InvalidRequestError(
            f"unknown template {name!r}{extra}; templates are declared under templates: in "
            "models.yaml"
        )
    return render_template(template, variables or {})


def _tag(error: ProviderError, plan: ModelPlan, attempts: int) -> None:
    # The one place errors are completed after construction: the provider does not know
    # the catalog's names, the runtime does.
    if error.provider is None:
        error.provider = plan.provider.name
    if error.model is None:
        error.model = plan.model.provider_model
    error.model_id = plan.model.id
    error.attempts = attempts


class Call:
    """One call through the fallback chain of ``primary``; ``events()`` runs it.

    ``first`` is the primary's request, built already at the call site (with ``first_plan``,
    the plan it was built with, whose timeouts it carries).
    """

    def __init__(
        self,
        snapshot: Snapshot,
        instances: Instances,
        primary: ModelConfig,
        args: CallArgs,
        *,
        stream: bool,
        first: ChatRequest | None = None,
        observer: Observer | None = None,
        first_plan: ModelPlan | None = None,
    ) -> None:
        self.snapshot = snapshot
        self._first = first
        self._first_plan = first_plan
        self.instances = instances
        self.primary = primary
        self.args = args
        self.stream = stream
        self.observer = observer or Observer()
        self.completion: Completion | None = None
        self.delivered = False  # a delta reached the caller: no retry, no fallback
        self._failures: list[tuple[ModelConfig, LLMRuntimeError]] = []
        self._attempts = 0
        self._waited = 0.0  # total_wait_budget spans the fallbacks of one call
        self._started = 0.0

    async def result(self) -> Completion:
        """Run the call to its end and return the completion (nothing is forwarded)."""
        async for _ in self.events():
            pass
        assert self.completion is not None
        return self.completion

    async def events(self) -> AsyncGenerator[StreamEvent, None]:
        """The loop: candidates -> attempts; yields the answering attempt's events (streams)."""
        self._started = self.snapshot.timing.clock()
        trace = self.observer.start(self.primary.id, self.primary.provider, stream=self.stream)
        try:
            primary = self.primary
            candidates = self.snapshot.candidates(primary) if primary.fallbacks else (primary,)
            for model in candidates:
                if self._failures:
                    from .retry import Next  # (a failure's business: imported on one)

                    decision = self._falls_back_to(model, trace)
                    if decision is Next.STOP:
                        break
                    if decision is Next.SKIP:
                        continue
                ready = self._prepare(model)
                if ready is None:
                    continue
                # The provider is held for all attempts: a reload does not close it under them.
                provider = ready[2]
                self.instances.hold(provider)
                try:
                    async for event in self._retrying(*ready, trace):
                        yield event
                finally:
                    self.instances.release(provider)
                if self.completion is not None:
                    return
                if self.delivered:
                    break
            error = _chain_error(self._failures, delivered=self.delivered)
        except LLMRuntimeError as raised:
            error = raised
        except BaseException as stopped:  # a stream closed early, a cancellation, a bug
            trace.stopped(stopped)
            raise
        trace.failed(error, self.snapshot.timing.clock() - self._started)
        raise error

    def _falls_back_to(self, model: ModelConfig, trace: CallTrace) -> Next:
        from .retry import Next, decide_fallback  # a failure's business: imported on one

        failed, error = self._failures[-1]
        decision = decide_fallback(error, failed, model, delivered=self.delivered)
        if decision is Next.TRY:
            log.warning(
                "model %r failed (%s); falling back to %r",
                failed.id,
                type(error).__name__,
                model.id,
            )
            trace.fallback(failed.id, model.id, error)
        return decision

    def _prepare(self, model: ModelConfig) -> tuple[ModelPlan, ChatRequest, LLMProvider] | None:
        """The plan, request and provider for ``model``; None when it cannot be tried."""
        try:
            plan = self.snapshot.plan(model)
            if model is self.primary and self._first is not None:
                request = self._first
                if self._first_plan is not plan:  # built without its plan: add the timeouts
                    timeouts = plan.timeouts
                    request = replace(
                        request, connect_timeout=timeouts.connect, read_timeout=timeouts.read
                    )
            else:
                request, _ = self.args.request_for(model, plan)
            provider = self.instances.get(self.snapshot, plan, self.args.api_key)
            check_support(provider, request, model)
        except CapabilityError as error:
            if model is self.primary:
                raise
            log.info("fallback %r skipped: %s", model.id, error)  # it cannot do this call
            return None
        except LLMRuntimeError as error:
            self._failures.append((model, error))
            return None
        return plan, request, provider

    async def _retrying(
        self, plan: ModelPlan, request: ChatRequest, provider: LLMProvider, trace: CallTrace
    ) -> AsyncGenerator[StreamEvent, None]:
        """Attempts on one model until one succeeds or ``decide_retry`` gives up."""
        timing = self.snapshot.timing
        own_limit = self.args.timeout is not None
        total = self.args.timeout if own_limit else plan.timeouts.total
        self._total_name = "timeout= of this call" if own_limit else "timeouts.total"
        attempt = 0
        while True:
            attempt += 1
            self._attempts += 1
            trace.attempt(
                plan.model.id, plan.provider.name, request, attempt, (provider.api_key,), provider
            )
            try:
                async with _slots(plan):
                    if self.stream:
                        async for event in self._streamed(plan, provider, request, total, trace):
                            yield event
                    else:
                        self._response = await self._chat(plan, provider, request, total)
            except ProviderError as error:
                from .retry import GiveUp, decide_retry  # a failure's business

                _tag(error, plan, attempt)
                verdict = decide_retry(
                    plan.retry,
                    attempt,
                    error,
                    self._waited,
                    delivered=self.delivered,
                    rand=timing.rand,
                )
                if isinstance(verdict, GiveUp):
                    self._failures.append((plan.model, error))
                    log.debug(
                        "model %r: not retrying %s: %s",
                        plan.model.id,
                        type(error).__name__,
                        verdict.why,
                    )
                    return
                log.info(
                    "model %r attempt %d failed (%s); retrying in %.2fs",
                    plan.model.id,
                    attempt,
                    type(error).__name__,
                    verdict.delay,
                )
                trace.retry(plan.model.id, attempt, verdict.delay, error)
                await timing.sleep(verdict.delay)
                self._waited += verdict.delay
                continue
            assert self._response is not None
            self.completion = trace.succeeded(
                _completion(
                    self._response,
                    plan,
                    request,
                    timing.clock() - self._started,
                    self._attempts,
                    self._failures,
                    trace.pricer(
                        plan.model.pricing,
                        self._response.model or plan.model.id,
                        provider.base_url,
                        self._response.usage,
                    ),
                )
            )
            return

    _response: ProviderResponse | None = None
    _total_name = "timeouts.total"

    async def _chat(
        self, plan: ModelPlan, provider: LLMProvider, request: ChatRequest, total: float | None
    ) -> ProviderResponse:
        """One non-streamed attempt: the provider's whole reply."""
        response = await guarded(
            provider.chat(request),
            total,
            f"no reply within the total time limit of {total:g}s ({self._total_name})"
            if total
            else "",
            provider=provider,
            provider_name=plan.provider.name,
            model=plan.model.id,
        )
        if not isinstance(response, ProviderResponse):
            raise ProviderError(
                f"chat() returned {type(response).__name__}, not ProviderResponse",
                provider=plan.provider.name,
                model=plan.model.id,
            )
        return response

    async def _streamed(
        self,
        plan: ModelPlan,
        provider: LLMProvider,
        request: ChatRequest,
        total: float | None,
        trace: CallTrace,
    ) -> AsyncGenerator[StreamEvent, None]:
        source = (
            provider.stream_chat(request)
            if plan.model.supports_streaming
            else LLMProvider.stream_chat(provider, request)
        )
        # Reasoning is stamped with the protocol that made it, as on the non-streamed path:
        # its signatures go back only to that protocol.
        accumulator = Accumulator(getattr(type(provider), "protocol", None))
        events = timed_events(
            source,
            plan.timeouts,
            total,
            provider=provider,
            provider_name=plan.provider.name,
            model=plan.model.id,
            total_name=self._total_name,
        )
        try:
            async for event in events:
                accumulator.add(event)
                if not isinstance(event, StreamEnd | UsageUpdate):
                    if not self.delivered:
                        trace.first_chunk()
                    self.delivered = True
                yield event
        finally:
            await events.aclose()
        try:
            self._response = accumulator.response()
        except _RawToolArgumentsError as exc:
            raise _arguments_error(exc, plan) from None


_NO_SLOTS: AbstractAsyncContextManager[None] = nullcontext()  # stateless: one for all calls


def _slots(plan: ModelPlan) -> AbstractAsyncContextManager[None]:
    """The model's limiter slots, or nothing at all when it has no limits."""
    if not plan.limiters:
        return _NO_SLOTS
    from .limits import hold_slots  # only models with limits need it

    return hold_slots(plan.limiters)


def _wanted(request: ChatRequest) -> list[tuple[str, str]]:
    """(feature, call argument) of what ``request`` asks beyond messages."""
    out = []
    if request.tools:
        out.append(("tools", "tools"))
    if request.response_format is not None:
        out.append(("structured_output", "response_format"))
    if request.reasoning is not None:
        out.append(("reasoning", "reasoning"))
    return out


def check_support(provider: LLMProvider, request: ChatRequest, model: ModelConfig) -> None:
    """Refuse, before any request, what the provider class cannot send (CapabilityError)."""
    cls = type(provider)
    for feature, argument in _wanted(request):
        if feature not in cls.features:
            raise CapabilityError(
                f"model {model.id!r}: its provider class {cls.__name__} cannot send {argument}",
                capability=feature,
                model=model.id,
            )
    for index, message in enumerate(request.messages):
        for part in message.parts:
            if part.type not in cls.content_kinds:
                raise CapabilityError(
                    f"messages[{index}]: model {model.id!r} (provider class "
                    f"{cls.__name__}) cannot take {part.type} content",
                    capability="images" if part.type == "image" else part.type,
                    model=model.id,
                )


def _arguments_error(exc: _RawToolArgumentsError, plan: ModelPlan) -> ToolArgumentsError:
    return ToolArgumentsError(
        str(exc),
        raw_arguments=exc.raw,
        tool_name=exc.name,
        provider=plan.provider.name,
        model=plan.model.provider_model,
    )


def _completion(
    response: ProviderResponse,
    plan: ModelPlan,
    request: ChatRequest,
    latency: float,
    attempts: int,
    failures: list[tuple[ModelConfig, LLMRuntimeError]],
    pricer: Callable[[], Any] | None = None,
) -> Completion:
    parsed = None
    if request.response_format is not None:
        from .output import parse_output  # only calls with a response_format need it

        parsed = parse_output(response.text, request.response_format, plan.model.id)
    return Completion(
        text=response.text,
        finish_reason=response.finish_reason,
        usage=response.usage,
        model=plan.model.id,
        provider=plan.provider.name,
        latency=latency,
        attempts=attempts,
        provider_model=response.model,
        parts=response.parts,
        failures=tuple((m.id, e) for m, e in failures),
        parsed=parsed,
        response_id=response.id,
        pricer=pricer,
    )


def _chain_error(
    failures: list[tuple[ModelConfig, LLMRuntimeError]], *, delivered: bool
) -> LLMRuntimeError:
    """The error a failed chain raises: the first model's, naming every later failure.

    When output was already delivered, the error that cut the stream is raised (it is what
    the caller saw), with the earlier failures attached.
    """
    assert failures
    if len(failures) == 1:
        return failures[0][1]
    if delivered:
        last = failures[-1][1]
        return last.with_failures([(m.id, e) for m, e in failures[:-1]])
    first = failures[0][1]
    return first.with_failures([(m.id, e) for m, e in failures[1:]])
