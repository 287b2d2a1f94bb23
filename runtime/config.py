"""Configuration data classes (``ProviderConfig``, ``ModelConfig``, policies); no I/O.

These pydantic models are the one source of truth for the YAML files: the JSON Schemas in
``schemas/`` are generated from them (``llm-runtime schema --write schemas``), and a test
proves the committed files equal the generated ones.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "HTTP_ENGINES",
    "SCHEMA_DIALECT",
    "Capabilities",
    "Catalog",
    "HTTPConfig",
    "HTTPEngine",
    "LimitsConfig",
    "ModelConfig",
    "PricingConfig",
    "ProviderConfig",
    "RetryConfig",
    "RuntimeSettings",
    "TemplateConfig",
    "TimeoutConfig",
    "base_url_problem",
    "models_file_schema",
    "providers_file_schema",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DOTTED = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a base URL, or None. Never quotes the URL (it may hold a secret)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        return "is not a valid URL"
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host, e.g. https://api.example.com/v1"
    if parts.username is not None or parts.password is not None:
        return (
            "must not hold credentials (user:password@): put the API key in the environment "
            "variable that api_key_env names, and extra headers in the provider's options"
        )
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    return None


class _Frozen(BaseModel):
    # Inputs stay out of error texts: a base_url or an option may hold a secret.
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, hide_input_in_errors=True
    )


class RetryConfig(_Frozen):
    """How the runtime retries a failed call (the runtime is the only one that retries)."""

    max_attempts: int = Field(
        3, ge=1, le=20, description="Attempts in all, the first one included (1 = no retry)."
    )
    initial_backoff: float = Field(
        0.5, ge=0, description="Seconds: the backoff ceiling before the first retry."
    )
    max_backoff: float = Field(
        20.0, ge=0, description="Seconds: the largest backoff ceiling (exponential growth stops)."
    )
    multiplier: float = Field(2.0, ge=1, description="Growth factor of the backoff ceiling.")
    max_retry_after: float = Field(
        60.0,
        ge=0,
        description="Seconds: the longest server Retry-After honoured; a longer one is not waited "
        "for and the error is raised (or the fallback tried).",
    )
    total_wait_budget: float = Field(
        120.0, ge=0, description="Seconds: the most a call may spend waiting between attempts."
    )


class TimeoutConfig(_Frozen):
    """Time limits of one attempt; null means no limit."""

    connect: float | None = Field(10.0, gt=0, description="Seconds to open a connection.")
    read: float | None = Field(
        120.0, gt=0, description="Seconds to wait for any bytes of the reply."
    )
    total: float | None = Field(
        600.0, gt=0, description="Seconds one attempt may take from start to end."
    )
    first_token: float | None = Field(
        None, gt=0, description="Streams: seconds until the first text arrives."
    )
    idle: float | None = Field(
        None, gt=0, description="Streams: the longest gap in seconds between two chunks."
    )


class LimitsConfig(_Frozen):
    """Client-side limits, enforced without busy waiting."""

    max_concurrency: int | None = Field(None, ge=1, description="Most requests in flight at once.")
    requests_per_minute: int | None = Field(
        None, ge=1, description="Most requests started in any 60-second window."
    )


#: The HTTP engines under the seam (``runtime.http``): httpx2 (the default) or aiohttp (the
#: ``aiohttp`` extra). The names are the YAML's ``http_engine`` values.
HTTPEngine = Literal["httpx2", "aiohttp"]
HTTP_ENGINES: tuple[HTTPEngine, ...] = ("httpx2", "aiohttp")

_KiB = 1024
_MiB = 1024 * _KiB


class HTTPConfig(_Frozen):
    """Bounds on what the runtime reads from a server, and how its HTTP client behaves.

    Sizes are decoded bytes (after gzip/deflate), counted as they arrive; a reply that goes
    past its bound ends the read with ``ResponseTooLargeError``.
    """

    max_body_bytes: int = Field(
        32 * _MiB, ge=1, description="Bytes: the largest JSON reply read (decoded size)."
    )
    max_error_body_bytes: int = Field(
        256 * _KiB,
        ge=1,
        description="Bytes: the most read of an error reply (HTTP 4xx/5xx); the rest is not "
        "read, and the error is still raised as its status says.",
    )
    max_stream_bytes: int = Field(
        256 * _MiB,
        ge=1,
        description="Bytes: the largest event stream read (decoded size, all events together).",
    )
    max_sse_line_bytes: int = Field(
        4 * _MiB, ge=1, description="Bytes: the longest line of an event stream."
    )
    max_sse_event_bytes: int = Field(
        16 * _MiB, ge=1, description="Bytes: the largest event of an event stream (its data)."
    )
    cookies: bool = Field(
        False,
        description="Keep cookies a server sets and send them back on later calls (off: an "
        "API client is not a browser).",
    )


class RuntimeSettings(_Frozen):
    """Runtime-wide defaults, overridden per provider and per model."""

    retry: RetryConfig | None = Field(None, description="Default retry policy.")
    timeouts: TimeoutConfig | None = Field(None, description="Default time limits.")
    http: HTTPConfig | None = Field(
        None, description="Default bounds on replies and HTTP client behaviour."
    )
    http_engine: HTTPEngine | None = Field(
        None,
        description="The HTTP library under every provider's client: httpx2 (the default) or "
        "aiohttp (pip install 'llm-runtime[aiohttp]'; higher throughput). Same limits, "
        "timeouts and errors on both.",
    )


class ProviderConfig(_Frozen):
    """One provider: the class that speaks its protocol and how to reach it."""

    name: str = Field(description="The provider's name (its key in providers.yaml).")
    class_path: str = Field(
        alias="class",
        pattern=_DOTTED,
        description="Dotted import path of an LLMProvider subclass, e.g. "
        "runtime.providers.openai_provider.OpenAIProvider.",
    )
    api_key_env: str | None = Field(
        None, pattern=_ENV_NAME, description="Environment variable that holds the API key."
    )
    base_url: str | None = Field(
        None,
        description="Base URL of the service's API: an http(s) URL without credentials.",
        json_schema_extra={"format": "uri"},
    )
    base_url_env: str | None = Field(
        None,
        pattern=_ENV_NAME,
        description="Environment variable whose value, when set, overrides base_url.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider-specific settings, passed to the provider's _initialize_client().",
    )
    retry: RetryConfig | None = Field(None, description="Retry policy for this provider.")
    timeouts: TimeoutConfig | None = Field(None, description="Time limits for this provider.")
    limits: LimitsConfig | None = Field(None, description="Concurrency and rate limits.")
    http: HTTPConfig | None = Field(
        None,
        description="Bounds on replies and HTTP client behaviour for this provider (merged "
        "field by field over settings.http).",
    )
    http_engine: HTTPEngine | None = Field(
        None,
        description="The HTTP library under this provider's client (overrides "
        "settings.http_engine): httpx2 or aiohttp (pip install 'llm-runtime[aiohttp]').",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        problem = base_url_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


class Capabilities(_Frozen):
    """What a model can do; unset means "as far as its provider class can" (see the README)."""

    tools: bool | None = Field(None, description="Whether the model can call tools.")
    parallel_tool_calls: bool | None = Field(
        None, description="Whether it may call several tools in one turn."
    )
    images: bool | None = Field(None, description="Whether it takes images as input.")
    structured_output: Literal["native", "tool", "none"] | None = Field(
        None,
        description="How it follows a JSON Schema: native (the vendor's JSON-schema output), "
        "tool (a forced tool call), or none.",
    )
    reasoning: Literal["effort", "budget", "none"] | None = Field(
        None,
        description="How its reasoning is controlled: an effort level, a token budget, or not.",
    )


class PricingConfig(_Frozen):
    """A model's prices in US dollars per million tokens; wins over genai-prices."""

    input: float = Field(ge=0, description="USD per million prompt tokens (not cached).")
    output: float = Field(ge=0, description="USD per million output tokens (reasoning too).")
    cached_input: float | None = Field(
        None, ge=0, description="USD per million prompt tokens read from the vendor's cache."
    )
    cache_write: float | None = Field(
        None, ge=0, description="USD per million prompt tokens written to the vendor's cache."
    )
    as_of: str | None = Field(None, description="When these prices were read, e.g. 2026-11-30.")


