"""The secret canary: an API key set in the environment appears in no output, ever.

A canary key is put in every key variable the catalogs name. Then everything the runtime
shows is searched for it: reprs of providers, runtime and config objects, ``explain`` for
every bundled model (in code and through the CLI), the CLI tables, and, for calls that fail
against a loopback server that echoes the key back in its error body (as OpenAI's 401 does),
the raised exceptions with their cause/context chain, their attributes, the formatted
traceback and every log record at DEBUG, of every logger.

Not covered: a server echoing the key in a response *header* shows it in httpcore2's own
DEBUG record of the response headers, which the runtime does not produce or filter.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import LLMRuntime, ProviderError, load_runtime, loader, resources
from runtime.cli import main
from tests.loopback import LoopbackServer, Recorded, Reply

CANARY = "sk-canary-7f3a9b"


def bundled_catalog() -> Any:
    """The bundled catalog, whatever the current directory holds."""
    return loader.load_catalog(
        resources.bundled_path("providers.yaml"), resources.bundled_path("models.yaml")
    )


def bundled_key_variables() -> set[str]:
    catalog = bundled_catalog()
    names = {p.api_key_env for p in catalog.providers.values()}
    names |= {m.requires_api_key_env for m in catalog.models.values()}
    return {n for n in names if n}


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./providers.yaml: discovery finds the bundled files
    for name in {*bundled_key_variables(), "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                 "GEMINI_API_KEY", "COHERE_API_KEY", "SCRIPTED_SECRET_API_KEY"}:  # fmt: skip
        monkeypatch.setenv(name, CANARY)
    # Azure has no default endpoint; a loopback address keeps provider creation offline.
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:9")


def clean(text: str, what: str = "") -> None:
    assert CANARY not in text, f"the canary leaked in {what}: {text}"


def one_model_per_provider_class(rt: LLMRuntime) -> dict[str, str]:
    """class path -> a model id served by a provider of that class."""
    out: dict[str, str] = {}
    for model in rt.models.values():
        out.setdefault(rt.providers[model.provider].class_path, model.id)
    return out


# --------------------------------------------------------------------------- reprs


async def test_provider_instances_do_not_show_the_key(canary: None) -> None:
    rt = load_runtime()
    try:
        chosen = one_model_per_provider_class(rt)
        assert "runtime.providers.openai_provider.OpenAIProvider" in chosen
        assert "runtime.providers.anthropic_provider.AnthropicProvider" in chosen
        assert "runtime.providers.gemini_provider.GeminiProvider" in chosen
        assert "runtime.providers.cohere_provider.CohereProvider" in chosen
        for class_path, model in chosen.items():
            provider = rt.provider_for(model)  # no_network (conftest) proves it stays offline
            if (
                rt.model(model).requires_api_key_env
                or rt.providers[rt.model(model).provider].api_key_env
            ):
                assert provider.api_key == CANARY, class_path  # the key did arrive
            clean(repr(provider), f"repr of {class_path}")
            clean(str(provider), f"str of {class_path}")
            clean(repr(getattr(provider, "_client", None)), f"repr of {class_path}._client")
        clean(repr(rt), "repr(runtime)")
    finally:
        await rt.aclose()


def test_config_objects_do_not_show_the_key(canary: None) -> None:
    rt = load_runtime()
    clean(repr(rt), "repr(runtime)")
    clean(repr(rt.catalog), "repr(catalog)")
    clean(str(rt.catalog), "str(catalog)")
    for config in rt.providers.values():
        clean(repr(config), f"repr(ProviderConfig {config.name})")
    for model in rt.models.values():
        clean(repr(model), f"repr(ModelConfig {model.id})")


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
async def test_explain_every_bundled_model(canary: None, stream: bool) -> None:
    rt = load_runtime()
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    for model in rt.models:
        described = await rt.explain(model=model, messages=messages, stream=stream)
        text = json.dumps(described, default=str)
        clean(text, f"explain {model}")
        if not described["api_key_env"]:
            continue
        assert described["api_key"] == "set", model
        headers = described["request"].get("headers", {})
        for name in getattr(rt.provider_for(model), "secret_headers", ()):
            assert headers.get(name) == "***", (model, name)  # the key is there, redacted
    await rt.aclose()


def test_cli_tables(canary: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    for argv in (["models"], ["models", "--json"], ["providers"], ["providers", "--json"],
                 ["validate", "--strict"]):  # fmt: skip
        assert main(argv, out=out) == 0, argv
    captured = capsys.readouterr()
    assert "OPENAI_API_KEY (set)" in out.getvalue()
    clean(out.getvalue() + captured.out + captured.err, "CLI output")


@pytest.mark.parametrize("model", list(bundled_catalog().models))
def test_cli_explain(model: str, canary: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["explain", "-m", model, "--system", "s", "hi"], out=out) == 0
    assert main(["explain", "--stream", "-m", model, "hi"], out=out) == 0
    captured = capsys.readouterr()
    clean(out.getvalue() + captured.out + captured.err, f"explain -m {model}")


# --------------------------------------------------------------------------- failing calls


def _echo_key(request: Recorded) -> str:
    """The key as the request carried it, whichever header the protocol uses."""
    for name in ("authorization", "x-api-key", "x-goog-api-key", "api-key"):
        if name in request.headers:
            return request.headers[name].removeprefix("Bearer ")
    return request.query.get("key", "")


def _reply(status: int, style: str, request: Recorded) -> Reply:
    key = _echo_key(request)
    message = f"Incorrect API key provided: {key}"
    if style == "anthropic":
        body: Any = {"type": "error", "error": {"type": "authentication_error", "message": message}}
    elif style == "gemini":
        body = {"error": {"code": status, "message": message, "status": "UNAUTHENTICATED"}}
    else:
        body = {"error": {"message": message, "type": "invalid_request_error",
                          "code": "invalid_api_key", "param": key}}  # fmt: skip
    return Reply(status, body)


PROTOCOLS = {
    "openai": "runtime.providers.openai_provider.OpenAIProvider",
    "anthropic": "runtime.providers.anthropic_provider.AnthropicProvider",
    "gemini": "runtime.providers.gemini_provider.GeminiProvider",
    "cohere": "runtime.providers.cohere_provider.CohereProvider",
}


def _user_files(tmp_path: Path, url: str) -> tuple[Path, Path]:
    providers = ["providers:"]
    models = ["models:"]
    for name, cls in PROTOCOLS.items():
        base = url + ("/v1" if name == "openai" else "")
        providers += [f"  {name}:", f"    class: {cls}", f"    api_key_env: {name.upper()}_API_KEY",
                      f"    base_url: {base}"]  # fmt: skip
        models += [f"  {name}-model:", f"    provider: {name}", "    default_max_tokens: 5",
                   f"    fallbacks: [{name}-backup]", f"  {name}-backup:", f"    provider: {name}",
                   "    default_max_tokens: 5"]  # fmt: skip
    providers += ["  scripted:", "    class: runtime.testing.ScriptedProvider",
                  "    api_key_env: SCRIPTED_SECRET_API_KEY", "settings:",
                  "  retry: {max_attempts: 2, initial_backoff: 0, max_backoff: 0}"]  # fmt: skip
    (tmp_path / "providers.yaml").write_text("\n".join(providers) + "\n", encoding="utf-8")
    (tmp_path / "models.yaml").write_text("\n".join(models) + "\n", encoding="utf-8")
    return tmp_path / "providers.yaml", tmp_path / "models.yaml"


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions a traceback shows under it (cause, else unsuppressed context)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _check_exception(exc: BaseException) -> None:
    clean("".join(traceback.format_exception(exc)), "the formatted traceback")
    for link in _chain(exc):
        name = type(link).__name__
        clean(str(link), f"str({name})")
        clean(repr(link), f"repr({name})")
        clean(repr(link.args), f"{name}.args")
        clean(repr(vars(link)), f"vars({name})")
        for note in getattr(link, "__notes__", ()):
            clean(note, f"{name} note")


def _check_logs(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "the failing calls logged nothing: the log check proves nothing"
    for record in caplog.records:
        clean(record.getMessage(), f"log record of {record.name}")
        clean(repr(record.args), f"log record args of {record.name}")
        if record.exc_info and record.exc_info[1] is not None:
            _check_exception(record.exc_info[1])
    clean(caplog.text, "formatted logs")


@pytest.mark.parametrize("status", [401, 500], ids=["401", "500-retried-then-fallback"])
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
async def test_a_failing_call_never_shows_the_key(
    protocol: str,
    status: int,
    canary: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the runtime's and the transport's
    caplog.set_level(logging.DEBUG, logger="runtime")
    with LoopbackServer(lambda request: _reply(status, protocol, request)) as server:
        rt = load_runtime(*_user_files(tmp_path, server.url))
        async with rt:
            errors = []
            with pytest.raises(ProviderError) as info:
                await rt.generate(model=f"{protocol}-model", prompt="hi")
            errors.append(info.value)
            with pytest.raises(ProviderError) as info:
                async for _ in rt.stream(model=f"{protocol}-model", prompt="hi"):
                    pass
            errors.append(info.value)
            with pytest.raises(ProviderError) as info:
                await rt.completion("hi", f"{protocol}-backup")
            errors.append(info.value)
        sent = [_echo_key(r) for r in server.requests]
    assert set(sent) == {CANARY}  # the key did travel, and came back in every reply
    # 401 is not retried and does not fall back; 500 is retried (2 attempts) on each model.
    per_call = 1 if status == 401 else 4
    assert len(sent) == per_call * 2 + (1 if status == 401 else 2)
    for error in errors:
        assert error.status_code == status
        # The vendor's message is kept (it helps), with the key it quoted scrubbed.
        assert "Incorrect API key provided: ***" in str(error)
        _check_exception(error)
    _check_logs(caplog)


@pytest.mark.parametrize(
    ("model", "variable", "suffix", "protocol"),
    [
        pytest.param("gpt-4o-mini", "OPENAI_BASE_URL", "/v1", "openai", id="openai"),
        pytest.param("claude-haiku", "ANTHROPIC_BASE_URL", "", "anthropic", id="anthropic"),
    ],
)
async def test_bundled_models_through_base_url_env(
    model: str,
    variable: str,
    suffix: str,
    protocol: str,
    canary: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bundled rows, pointed at loopback by their *_BASE_URL variable."""
    caplog.set_level(logging.DEBUG)
    with LoopbackServer(lambda request: _reply(401, protocol, request)) as server:
        monkeypatch.setenv(variable, server.url + suffix)
        async with load_runtime() as rt:
            with pytest.raises(ProviderError) as info:
                await rt.completion("hi", model)
        assert [_echo_key(r) for r in server.requests] == [CANARY]
    assert "Incorrect API key provided: ***" in str(info.value)
    _check_exception(info.value)
    _check_logs(caplog)


