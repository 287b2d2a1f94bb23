"""``LLMRuntime``: the facade application code calls; the work happens in ``runtime.engine``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .config import Catalog, ModelConfig, ProviderConfig
from .engine.call import Call, CallArgs
from .engine.observe import Observer
from .engine.resolve import Instances, ModelPlan, Snapshot, Timing
from .errors import LLMRuntimeError, RuntimeClosedError
from .hooks import Hook, HookKind, Hooks
from .providers.base import LLMProvider
from .request import build_request
from .streams import CompletionStream, EventStream
from .types import ChatRequest, Completion, Message

if TYPE_CHECKING:
    from .ledger import UsageLedger
    from .sync import SyncRuntime

__all__ = ["CompletionStream", "EventStream", "LLMRuntime"]

log = logging.getLogger("runtime")

Messages = Iterable[Message | Mapping[str, Any]]


class LLMRuntime:
    """The runtime service: resolves model ids from the catalog and calls their providers.

    ``_timing`` replaces how the runtime sleeps, reads its clock and draws jitter (tests).
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        environ: Mapping[str, str] | None = None,
        _timing: Timing | None = None,
    ) -> None:
        self._snapshot = Snapshot(catalog, environ=environ, timing=_timing or Timing())
        self._environ = environ
        self._instances = Instances()
        self._observer = Observer()
        self._closed = False
        #: How reload() reads the catalog again (set by load_runtime; None: no files).
        self._source: Callable[[], Catalog] | None = None
        self._watcher: asyncio.Task[None] | None = None
        #: load_runtime(watch=True) outside an event loop: start watching in the first one.
        self._watch_pending = False
        self._reload_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ reload

    async def reload(self, catalog: Catalog | None = None) -> Catalog:
        """Read the YAML files again (or take ``catalog``) and swap the snapshot atomically.

        Calls in flight finish on the snapshot they started with; providers whose settings
        did not change keep their clients and pools; removed or changed ones are closed once
        their last call ends. An invalid file raises ConfigError (file:line) and the running
        configuration stays as it was.
        """
        self._check_open()
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            if catalog is None:
                if self._source is None:
                    raise RuntimeClosedError(
                        "this LLMRuntime was built from a Catalog, not from files: pass the "
                        "new catalog to reload(catalog)"
                    )
                catalog = await asyncio.to_thread(self._source)
            from .engine.reload import successor  # what only a reload needs

            new, keep = successor(self._snapshot, catalog, self._environ)
            self._snapshot = new  # one reference: a call sees the old or the new, never half
            retired = self._instances.retire_unless(keep)
            log.info(
                "reloaded the catalog: %d providers, %d models (%d provider instances retired)",
                len(catalog.providers),
                len(catalog.models),
                retired,
            )
            return catalog

    def watch(self, interval: float = 1.0, debounce: float = 0.5) -> asyncio.Task[None]:
        """Reload when a YAML file of the catalog changes (polled every ``interval`` s, a
        change applied once the file has been still for ``debounce`` s); off by default.

        A reload that fails is logged (the running config stays); ``aclose()`` stops it.
        """
        self._check_open()
        if self._watcher is None or self._watcher.done():
            from .engine.reload import watch_files  # what only watch() needs

            self._watcher = asyncio.get_running_loop().create_task(
                watch_files(lambda: self.catalog.sources, self.reload, interval, debounce),
                name="llm-runtime-watch",
            )
        return self._watcher

    # ------------------------------------------------------------------ observing

    @property
    def hooks(self) -> Hooks:
        """The runtime's hooks: ``rt.hooks.add("response", fn)`` (see ``runtime.hooks``)."""
        return self._observer.hooks

    def on(self, kind: HookKind) -> Callable[[Hook], Hook]:
        """Decorator: ``@rt.on("error")`` registers the function as a hook of that kind."""

        def register(hook: Hook) -> Hook:
            return self._observer.hooks.add(kind, hook)

        return register

    def enable_tracing(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        capture_content: bool = False,
    ) -> None:
        """Trace every call with OpenTelemetry, by the GenAI semantic conventions.

        The global providers are used unless given; message content is recorded only with
        ``capture_content=True``. Needs ``pip install 'llm-runtime[otel]'`` (see
        ``runtime.tracing``); ``disable_tracing()`` stops it.
        """
        from .tracing import Tracer

        self._observer.tracer = Tracer(
            tracer_provider, meter_provider, capture_content=capture_content
        )

    def disable_tracing(self) -> None:
        """Stop tracing calls started from now on."""
        self._observer.tracer = None

    @property
    def usage(self) -> UsageLedger:
        """Totals per model of this runtime's calls (``rt.usage.totals()``, ``.reset()``)."""
        return self._observer.ledger

    # ------------------------------------------------------------------ lookup

    @property
    def catalog(self) -> Catalog:
        return self._snapshot.catalog

    @property
    def models(self) -> Mapping[str, ModelConfig]:
        return self.catalog.models

    @property
    def providers(self) -> Mapping[str, ProviderConfig]:
        return self.catalog.providers

    def model(self, model_id: str) -> ModelConfig:
        """The ModelConfig of ``model_id``; raises UnknownModelError with a suggestion."""
        return self._snapshot.model(model_id)

    def provider_for(self, model: ModelConfig | str, *, api_key: str | None = None) -> LLMProvider:
        """The provider instance serving ``model``: one per provider and credentials, reused."""
        self._check_open()
        cfg = self.model(model) if isinstance(model, str) else model
        return self._instances.get(self._snapshot, self._snapshot.plan(cfg), api_key)

    def build_request(
        self,
        model: ModelConfig | str,
        *,
        prompt: str | None = None,
        messages: Messages | None = None,
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

    # ------------------------------------------------------------------ calls

    def _call(
        self,
        model: str,
        prompt: str | None,
        messages: Messages | None,
        temperature: float | None,
        max_tokens: int | None,
        kwargs: Mapping[str, Any],
        *,
        stream: bool,
    ) -> Call:
        self._check_open()
        if self._watch_pending:
            self._start_pending_watch()
        snapshot = self._snapshot  # one snapshot for the whole call, whatever reloads
        primary = snapshot.model(model)
        args = CallArgs.split(
            prompt, messages, temperature, max_tokens, kwargs, snapshot.catalog.templates
        )
        try:
            plan: ModelPlan | None = snapshot.plan(primary)
        except LLMRuntimeError:
            plan = None  # raised by the call itself, as every failure of its model is
        # Argument errors surface here, at the call site.
        first, _ = args.request_for(primary, plan)
        return Call(
            snapshot,
            self._instances,
            primary,
            args,
            stream=stream,
            first=first,
            observer=self._observer,
            first_plan=plan,
        )

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
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> Completion:
        """One call with retries and fallbacks; returns text, finish reason, usage and more.

        ``timeout=`` (seconds) limits each attempt of this call; ``api_key=`` calls with
        that key instead of the configured variable's (it is kept secret like any key).
        """
        call = self._call(model, prompt, messages, temperature, max_tokens, kwargs, stream=False)
        return await call.result()

    def stream(
        self,
        *,
        model: str,
        prompt: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> CompletionStream:
        """Stream text deltas; retries and fallbacks happen only before the first delta.

        Models with ``supports_streaming: false`` yield their whole answer as one chunk.
        After the loop ends, ``stream.completion`` holds the usage and finish reason.
        """
        call = self._call(model, prompt, messages, temperature, max_tokens, kwargs, stream=True)
        return CompletionStream(call)

    def stream_events(
        self,
        *,
        model: str,
        prompt: str | None = None,
        messages: Messages | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> EventStream:
        """Like ``stream``, but yields typed events (see ``EventStream``)."""
        call = self._call(model, prompt, messages, temperature, max_tokens, kwargs, stream=True)
        return EventStream(call)

    # ------------------------------------------------------------------ explain

    async def explain(
        self,
        *,
        model: str,
        prompt: str | None = None,
        messages: Messages | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The exact request the provider would receive, secrets redacted; sends nothing.

        ``parameter_policy`` lists what the model's policy dropped or pinned, and why.
        """
        from .engine.explain import explain  # what only explain needs

        return await explain(self._snapshot, self.model(model), prompt, messages, stream, kwargs)

    # ------------------------------------------------------------------ lifecycle

    def sync(self) -> SyncRuntime:
        """This runtime without ``await`` (see ``runtime.sync``): for scripts."""
        from .sync import SyncRuntime

        return SyncRuntime(self)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("this LLMRuntime was closed with aclose(); create a new one")

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close every provider client; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._instances.aclose()
        await self._observer.hooks.drain()

    async def __aenter__(self) -> LLMRuntime:
        self._check_open()
        if self._watch_pending:
            self._start_pending_watch()
        return self

    def _start_pending_watch(self) -> None:
        """Start the watcher ``load_runtime(watch=True)`` asked for, once a loop runs."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # still no loop (e.g. stream() built outside one): the next call tries
        self._watch_pending = False
        self.watch()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<LLMRuntime {state} models={len(self.catalog.models)} "
            f"providers={len(self.catalog.providers)}>"
        )
