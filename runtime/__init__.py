"""llm-runtime: a declarative, YAML-configured runtime for calling large language models.

``load_runtime()`` reads providers.yaml and models.yaml (validated, every problem reported
with file:line:column) and returns an ``LLMRuntime``; ``await rt.completion(prompt, model)``
returns text, ``await rt.generate(...)`` a ``Completion``, ``rt.stream(...)`` text deltas.
Importing this package loads no provider SDK and opens no connection.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when first used (module __getattr__ below), not at import
    from .config import Catalog, ModelConfig, ProviderConfig
    from .errors import (
        AuthenticationError,
        BadRequestError,
        CapabilityError,
        ConfigError,
        ConfigProblem,
        ContentFilteredError,
        ContextLengthExceededError,
        InvalidRequestError,
        LLMRuntimeError,
        MalformedResponseError,
        MissingAPIKeyError,
        MissingDependencyError,
        NotFoundError,
        PermissionDeniedError,
        ProviderConnectionError,
        ProviderError,
        ProviderTimeoutError,
        RateLimitError,
        ResponseTooLargeError,
        RuntimeClosedError,
        ServerError,
        StructuredOutputError,
        TemplateError,
        ToolArgumentsError,
        UnknownModelError,
        UnknownProviderError,
    )
    from .providers.base import ChatProvider, LLMProvider
    from .providers.registry import register_provider
    from .service import CompletionStream, EventStream, LLMRuntime
    from .types import (
        Completion,
        ImagePart,
        Message,
        ReasoningPart,
        TextPart,
        Tool,
        ToolCall,
        ToolResult,
        Usage,
    )

#: Where each public name lives: ``runtime.X`` imports its module on first use, so
#: ``import runtime`` (and ``from runtime.errors import ...``) costs only what is used.
_EXPORTS = {
    **dict.fromkeys(("Catalog", "ModelConfig", "ProviderConfig"), ".config"),
    **dict.fromkeys(
        (
            "AuthenticationError",
            "BadRequestError",
            "CapabilityError",
            "ConfigError",
            "ConfigProblem",
            "ContentFilteredError",
            "ContextLengthExceededError",
            "InvalidRequestError",
            "LLMRuntimeError",
            "MalformedResponseError",
            "MissingAPIKeyError",
            "MissingDependencyError",
            "NotFoundError",
            "PermissionDeniedError",
            "ProviderConnectionError",
            "ProviderError",
            "ProviderTimeoutError",
            "RateLimitError",
            "ResponseTooLargeError",
            "RuntimeClosedError",
            "ServerError",
            "StructuredOutputError",
            "TemplateError",
            "ToolArgumentsError",
            "UnknownModelError",
            "UnknownProviderError",
        ),
        ".errors",
    ),
    **dict.fromkeys(("ChatProvider", "LLMProvider"), ".providers.base"),
    "register_provider": ".providers.registry",
    **dict.fromkeys(("CompletionStream", "EventStream", "LLMRuntime"), ".service"),
    **dict.fromkeys(
        (
            "Completion",
            "ImagePart",
            "Message",
            "ReasoningPart",
            "TextPart",
            "Tool",
            "ToolCall",
            "ToolResult",
            "Usage",
        ),
        ".types",
    ),
}


def __getattr__(name: str) -> Any:
    from importlib import import_module

    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(import_module(module, __name__), name)
    elif not name.startswith("_"):  # a submodule (runtime.errors...), as an eager import had it
        try:
            value = import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: later reads do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CapabilityError",
    "Catalog",
    "ChatProvider",
    "Completion",
    "CompletionStream",
    "ConfigError",
    "ConfigProblem",
    "ContentFilteredError",
    "ContextLengthExceededError",
    "EventStream",
    "ImagePart",
    "InvalidRequestError",
    "LLMProvider",
    "LLMRuntime",
    "LLMRuntimeError",
    "MalformedResponseError",
    "Message",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "ModelConfig",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "ReasoningPart",
    "ResponseTooLargeError",
    "RuntimeClosedError",
    "ServerError",
    "StructuredOutputError",
    "TemplateError",
    "TextPart",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolResult",
    "UnknownModelError",
    "UnknownProviderError",
    "Usage",
    "__version__",
    "load_runtime",
    "register_provider",
]

__version__ = "0.1.0"

logging.getLogger("runtime").addHandler(logging.NullHandler())


def load_runtime(
    providers: str | os.PathLike[str] | None = None,
    models: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    environ: Mapping[str, str] | None = None,
    watch: bool = False,
) -> LLMRuntime:
    """Load and validate the YAML catalog and return a runtime over it.

    Paths default to ``$LLM_RUNTIME_PROVIDERS`` / ``$LLM_RUNTIME_MODELS``, then
    ``./providers.yaml`` / ``./models.yaml``, then the bundled catalog. Raises ConfigError
    listing every problem. ``strict`` also imports every provider class and checks that
    every API key variable is set. ``watch`` reloads the catalog when its files change
    (``LLMRuntime.watch()`` with its defaults, started now if an event loop is running,
    else when the runtime is first used in one); off by default.
    """
    from .loader import load_catalog
    from .service import LLMRuntime

    def read() -> Catalog:
        return load_catalog(providers, models, strict=strict, environ=environ)

    runtime = LLMRuntime(read(), environ=environ)
    runtime._source = read  # what reload() reads again
    if watch:
        runtime._watch_pending = True
        runtime._start_pending_watch()
    return runtime