class ModelConfig(_Frozen):
    """One model: which provider serves it, its defaults and its parameter policy."""

    id: str = Field(description="The model id callers use (its key in models.yaml).")
    label: str = Field("", description="Human-readable name; defaults to the id.")
    provider: str = Field(description="Name of a provider in providers.yaml.")
    provider_model: str = Field(
        "", description="The model name sent to the provider; defaults to the id."
    )
    max_tokens_param: str = Field(
        "max_tokens",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Wire name of the output-token limit, e.g. max_tokens or "
        "max_completion_tokens.",
    )
    default_temperature: float | None = Field(
        None, ge=0, le=2, description="Temperature used when the call gives none."
    )
    default_max_tokens: int | None = Field(
        None, ge=1, description="Output-token limit used when the call gives none."
    )
    supports_streaming: bool = Field(
        True, description="Whether the provider streams this model's output."
    )
    requires_api_key_env: str | None = Field(
        None,
        pattern=_ENV_NAME,
        description="Environment variable holding the key for this model (overrides the "
        "provider's api_key_env).",
    )
    base_url_env: str | None = Field(
        None,
        pattern=_ENV_NAME,
        description="Environment variable whose value, when set, is this model's base URL.",
    )
    extra_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra parameters sent with every call (call arguments override them).",
    )
    unsupported_params: list[str] = Field(
        default_factory=list,
        description="Parameters this model refuses (e.g. temperature on a reasoning model).",
    )
    on_unsupported: Literal["drop", "error"] = Field(
        "drop",
        description="What to do when a call carries an unsupported or conflicting parameter: "
        "drop it (logged) or raise InvalidRequestError.",
    )
    fixed_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters pinned to one value (e.g. temperature: 1 on a reasoning model).",
    )
    context_window: int | None = Field(
        None, ge=1, description="Tokens the model can attend to (prompt plus output)."
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Model ids tried in order when this one fails after its retries.",
    )
    system_prompt: str | None = Field(
        None,
        description="A system message sent first when the call brings none of its own.",
    )
    chat_template: str | None = Field(
        None,
        description="Jinja2 template that turns chat messages into one prompt, for providers "
        "that take plain text (rendered in a sandbox).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider-specific settings of this model (e.g. gguf for the local provider).",
    )
    pricing: PricingConfig | None = Field(
        None,
        description="Prices of this model (USD per million tokens); without it, genai-prices' "
        "table is used when installed.",
    )
    capabilities: Capabilities = Field(
        default_factory=lambda: Capabilities(),
        description="What the model supports: tools, images, structured output, reasoning.",
    )
    retry: RetryConfig | None = Field(None, description="Retry policy for this model.")
    timeouts: TimeoutConfig | None = Field(None, description="Time limits for this model.")
    limits: LimitsConfig | None = Field(None, description="Concurrency and rate limits.")

    @model_validator(mode="after")
    def _fill_defaults(self) -> ModelConfig:
        if not self.label:
            object.__setattr__(self, "label", self.id)
        if not self.provider_model:
            object.__setattr__(self, "provider_model", self.id)
        return self

    @field_validator("unsupported_params", "fallbacks")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for item in value:
            if item in seen:
                raise ValueError(f"{item!r} is listed twice")
            seen.add(item)
        return value


