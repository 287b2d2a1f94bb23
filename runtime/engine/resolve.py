"""The resolved snapshot: everything derived from one loaded catalog, and the provider instances.

``Snapshot`` answers, for a model id: its config, its provider's config and class, its
merged retry and time policies and its limiters (``ModelPlan``, computed once per model).
``Instances`` holds the provider instances, one per everything that defines one (provider,
class, options, key, base URL), created on first use and reused; instances for keys given
per call are kept in a bounded LRU and closed once their last call has ended. A hot reload
swaps one ``Snapshot`` reference; calls in flight keep the one they started with.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pydantic import BaseModel

from ..config import (
    Catalog,
    HTTPConfig,
    HTTPEngine,
    ModelConfig,
    ProviderConfig,
    RetryConfig,
    TimeoutConfig,
    base_url_problem,
)
from ..errors import (
    ConfigError,
    LLMRuntimeError,
    MissingAPIKeyError,
    UnknownModelError,
    UnknownProviderError,
)
from ..providers.base import LLMProvider
from ..providers.registry import (
    ProviderImportError,
    import_provider_class,
    registered_provider,
    registered_providers,
)
from ..redact import scrub
from ..suggest import did_you_mean
from .deadlines import scrub_error

if TYPE_CHECKING:
    from .limits import Limiter

__all__ = ["Instances", "ModelPlan", "Snapshot", "Timing", "merge_layers"]

log = logging.getLogger("runtime")

M = TypeVar("M", bound=BaseModel)

#: What an API key may hold to travel in an HTTP header: visible ASCII, no spaces.
_HEADER_SAFE = r"[\x21-\x7e]+"

#: Provider instances kept for keys passed per call (``api_key=``), least recently used out.
TENANT_INSTANCES = 64


class Timing(NamedTuple):
    """How the runtime sleeps, reads the clock and draws jitter (tests replace them).

    (A NamedTuple: immutable like a frozen dataclass, and several times cheaper to define.)
    """

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random


def merge_layers(cls: type[M], *layers: M | None) -> M:
    """Merge config layers field by field: a later layer wins only where it set a field."""
    values: dict[str, object] = {}
    for layer in layers:
        if layer is not None:
            values.update({name: getattr(layer, name) for name in layer.model_fields_set})
    return cls(**values)


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """How one model is called: its config, its provider's, merged policies and limiters.

    ``capabilities`` is the model's ``capabilities:`` as every ``ChatRequest`` carries it
    (unset ones omitted). ``memo`` holds what ``Instances`` derived for this plan (the
    shared instance and what it was derived from), so a call repeats none of that work.
    """

    model: ModelConfig
    provider: ProviderConfig
    retry: RetryConfig
    timeouts: TimeoutConfig
    http: HTTPConfig
    #: The provider's http_engine, else settings.http_engine; None: the seam's default.
    http_engine: HTTPEngine | None
    limiters: tuple[Limiter, ...]
    key_env: str | None
    options_key: str = field(repr=False)  # the provider options, as part of instance keys
    capabilities: Mapping[str, Any] = field(default_factory=dict, repr=False)
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class Snapshot:
    """One loaded catalog and what is derived from it; never changed once built.

    Plans, limiters and imported classes are computed on first use and memoised: the
    memo is an implementation detail, every answer depends on the catalog alone.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        environ: Mapping[str, str] | None,
        timing: Timing,
        previous: Snapshot | None = None,
    ) -> None:
        self.catalog = catalog
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.timing = timing
        self._plans: dict[str, ModelPlan] = {}
        self._limiters: dict[str, Limiter] = {}
        self._classes: dict[str, type[LLMProvider]] = {}
        if previous is not None:
            # A reload keeps the limiters whose limits did not change: calls in flight and
            # new ones share the same slots and rate window.
            self._limiters = {
                key: limiter
                for key, limiter in previous._limiters.items()
                if limiter.config == self._limits_of(key)
            }

    def _limits_of(self, key: str) -> Any:
        kind, _, name = key.partition(":")
        if kind == "provider":
            config = self.catalog.providers.get(name)
        else:
            config = self.catalog.models.get(name)  # type: ignore[assignment]
        return config.limits if config is not None else None

    def model(self, model_id: str) -> ModelConfig:
        """The ModelConfig of ``model_id``; raises UnknownModelError with a suggestion."""
        try:
            return self.catalog.models[model_id]
        except (KeyError, TypeError):
            raise UnknownModelError(
                str(model_id), did_you_mean(str(model_id), self.catalog.models)
            ) from None

    def provider_config(self, model: ModelConfig) -> ProviderConfig:
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

    def provider_class(self, config: ProviderConfig) -> type[LLMProvider]:
        registered = registered_provider(config.name)
        if registered is not None:
            return registered
        cls = self._classes.get(config.name)
        if cls is None:
            try:
                cls = import_provider_class(config.class_path, near=self.catalog.sources)
            except ProviderImportError as exc:
                raise ConfigError(
                    f"provider {config.name!r}: class {config.class_path!r}: {exc}"
                ) from exc
            self._classes[config.name] = cls
        return cls

    def plan(self, model: ModelConfig) -> ModelPlan:
        """The model's call plan (merged once; the catalog is frozen)."""
        plan = self._plans.get(model.id)
        if plan is None or plan.model is not model:
            config = self.provider_config(model)
            settings = self.catalog.settings
            plan = self._plans[model.id] = ModelPlan(
                model=model,
                provider=config,
                retry=merge_layers(RetryConfig, settings.retry, config.retry, model.retry),
                timeouts=merge_layers(
                    TimeoutConfig, settings.timeouts, config.timeouts, model.timeouts
                ),
                http=merge_layers(HTTPConfig, settings.http, config.http),
                http_engine=config.http_engine or settings.http_engine,
                limiters=self._limiters_for(model, config),
                key_env=model.requires_api_key_env or config.api_key_env,
                options_key=self.instance_key(config),
                capabilities=model.capabilities.model_dump(exclude_none=True),
            )
        return plan

    def instance_key(self, config: ProviderConfig) -> str:
        """What defines ``config``'s instances besides key and base URL, in this catalog:
        class, options, the HTTP bounds *merged* (a change of ``settings.http`` counts) and
        the HTTP engine in effect (a change of ``settings.http_engine`` counts too)."""
        settings = self.catalog.settings
        return provider_key(
            config, merge_layers(HTTPConfig, settings.http, config.http), settings.http_engine
        )

    def _limiters_for(self, model: ModelConfig, config: ProviderConfig) -> tuple[Limiter, ...]:
        out = []
        for key, limits in (
            (f"provider:{config.name}", config.limits),
            (f"model:{model.id}", model.limits),
        ):
            if limits is None:
                continue
            limiter = self._limiters.get(key)
            if limiter is None:
                from .limits import Limiter  # only models with limits need it

                limiter = self._limiters[key] = Limiter(
                    limits, clock=self.timing.clock, sleep=self.timing.sleep
                )
            out.append(limiter)
        return tuple(out)

    def limiter(self, key: str) -> Limiter | None:
        """The limiter ``provider:NAME`` or ``model:ID``, once a call has created it."""
        return self._limiters.get(key)

    def candidates(self, model: ModelConfig) -> list[ModelConfig]:
        """The model and its fallbacks, in order."""
        return [model, *(self.model(m) for m in model.fallbacks)]

    # ------------------------------------------------------------------ environment

    def env(self, name: str) -> str | None:
        value = self.environ.get(name)
        return value if value else None

    def api_key(self, plan: ModelPlan, override: str | None = None) -> str | None:
        """The key for ``plan``: ``override`` (per call), else its variable; never shown."""
        if override is not None:
            return check_key(override, "the api_key passed to this call", plan.provider.name)
        if not plan.key_env:
            return None
        value = self.env(plan.key_env)
        # Surrounding whitespace is never part of a key: a CRLF .env file leaves a "\r".
        value = value.strip() if value else None
        if not value:
            raise MissingAPIKeyError(plan.key_env, provider=plan.provider.name, model=plan.model.id)
        return check_key(
            value,
            f"the environment variable {plan.key_env} (the API key of provider "
            f"{plan.provider.name!r})",
            plan.provider.name,
        )

    def base_url(self, plan: ModelPlan) -> str | None:
        """The model's base_url_env, else the provider's base_url_env, else its base_url."""
        for variable in (plan.model.base_url_env, plan.provider.base_url_env):
            value = self.env(variable) if variable else None
            if value:
                problem = base_url_problem(value)
                if problem:
                    raise ConfigError(
                        f"the environment variable {variable} (base URL of provider "
                        f"{plan.provider.name!r}): {problem}"
                    )
                return value
        return plan.provider.base_url


