"""``LLMRuntime``: model id -> provider -> call, with defaults, policy, retries and fallbacks."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from .config import (
    Catalog,
    HTTPConfig,
    ModelConfig,
    ProviderConfig,
    RetryConfig,
    TimeoutConfig,
)
from .errors import (
    ConfigError,
    ContextLengthExceededError,
    LLMRuntimeError,
    MissingAPIKeyError,
    ProviderError,
    RateLimitError,
    RuntimeClosedError,
    UnknownModelError,
    UnknownProviderError,
)
from .policy import (
    Limiter,
    backoff_delay,
    guarded,
    hold_slots,
    merge_layers,
    timed_events,
    with_timeouts,
)
from .providers.base import LLMProvider
from .providers.registry import ProviderImportError, import_provider_class, registered_providers
from .redact import redact, scrub
from .request import build_request
from .suggest import did_you_mean
from .types import (
    ChatRequest,
    Completion,
    Message,
    ProviderResponse,
    StreamEnd,
)

__all__ = ["CompletionStream", "LLMRuntime"]

log = logging.getLogger("runtime")

#: What an API key may hold to travel in an HTTP header: visible ASCII, no spaces.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


Sleep = Callable[[float], Awaitable[None]]


class CompletionStream:
    """An async iterator of text deltas; after it ends, ``completion`` holds the whole result.

    ``async for delta in rt.stream(...)`` yields ``str`` pieces as they arrive. When the
    iteration ends normally, ``completion`` (text, finish reason, usage, model, attempts) is
    set. To leave the loop early and free the connection and the limiter slot at once, use
    ``async with rt.stream(...) as stream:`` or call ``await stream.aclose()``; otherwise
    they are freed when the stream object is garbage-collected.
    """

    def __init__(self, source: AsyncGenerator[str, None], holder: list[Completion]) -> None:
        self._source = source
        self._holder = holder

    def __aiter__(self) -> CompletionStream:
        return self

    async def __anext__(self) -> str:
        return await self._source.__anext__()

    async def aclose(self) -> None:
        """Stop the stream and release its connection."""
        await self._source.aclose()

    async def __aenter__(self) -> CompletionStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def completion(self) -> Completion | None:
        """The whole result, once the stream has ended normally."""
        return self._holder[0] if self._holder else None


class LLMRuntime:
    """The runtime service: resolves model ids from the catalog and calls their providers."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.catalog = catalog
        self._environ = environ
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._classes: dict[str, type[LLMProvider]] = {}
        self._instances: dict[tuple[str, str | None, str | None], LLMProvider] = {}
        self._limiters: dict[str, Limiter] = {}
        self._merged: dict[tuple[str, str], tuple[RetryConfig, TimeoutConfig]] = {}
        self._closed = False

    # ------------------------------------------------------------------ lookup

    @property
    def models(self) -> Mapping[str, ModelConfig]:
        return self.catalog.models

    @property
    def providers(self) -> Mapping[str, ProviderConfig]:
        return self.catalog.providers

    def model(self, model_id: str) -> ModelConfig:
        """The ModelConfig of ``model_id``; raises UnknownModelError with a suggestion."""
        try:
            return self.catalog.models[model_id]
        except (KeyError, TypeError):
            raise UnknownModelError(
                str(model_id), did_you_mean(str(model_id), self.catalog.models)
            ) from None

    def _env(self, name: str) -> str | None:
        env = os.environ if self._environ is None else self._environ
        value = env.get(name)
        return value if value else None

    def _provider_config(self, model: ModelConfig) -> ProviderConfig:
        config = self.catalog.providers.get(model.provider)
        if config is not None:
            return config
        if model.provider in registered_providers():
            return ProviderConfig.model_validate(
                {"name": model.provider, "class": "runtime.registered.Provider"}
            )
        raise UnknownProviderError(
            model.provider, did_you_mean(model.provider, self.catalog.providers)
        )

    def _provider_class(self, config: ProviderConfig) -> type[LLMProvider]:
        registered = registered_providers().get(config.name)
        if registered is not None:
            return registered
        cls = self._classes.get(config.name)
        if cls is None:
            try:
                cls = import_provider_class(config.class_path)
            except ProviderImportError as exc:
                raise ConfigError(
                    f"provider {config.name!r}: class {config.class_path!r}: {exc}"
                ) from exc
            self._classes[config.name] = cls
        return cls

    def _credentials(
        self, model: ModelConfig, config: ProviderConfig
    ) -> tuple[str | None, str | None]:
        key_env = model.requires_api_key_env or config.api_key_env
        api_key = None
        if key_env:
            api_key = self._api_key(key_env)
            if api_key is None:
                raise MissingAPIKeyError(key_env, provider=config.name, model=model.id)
            if not _HEADER_SAFE.fullmatch(api_key):
                # Never echo the value: it is the key, or most of it.
                raise ConfigError(
                    f"the environment variable {key_env} (the API key of provider "
                    f"{config.name!r}) holds spaces, control or non-ASCII characters that no "
                    "HTTP header can carry; set it to the key alone"
                )
        return api_key, self._base_url(model, config)

    def _api_key(self, env_var: str) -> str | None:
        # Surrounding whitespace is never part of a key: a CRLF .env file leaves a "\r".
        value = self._env(env_var)
        return (value.strip() or None) if value else None

    def _construct(
        self,
        cls: type[LLMProvider],
        config: ProviderConfig,
        api_key: str | None,
        base_url: str | None,
    ) -> LLMProvider:
        """``cls(api_key, base_url, **options)``; a foreign failure becomes a ConfigError."""
        try:
            instance = cls(api_key=api_key, base_url=base_url, **config.options)
        except LLMRuntimeError:
            raise
        except Exception as exc:
            text = scrub(str(exc), (api_key,))
            raise ConfigError(
                f"provider {config.name!r}: {cls.__name__}(**options) failed: "
                f"{type(exc).__name__}: {text}"
            ) from None
        instance.provider_name = config.name
        instance.configure_http(merge_layers(HTTPConfig, self.catalog.settings.http, config.http))
        return instance

    def _base_url(self, model: ModelConfig, config: ProviderConfig) -> str | None:
        """The model's base_url_env, else the provider's base_url_env, else its base_url."""
        return (
            (self._env(model.base_url_env) if model.base_url_env else None)
            or (self._env(config.base_url_env) if config.base_url_env else None)
            or config.base_url
        )

    def provider_for(self, model: ModelConfig | str) -> LLMProvider:
        """The provider instance serving ``model``: one per (provider, credentials), reused."""
        self._check_open()
        cfg = self.model(model) if isinstance(model, str) else model
        config = self._provider_config(cfg)
        api_key, base_url = self._credentials(cfg, config)
        key = (config.name, api_key, base_url)
        instance = self._instances.get(key)
        if instance is None:
            instance = self._construct(self._provider_class(config), config, api_key, base_url)
            self._instances[key] = instance
        return instance

    # ------------------------------------------------------------------ requests

    def build_request(
        self,
        model: ModelConfig | str,
        *,
        prompt: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> ChatRequest:
        """Merge (call kwargs > extra_params > model defaults) and apply the parameter policy."""
        cfg = self.model(model) if isinstance(model, str) else model
        return build_request(
            cfg,
            prompt=prompt,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            **kwargs,
        )

    # ------------------------------------------------------------------ policies

    def _retry(self, model: ModelConfig, config: ProviderConfig) -> RetryConfig:
        return self._policies(model, config)[0]

    def _timeouts(self, model: ModelConfig, config: ProviderConfig) -> TimeoutConfig:
        return self._policies(model, config)[1]

    def _policies(
        self, model: ModelConfig, config: ProviderConfig
    ) -> tuple[RetryConfig, TimeoutConfig]:
        """The model's merged retry and time limits; the catalog is frozen, so merged once."""
        key = (model.id, config.name)
        merged = self._merged.get(key)
        if merged is None:
            settings = self.catalog.settings
            merged = self._merged[key] = (
                merge_layers(RetryConfig, settings.retry, config.retry, model.retry),
                merge_layers(TimeoutConfig, settings.timeouts, config.timeouts, model.timeouts),
            )
        return merged

    def _limiters_for(self, model: ModelConfig, config: ProviderConfig) -> list[Limiter]:
        out = []
        for key, limits in (
            (f"provider:{config.name}", config.limits),
            (f"model:{model.id}", model.limits),
        ):
            if limits is None:
                continue
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = Limiter(
                    limits, clock=self._clock, sleep=self._sleep
                )
            out.append(limiter)
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("this LLMRuntime was closed with aclose(); create a new one")

    def _candidates(self, model: ModelConfig) -> list[ModelConfig]:
        return [model, *(self.model(m) for m in model.fallbacks)]

    @staticmethod
    def _fall_back_to(error: LLMRuntimeError, failed: ModelConfig, nxt: ModelConfig) -> bool:
        """Whether ``nxt`` may answer after ``failed`` raised ``error``; else re-raise ``error``.

        Retryable failures that survived their retries, rate limits (an exhausted quota too)
        and a missing API key fall back to the next model; a context-length error skips to
        the next model with a larger ``context_window``; any other error is raised at once.
        """
        if isinstance(error, ContextLengthExceededError):
            return (nxt.context_window or 0) > (failed.context_window or 0)
        if getattr(error, "_delivered", False):
            raise error
        # A rate limit falls back even when not worth retrying (an exhausted quota): another
        # model may well have quota left.
        if (isinstance(error, ProviderError) and error.retryable) or isinstance(
            error, MissingAPIKeyError | RateLimitError
        ):
            log.warning(
                "model %r failed (%s); falling back to %r", failed.id, type(error).__name__, nxt.id
            )
            return True
        raise error

    # ------------------------------------------------------------------ calls

    async def completion(
        self,
        prompt: str,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> str:
        """The seed's service call: the completion of ``prompt`` by ``model``, as text."""
        result = await self.generate(
            model=model, prompt=prompt, temperature=temperature, max_tokens=max_tokens, **kwargs
        )
        return result.text

    async def generate(
        self,
        *,
        model: str,
        prompt: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> Completion:
        """One call with retries and fallbacks; returns text, finish reason, usage and more."""
        self._check_open()
        primary = self.model(model)
        started = self._clock()
        attempts = 0
        waited = [0.0]  # seconds slept so far: total_wait_budget spans the fallbacks too
        failed: tuple[LLMRuntimeError, ModelConfig] | None = None
        for cfg in self._candidates(primary):
            if failed is not None and not self._fall_back_to(*failed, cfg):
                continue
            try:
                request = self.build_request(
                    cfg,
                    prompt=prompt,
                    messages=messages,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    **kwargs,
                )
                config = self._provider_config(cfg)
                provider = self.provider_for(cfg)
                response, used = await self._call_with_retries(
                    cfg, config, provider, request, waited
                )
                attempts += used
            except LLMRuntimeError as error:
                attempts += error.attempts if isinstance(error, ProviderError) else 0
                failed = (error, cfg)
                continue
            return Completion(
                text=response.text,
                finish_reason=response.finish_reason,
                usage=response.usage,
                model=cfg.id,
                provider=config.name,
                latency=self._clock() - started,
                attempts=attempts,
                provider_model=response.model,
            )
        assert failed is not None
        raise failed[0]

    async def _call_with_retries(
        self,
        cfg: ModelConfig,
        config: ProviderConfig,
        provider: LLMProvider,
        request: ChatRequest,
        waited: list[float],
    ) -> tuple[ProviderResponse, int]:
        retry = self._retry(cfg, config)
        timeouts = self._timeouts(cfg, config)
        request = with_timeouts(request, timeouts)
        limiters = self._limiters_for(cfg, config)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with hold_slots(limiters):
                    response = await guarded(
                        provider.chat(request),
                        timeouts.total,
                        "no reply within the total timeout of {:g}s".format,
                        provider=provider,
                        provider_name=config.name,
                        model=cfg.id,
                    )
                _check_response(response, config.name, cfg.id)
                return response, attempt
            except ProviderError as error:
                _tag(error, config.name, cfg.id, attempt)
                delay = self._next_delay(retry, attempt, error, waited[0])
                if delay is None:
                    raise
                log.info(
                    "model %r attempt %d failed (%s); retrying in %.2fs",
                    cfg.id,
                    attempt,
                    type(error).__name__,
                    delay,
                )
                await self._sleep(delay)
                waited[0] += delay

    def _next_delay(
        self, retry: RetryConfig, attempt: int, error: ProviderError, waited: float
    ) -> float | None:
        if not error.retryable or attempt >= retry.max_attempts:
            return None
        delay = backoff_delay(retry, attempt, error, rand=self._rand)
        if delay is None or waited + delay > retry.total_wait_budget:
            return None
        return delay

    def stream(
        self,
        *,
        model: str,
        prompt: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> CompletionStream:
        """Stream text deltas; retries and fallbacks happen only before the first delta.

        Models with ``supports_streaming: false`` yield their whole answer as one chunk.
        After the loop ends, ``stream.completion`` holds the usage and finish reason.
        """
        self._check_open()
        primary = self.model(model)
        # Build the primary request now so argument errors surface at the call site.
        self.build_request(
            primary,
            prompt=prompt,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            **kwargs,
        )
        holder: list[Completion] = []
        source = self._stream(
            primary,
            holder,
            dict(
                prompt=prompt,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                **kwargs,
            ),
        )
        return CompletionStream(source, holder)

    async def _stream(
        self, primary: ModelConfig, holder: list[Completion], call: dict[str, Any]
    ) -> AsyncGenerator[str, None]:
        started = self._clock()
        attempts = 0
        waited = 0.0  # total_wait_budget spans the fallbacks too
        failed: tuple[LLMRuntimeError, ModelConfig] | None = None
        for cfg in self._candidates(primary):
            if failed is not None and not self._fall_back_to(*failed, cfg):
                continue
            try:
                request = self.build_request(cfg, **call)
                config = self._provider_config(cfg)
                provider = self.provider_for(cfg)
            except LLMRuntimeError as error:
                failed = (error, cfg)
                continue
            retry = self._retry(cfg, config)
            timeouts = self._timeouts(cfg, config)
            request = with_timeouts(request, timeouts)
            limiters = self._limiters_for(cfg, config)
            attempt = 0
            while True:
                attempt += 1
                attempts += 1
                pieces: list[str] = []
                try:
                    async with hold_slots(limiters):
                        events = timed_events(
                            provider,
                            request,
                            cfg,
                            timeouts,
                            streaming=cfg.supports_streaming,
                            provider_name=config.name,
                        )
                        end = StreamEnd()
                        try:
                            async for event in events:
                                if isinstance(event, StreamEnd):
                                    end = event
                                elif event.text:
                                    pieces.append(event.text)
                                    yield event.text
                        finally:
                            await events.aclose()
                except ProviderError as error:
                    _tag(error, config.name, cfg.id, attempt)
                    if pieces:
                        error._delivered = True  # type: ignore[attr-defined]
                        raise  # text reached the caller: no retry, no fallback
                    delay = self._next_delay(retry, attempt, error, waited)
                    if delay is None:
                        failed = (error, cfg)
                        break
                    log.info(
                        "model %r stream attempt %d failed (%s); retrying in %.2fs",
                        cfg.id,
                        attempt,
                        type(error).__name__,
                        delay,
                    )
                    await self._sleep(delay)
                    waited += delay
                    continue
                holder.append(
                    Completion(
                        text="".join(pieces),
                        finish_reason=end.finish_reason,
                        usage=end.usage,
                        model=cfg.id,
                        provider=config.name,
                        latency=self._clock() - started,
                        attempts=attempts,
                        provider_model=end.model,
                    )
                )
                return
        assert failed is not None
        raise failed[0]

    # ------------------------------------------------------------------ explain

    async def explain(
        self,
        *,
        model: str,
        prompt: str | None = None,
        messages: Iterable[Message | Mapping[str, Any]] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The exact request the provider would receive, secrets redacted; sends nothing."""
        cfg = self.model(model)
        config = self._provider_config(cfg)
        request = self.build_request(cfg, prompt=prompt, messages=messages, **kwargs)
        request = with_timeouts(request, self._timeouts(cfg, config))
        key_env = cfg.requires_api_key_env or config.api_key_env
        api_key = self._api_key(key_env) if key_env else None
        placeholder = api_key or (f"${key_env}" if key_env else None)
        base_url = self._base_url(cfg, config)
        cls = self._provider_class(config)
        provider = self._construct(cls, config, placeholder, base_url)
        try:
            described = provider.describe_request(request, stream=stream and cfg.supports_streaming)
        finally:
            await provider.aclose()
        return {
            "model": cfg.id,
            "provider": config.name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "api_key_env": key_env,
            "api_key": "set" if api_key else ("unset" if key_env else "not needed"),
            "stream": stream and cfg.supports_streaming,
            "request": redact(
                described, getattr(provider, "secret_headers", ()), [api_key] if api_key else ()
            ),
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close every provider client; idempotent."""
        if self._closed:
            return
        self._closed = True
        instances, self._instances = list(self._instances.values()), {}
        errors = []
        for instance in instances:
            try:
                await instance.aclose()
            except Exception as exc:  # keep closing the others
                errors.append(exc)
                log.warning("closing %r failed: %s", instance, type(exc).__name__)

    async def __aenter__(self) -> LLMRuntime:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<LLMRuntime {state} models={len(self.catalog.models)} "
            f"providers={len(self.catalog.providers)}>"
        )


# ---------------------------------------------------------------------- helpers


def _check_response(response: object, provider: str, model: str) -> None:
    if not isinstance(response, ProviderResponse):
        raise ProviderError(
            f"chat() returned {type(response).__name__}, not ProviderResponse",
            provider=provider,
            model=model,
        )


def _tag(error: ProviderError, provider: str, model: str, attempts: int) -> None:
    if error.provider is None:
        error.provider = provider
    if error.model is None:
        error.model = model
    error.attempts = attempts