class TemplateConfig(_Frozen):
    """A named prompt template (models.yaml ``templates:``): messages from variables."""

    name: str = Field(description="The template's name (its key under templates:).")
    description: str = Field("", description="What the template is for.")
    system: str | None = Field(
        None, description="Jinja2 template of the system message (optional)."
    )
    user: str = Field(description="Jinja2 template of the user message.")
    variables: list[str] = Field(
        default_factory=list,
        description="The variables the template takes; every one must be given by the call.",
    )

    @field_validator("variables")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"{name!r} is not a variable name (letters, digits and _)")
        if len(set(value)) != len(value):
            raise ValueError("a variable is listed twice")
        return value


class Catalog(_Frozen):
    """Everything loaded from providers.yaml and models.yaml."""

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    templates: dict[str, TemplateConfig] = Field(default_factory=dict)
    settings: RuntimeSettings = Field(default_factory=lambda: RuntimeSettings())
    sources: tuple[str, ...] = ()


# --------------------------------------------------------------------------- JSON Schemas


def _entry_schema(model: type[BaseModel], key_field: str) -> dict[str, Any]:
    """The JSON Schema of one YAML entry: the model's schema minus the field that is its key."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["properties"].pop(key_field)
    schema["required"] = [r for r in schema.get("required", []) if r != key_field]
    if not schema["required"]:
        del schema["required"]
    return schema


def _file_schema(
    key: str, entry: dict[str, Any], title: str, description: str, extra: dict[str, Any]
) -> dict[str, Any]:
    defs = entry.pop("$defs", {})
    defs["entry"] = entry
    properties: dict[str, Any] = {
        "extends": {
            "enum": ["bundled"],
            "description": "Merge this file's entries over the bundled file's (an entry of "
            "the same name replaces the bundled one whole).",
        },
        key: {
            "type": "object",
            "description": f"Map of {key[:-1]} name to its settings.",
            "propertyNames": {"pattern": _NAME},
            "additionalProperties": {"$ref": "#/$defs/entry"},
        },
        **extra,
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": [key],
        "additionalProperties": False,
        "$defs": defs,
    }


def providers_file_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of providers.yaml, generated from ``ProviderConfig``."""
    entry = _entry_schema(ProviderConfig, "name")
    settings = RuntimeSettings.model_json_schema(mode="validation")
    defs = entry.setdefault("$defs", {})
    defs.update(settings.pop("$defs", {}))
    defs["RuntimeSettings"] = settings
    return _file_schema(
        "providers",
        entry,
        "llm-runtime providers",
        "Providers: the class that speaks each wire protocol and how to reach the service.",
        {"settings": {"$ref": "#/$defs/RuntimeSettings", "description": "Runtime-wide defaults."}},
    )


def models_file_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of models.yaml, generated from ``ModelConfig``."""
    template = _entry_schema(TemplateConfig, "name")
    template.pop("$defs", None)
    return _file_schema(
        "models",
        _entry_schema(ModelConfig, "id"),
        "llm-runtime models",
        "Models: which provider serves each model id, with defaults and parameter policy; "
        "and named prompt templates.",
        {
            "templates": {
                "type": "object",
                "description": "Map of template name to a named prompt template.",
                "propertyNames": {"pattern": _NAME},
                "additionalProperties": template,
            }
        },
    )