async def test_a_provider_exception_that_quotes_the_key_is_scrubbed(
    canary: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A foreign exception escaping a provider, its text holding the key: the runtime wraps it."""
    from runtime.testing import ScriptedProvider

    caplog.set_level(logging.DEBUG, logger="runtime")
    providers, models = _user_files(tmp_path, "http://127.0.0.1:9")
    with models.open("a", encoding="utf-8") as handle:
        handle.write("  scripted-model:\n    provider: scripted\n")
    rt = load_runtime(providers, models)
    provider = rt.provider_for("scripted-model")
    assert isinstance(provider, ScriptedProvider)
    assert provider.api_key == CANARY
    provider.queue(RuntimeError(f"client blew up with key={CANARY}"))  # for generate()
    provider.queue(RuntimeError(f"client blew up with key={CANARY}"))  # for stream()
    with pytest.raises(ProviderError) as call_error:
        await rt.generate(model="scripted-model", prompt="hi")
    with pytest.raises(ProviderError) as stream_error:
        async for _ in rt.stream(model="scripted-model", prompt="hi"):
            pass
    await rt.aclose()
    for error in (call_error.value, stream_error.value):
        assert "the provider raised RuntimeError: client blew up with key=***" in str(error)
        _check_exception(error)


async def test_our_own_error_raised_by_a_provider_that_quotes_the_key_is_scrubbed(
    canary: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider that raises one of *our* errors with the key in it (a seed-style provider
    writing ``raise ServerError(f"... {self.api_key}")``): one scrubbing path covers it too,
    for the configured key and for a key given per call, its message and its cause."""
    from runtime.errors import ServerError
    from runtime.testing import ScriptedProvider

    caplog.set_level(logging.DEBUG, logger="runtime")
    providers, models = _user_files(tmp_path, "http://127.0.0.1:9")
    with models.open("a", encoding="utf-8") as handle:
        handle.write("  scripted-model:\n    provider: scripted\n")
    per_call = "sk-tenant-per-call-41c9e2"
    rt = load_runtime(providers, models)

    def leaky(key: str) -> ServerError:
        error = ServerError(f"upstream refused key {key} (retry later)")
        error.__cause__ = RuntimeError(f"socket said {key}")
        return error

    errors = []
    for key, kwargs in ((CANARY, {}), (per_call, {"api_key": per_call})):
        provider = rt.provider_for("scripted-model", api_key=kwargs.get("api_key"))
        assert isinstance(provider, ScriptedProvider)
        assert provider.api_key == key
        provider.queue(*(leaky(key) for _ in range(4)))  # two attempts each, generate and stream
        with pytest.raises(ServerError) as call_error:
            await rt.generate(model="scripted-model", prompt="hi", **kwargs)
        with pytest.raises(ServerError) as stream_error:
            async for _ in rt.stream(model="scripted-model", prompt="hi", **kwargs):
                pass
        assert len(provider.calls) == 4  # retried: the errors were raised
        errors += [call_error.value, stream_error.value]
    await rt.aclose()
    for error in errors:
        assert str(error) == (
            "[provider 'scripted', model 'scripted-model'] upstream refused key *** (retry later)"
        )
        assert per_call not in "".join(traceback.format_exception(error))
        _check_exception(error)
    assert per_call not in caplog.text
    _check_logs(caplog)


async def test_our_own_error_raised_while_a_provider_is_built_is_scrubbed(canary: None) -> None:
    from runtime import ConfigError, LLMProvider, register_provider
    from runtime.providers.registry import unregister_provider
    from tests.unit.helpers import catalog, runtime_for

    class Picky(LLMProvider):
        def _initialize_client(self, **kwargs: Any) -> None:
            raise ConfigError(f"key {self.api_key} is not in the expected form")

        async def completion(
            self, prompt: str, model: str, temperature: float, max_tokens: int, **kwargs: Any
        ) -> str:
            raise AssertionError("never built")

    register_provider("picky", Picky)
    try:
        cat = catalog({"m": {"provider": "picky"}}, {"picky": {"api_key_env": "PICKY_KEY"}})
        rt = runtime_for(cat, environ={"PICKY_KEY": CANARY})
        with pytest.raises(ConfigError) as info:
            await rt.generate(model="m", prompt="hi")
        await rt.aclose()
    finally:
        unregister_provider("picky")
    assert "key *** is not in the expected form" in str(info.value)
    _check_exception(info.value)