def provider_key(
    config: ProviderConfig, http: HTTPConfig | None = None, default_engine: str | None = None
) -> str:
    """What defines a provider's instances besides key and base URL: class, options, HTTP
    (``http``: the bounds in effect, else the provider's own ``http:``; ``default_engine``:
    settings.http_engine, which applies when the provider sets none)."""
    http = http or config.http
    return json.dumps(
        [
            config.class_path,
            config.options,
            http.model_dump() if http else None,
            config.http_engine or default_engine,
        ],
        sort_keys=True,
        default=repr,
    )


def check_key(value: str, what: str, provider: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(_HEADER_SAFE, value):
        # Never echo the value: it is the key, or most of it.
        raise ConfigError(
            f"{what} holds spaces, control or non-ASCII characters that no HTTP header can "
            "carry; set it to the key alone"
            if isinstance(value, str)
            else f"{what} must be a string"
        )
    return value


def construct(
    cls: type[LLMProvider],
    config: ProviderConfig,
    api_key: str | None,
    base_url: str | None,
    http: HTTPConfig | None = None,
    http_engine: HTTPEngine | None = None,
) -> LLMProvider:
    """``cls(api_key, base_url, **options)``, then its HTTP limits and engine; failures ->
    ConfigError."""
    try:
        instance = cls(api_key=api_key, base_url=base_url, **config.options)
    except LLMRuntimeError as exc:
        scrub_error(exc, (api_key,))
        raise
    except Exception as exc:
        text = scrub(str(exc), (api_key,))
        raise ConfigError(
            f"provider {config.name!r}: {cls.__name__}(**options) failed: "
            f"{type(exc).__name__}: {text}"
        ) from None
    instance.provider_name = config.name
    if http_engine is not None:
        instance.http_engine = http_engine
    if http is not None:
        instance.configure_http(http)
    return instance


class Instances:
    """Provider instances, created once per (provider, class, options, key, base URL)."""

    def __init__(self, tenant_limit: int = TENANT_INSTANCES) -> None:
        self._shared: dict[tuple[object, ...], LLMProvider] = {}
        self._tenants: OrderedDict[tuple[object, ...], LLMProvider] = OrderedDict()
        self._tenant_limit = tenant_limit
        self._busy: dict[int, int] = {}  # id(instance) -> calls in flight
        self._retired: dict[int, LLMProvider] = {}  # to close when their last call ends
        self._closers: set[asyncio.Task[None]] = set()
        #: Grows whenever a shared instance leaves the table: plans' memos of it are stale.
        self._generation = 0

    def get(self, snapshot: Snapshot, plan: ModelPlan, api_key: str | None = None) -> LLMProvider:
        """The instance serving ``plan`` (``api_key``: a key given per call).

        The shared instance is memoised in the plan with what it was derived from: the raw
        values of the key and base-URL variables (read again on every call, so a key set or
        changed after loading is used) and the class registered under the provider's name.
        When those are unchanged the call reuses it without checking the key again.
        """
        if api_key is None:
            source = self._source(snapshot, plan)
            memo = plan.memo.get("instance")
            if (
                memo is not None
                and memo[0] is self
                and memo[1] == self._generation
                and memo[2] == source
            ):
                return memo[3]  # type: ignore[no-any-return]
            instance = self._get(snapshot, plan, None)
            plan.memo["instance"] = (self, self._generation, source, instance)
            return instance
        return self._get(snapshot, plan, api_key)

    @staticmethod
    def _source(snapshot: Snapshot, plan: ModelPlan) -> tuple[object, ...]:
        """What the shared instance of ``plan`` is derived from, besides the frozen catalog."""
        env = snapshot.environ
        model_url, provider_url = plan.model.base_url_env, plan.provider.base_url_env
        return (
            env.get(plan.key_env) if plan.key_env else None,
            env.get(model_url) if model_url else None,
            env.get(provider_url) if provider_url else None,
            registered_provider(plan.provider.name),
        )

    def _get(self, snapshot: Snapshot, plan: ModelPlan, api_key: str | None) -> LLMProvider:
        key_value = snapshot.api_key(plan, api_key)
        base_url = snapshot.base_url(plan)
        cls = snapshot.provider_class(plan.provider)
        key = (plan.provider.name, cls, plan.options_key, key_value, base_url)
        table = self._shared if api_key is None else self._tenants
        instance = table.get(key)
        if instance is None:
            instance = table[key] = construct(
                cls, plan.provider, key_value, base_url, plan.http, plan.http_engine
            )
            if api_key is not None and len(self._tenants) > self._tenant_limit:
                _, evicted = self._tenants.popitem(last=False)
                self._retire(evicted)
        elif api_key is not None:
            self._tenants.move_to_end(key)
        return instance

    def _retire(self, instance: LLMProvider) -> None:
        if self._busy.get(id(instance), 0) == 0:
            self._close_soon(instance)
        else:
            self._retired[id(instance)] = instance

    def _close_soon(self, instance: LLMProvider) -> None:
        try:
            task = asyncio.get_running_loop().create_task(_close(instance))
        except RuntimeError:  # no loop: nothing of it can still be open in a loop
            return
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def hold(self, instance: LLMProvider) -> None:
        """Hold ``instance`` for one call: it is not closed under it (``release`` ends it)."""
        ident = id(instance)
        self._busy[ident] = self._busy.get(ident, 0) + 1

    def release(self, instance: LLMProvider) -> None:
        """End one ``hold``; a retired instance is closed when its last call ends."""
        ident = id(instance)
        left = self._busy[ident] - 1
        if left:
            self._busy[ident] = left
        else:
            del self._busy[ident]
            retired = self._retired.pop(ident, None)
            if retired is not None:
                self._close_soon(retired)

    @asynccontextmanager
    async def use(self, instance: LLMProvider) -> AsyncIterator[LLMProvider]:
        """Hold ``instance`` for one call: it is not closed under it."""
        self.hold(instance)
        try:
            yield instance
        finally:
            self.release(instance)

    def retire_unless(self, keep: set[tuple[str, str]]) -> int:
        """Retire instances whose (provider name, provider_key) is not in ``keep``.

        Each is closed once its last call has ended; returns how many were retired.
        """
        retired = 0
        for table in (self._shared, self._tenants):
            for key in [k for k in table if (k[0], k[2]) not in keep]:
                self._retire(table.pop(key))
                retired += 1
        self._generation += 1
        return retired

    def all(self) -> list[LLMProvider]:
        return [*self._shared.values(), *self._tenants.values(), *self._retired.values()]

    async def aclose(self) -> None:
        """Close every instance (keep closing the others when one fails)."""
        instances = self.all()
        self._shared, self._tenants, self._retired = {}, OrderedDict(), {}
        self._generation += 1
        for instance in instances:
            await _close(instance)
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)


async def _close(instance: LLMProvider) -> None:
    try:
        await instance.aclose()
    except Exception as exc:
        log.warning("closing %r failed: %s", instance, type(exc).__name__)
