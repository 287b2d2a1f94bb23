"""API keys with stray whitespace or non-ASCII characters never reach a request or an error."""

from __future__ import annotations

import traceback
from collections.abc import Iterator

import pytest

from runtime import errors
from runtime.config import Catalog, ModelConfig, ProviderConfig, RuntimeSettings
from runtime.service import LLMRuntime
from tests.loopback import LoopbackServer

SECRET = "sk-review-canary-0042"

PROVIDERS = [
    pytest.param("runtime.providers.openai_provider.OpenAIProvider", "/v1", id="openai"),
    pytest.param("runtime.providers.anthropic_provider.AnthropicProvider", "", id="anthropic"),
    pytest.param("runtime.providers.gemini_provider.GeminiProvider", "/v1beta", id="gemini"),
    pytest.param("runtime.providers.cohere_provider.CohereProvider", "", id="cohere"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def _runtime(cls: str, base_url: str, key: str) -> LLMRuntime:
    catalog = Catalog(
        providers={
            "p": ProviderConfig.model_validate(
                {"name": "p", "class": cls, "api_key_env": "P_API_KEY", "base_url": base_url}
            )
        },
        models={"m": ModelConfig(id="m", provider="p", retry={"max_attempts": 1})},
        settings=RuntimeSettings(),
    )
    return LLMRuntime(catalog, environ={"P_API_KEY": key})


@pytest.mark.parametrize("ending", [pytest.param("\r", id="cr"), pytest.param("\n", id="lf")])
@pytest.mark.parametrize(("cls", "path"), PROVIDERS)
async def test_api_key_with_line_ending_never_reaches_the_error(
    server: LoopbackServer, cls: str, path: str, ending: str
) -> None:
    rt = _runtime(cls, f"{server.url}{path}", SECRET + ending)
    try:
        with pytest.raises(errors.LLMRuntimeError) as info:
            await rt.generate(model="m", prompt="hi")
    finally:
        await rt.aclose()
    # Refused on our side or sent with the key cleaned: either way the key is not printed.
    printed = "".join(traceback.format_exception(info.value))
    assert SECRET not in printed


WIRE_CLASSES = [
    pytest.param("runtime.providers.openai_provider.OpenAIProvider", id="openai"),
    pytest.param("runtime.providers.azure_provider.AzureOpenAIProvider", id="azure"),
    pytest.param("runtime.providers.openai_sdk_provider.OpenAISDKProvider", id="sdk"),
    pytest.param("runtime.providers.anthropic_provider.AnthropicProvider", id="anthropic"),
    pytest.param("runtime.providers.gemini_provider.GeminiProvider", id="gemini"),
    pytest.param("runtime.providers.cohere_provider.CohereProvider", id="cohere"),
]


@pytest.mark.parametrize("cls_path", WIRE_CLASSES)
def test_a_base_url_with_credentials_given_in_code_is_refused_without_echo(cls_path: str) -> None:
    """Built in code (no providers.yaml to refuse it at load), a wire provider refuses
    ``user:password@`` in its base URL too: never Basic auth in place of the key, never the
    password in a repr or an error."""
    from runtime.providers.registry import import_provider_class

    cls = import_provider_class(cls_path)
    with pytest.raises(errors.ConfigError) as info:
        cls(api_key=SECRET, base_url="https://user:hunter2-pass@llm.example.com/v1")
    assert str(info.value) == (
        f"{cls.__name__}: base_url must not hold credentials (user:password@): put the API "
        "key in the environment variable that api_key_env names, and extra headers in the "
        "provider's options"
    )
    assert "hunter2" not in "".join(traceback.format_exception_only(info.value)) + repr(info.value)


def test_the_repr_of_any_provider_hides_credentials_in_its_base_url() -> None:
    from runtime.testing import ScriptedProvider

    provider = ScriptedProvider(api_key=SECRET, base_url="https://user:hunter2-pass@h.example/v1")
    assert repr(provider) == "<ScriptedProvider base_url='https://***@h.example/v1' api_key=set>"
