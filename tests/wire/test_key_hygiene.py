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
