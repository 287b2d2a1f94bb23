"""The whole exception hierarchy of llm-runtime, split by who can fix the problem.

::

    LLMRuntimeError
    ├── ConfigError                  the config author: YAML files (problems carry file:line:col)
    │   └── TemplateError            a model's chat_template failed or broke a bound (also an
    │                                InvalidRequestError: the call that rendered it fails)
    ├── UnknownModelError            the caller: a model id that is not in models.yaml
    ├── UnknownProviderError         the caller: a provider name that is not registered
    ├── InvalidRequestError          the caller: bad arguments, or a parameter the model refuses
    │   └── CapabilityError          the call needs what the model cannot do (tools, images...)
    ├── RuntimeClosedError           the caller: the runtime was used after aclose()
    ├── MissingAPIKeyError           the environment: names the variable to set
    ├── StructuredOutputError        the model: a reply that does not follow response_format
    ├── MissingDependencyError       the environment: names the pip extra to install
    └── ProviderError                the remote service (or local engine)
        ├── AuthenticationError      401: the key is wrong or revoked
        ├── PermissionDeniedError    403
        ├── NotFoundError            404: e.g. a model the vendor does not know
        ├── BadRequestError          400/422: the vendor's message is kept
        │   └── ContextLengthExceededError
        ├── ContentFilteredError     the vendor refused or blocked the content (safety)
        ├── RateLimitError           429: carries retry_after (seconds) when the server sent it
        ├── ServerError              5xx
        ├── ProviderTimeoutError     connect / read / total timeout
        ├── ProviderConnectionError  refused, reset, DNS, TLS
        └── MalformedResponseError   a reply that does not parse as the protocol says
            ├── ToolArgumentsError   a tool call whose arguments are not a JSON object
            └── ResponseTooLargeError  a reply past a size bound of settings.http / http:

Every message is written for a person: what happened, where, and the next step.
No message, repr or attribute ever contains an API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self, cast

__all__ = [
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
]


class LLMRuntimeError(Exception):
    """Base class of every error this package raises on purpose.

    ``failures`` is set on the error a fallback chain raises when every model failed: one
    ``(model id, error)`` pair per model tried after the first, in order (the error itself is
    the first model's, so its type stays catchable). Every error pickles with its message and
    fields (task queues and multiprocessing send them across processes).
    """

    failures: tuple[tuple[str, LLMRuntimeError], ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt without calling __init__: subclasses take different arguments, and the
        # state (fields, notes) is what matters.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def _text(self) -> str:
        """The message without any prefix (what a suffix is appended to)."""
        return str(self.args[0]) if self.args else ""

    def _set_text(self, text: str) -> None:
        self.args = (text,)

    def with_failures(self, failures: Sequence[tuple[str, LLMRuntimeError]]) -> Self:
        """A copy of this error whose message also names every later failure of a chain."""
        copy = cast(Self, _rebuild(type(self), self.args, dict(self.__dict__)))
        lines = [f"  - model {model!r}: {error}" for model, error in failures]
        copy._set_text(
            self._text()
            + f"\n  and every fallback failed too ({len(failures)}):\n"
            + "\n".join(lines)
        )
        copy.failures = tuple(failures)
        return copy


def _rebuild(
    cls: type[LLMRuntimeError], args: tuple[Any, ...], state: dict[str, Any]
) -> LLMRuntimeError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file, with its position (1-based line and column)."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(LLMRuntimeError):
    """The YAML configuration is invalid; ``problems`` lists every problem found at once."""

    def __init__(self, problems: Sequence[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[ConfigProblem, ...] = ()
            text = problems
        else:
            self.problems = tuple(problems)
            count = len(self.problems)
            head = f"{count} problem{'s' if count != 1 else ''} in the configuration:"
            text = "\n".join([head, *(f"  {p}" for p in self.problems)])
        super().__init__(text)


class UnknownModelError(LLMRuntimeError, LookupError):
    """A model id that models.yaml does not define."""

    def __init__(self, model: str, suggestion: str | None = None) -> None:
        self.model = model
        self.suggestion = suggestion
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        super().__init__(
            f"unknown model {model!r}{hint}; run 'llm-runtime models' to list the configured ones"
        )

    def __str__(self) -> str:  # LookupError would quote the message otherwise
        return str(self.args[0])


class UnknownProviderError(LLMRuntimeError, LookupError):
    """A provider name that is neither in providers.yaml nor registered in code."""

    def __init__(self, name: str, suggestion: str | None = None) -> None:
        self.name = name
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        super().__init__(
            f"unknown provider {name!r}{hint}; declare it in providers.yaml "
            "or call register_provider()"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidRequestError(LLMRuntimeError, ValueError):
    """The call's arguments are wrong, or carry a parameter the model refuses."""


class TemplateError(ConfigError, InvalidRequestError):
    """A model's ``chat_template`` failed to compile or render, or broke a render bound.

    The config author fixes it (a ConfigError), and the call that rendered it fails
    (an InvalidRequestError, as before this type existed). ``model`` is the catalog model id.
    """

    def __init__(self, message: str, *, model: str | None = None) -> None:
        self.model = model
        super().__init__(message)


class StructuredOutputError(LLMRuntimeError):
    """The reply does not follow the call's ``response_format``.

    ``raw_text`` is the reply as it came, ``problem`` what is wrong with it, ``model`` the
    catalog model id that answered.
    """

    def __init__(self, message: str, *, raw_text: str, problem: str, model: str) -> None:
        self.raw_text = raw_text
        self.problem = problem
        self.model = model
        super().__init__(message)


class CapabilityError(InvalidRequestError):
    """The call needs something the model does not do (``capability`` names it); raised
    before any request. A fallback chain passes over models that lack it."""

    def __init__(self, message: str, *, capability: str, model: str) -> None:
        self.capability = capability
        self.model = model
        super().__init__(message)


class RuntimeClosedError(LLMRuntimeError):
    """The runtime was used after ``aclose()``."""


class MissingAPIKeyError(LLMRuntimeError):
    """A provider needs an API key and the environment variable holding it is unset or empty."""

    def __init__(self, env_var: str, *, provider: str, model: str | None = None) -> None:
        self.env_var = env_var
        self.provider = provider
        self.model = model
        subject = f"model {model!r} (provider {provider!r})" if model else f"provider {provider!r}"
        super().__init__(f"{subject} needs an API key: set the environment variable {env_var}")


class MissingDependencyError(LLMRuntimeError, ImportError):
    """An optional package is needed; the message names the pip extra that brings it."""

    def __init__(self, package: str, extra: str, *, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        why = f" for {purpose}" if purpose else ""
        super().__init__(
            f"the optional package {package!r} is needed{why}: pip install 'llm-runtime[{extra}]'"
        )


class ProviderError(LLMRuntimeError):
    """A call to a provider failed. ``retryable`` says whether trying again can succeed."""

    retryable: bool = False
    #: Attempts the runtime made on ``model`` before raising this (0: not raised by the runtime).
    attempts: int = 0
    #: The catalog model id (models.yaml) of the call, set by the runtime; ``model`` is the
    #: name the vendor knows (``provider_model``), as the provider reported it.
    model_id: str | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        vendor_code: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = message
        if retryable is not None:  # else the class's default (a 429 is, an exhausted quota not)
            self.retryable = retryable
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.vendor_code = vendor_code
        #: Seconds the server asked us to wait (Retry-After or the body's hint); finite or None.
        self.retry_after = retry_after
        super().__init__(message)

    def _text(self) -> str:
        return self.message

    def _set_text(self, text: str) -> None:
        self.message = text
        self.args = (text,)

    def __str__(self) -> str:
        parts = []
        if self.provider:
            parts.append(f"provider {self.provider!r}")
        if self.model_id and self.model and self.model_id != self.model:
            parts.append(f"model {self.model_id!r} ({self.model!r} at the vendor)")
        elif self.model_id or self.model:
            parts.append(f"model {self.model_id or self.model!r}")
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        prefix = f"[{', '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (HTTP 401)."""


class PermissionDeniedError(ProviderError):
    """The credentials are valid but not allowed to do this (HTTP 403)."""


class NotFoundError(ProviderError):
    """The provider does not know the model or endpoint (HTTP 404)."""


class BadRequestError(ProviderError):
    """The provider rejected the request as malformed (HTTP 400/422)."""


class ContextLengthExceededError(BadRequestError):
    """The prompt plus the requested output do not fit the model's context window."""


class ContentFilteredError(ProviderError):
    """The provider blocked the prompt or the answer (safety or content policy)."""


class RateLimitError(ProviderError):
    """Too many requests (HTTP 429); ``retry_after`` is the server's hint in seconds."""

    retryable = True


class ServerError(ProviderError):
    """The provider failed on its side (HTTP 5xx, 408, 409 or an overload signal)."""

    retryable = True


class ProviderTimeoutError(ProviderError):
    """The call did not finish in time (connect, read, first token, idle gap or total)."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The provider could not be reached, or the connection broke."""

    retryable = True


class MalformedResponseError(ProviderError):
    """The provider's reply did not follow its protocol."""


class ToolArgumentsError(MalformedResponseError):
    """A tool call whose arguments are not a JSON object; ``raw_arguments`` keeps the text."""

    def __init__(self, message: str, *, raw_arguments: str, tool_name: str, **kwargs: Any) -> None:
        self.raw_arguments = raw_arguments
        self.tool_name = tool_name
        super().__init__(message, **kwargs)


class ResponseTooLargeError(MalformedResponseError):
    """A reply, stream, SSE line or event went past its size bound (``http:`` settings).

    The message names the setting to raise; the read stopped there (nothing more was read).
    """
