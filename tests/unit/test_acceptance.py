"""Acceptance: the seed README's provider, in a user module, works unchanged from YAML.

``seed_provider.py`` (the seed's ``YourProvider`` verbatim, with a fake ``YourClient``) is
copied into a temporary directory put on ``sys.path``: it is imported as a user's module,
outside this package. A user providers.yaml names it by ``class:``; a user models.yaml gives
the model's defaults, ``max_tokens_param`` and ``extra_params``. The runtime's documented
rename rule (runtime.providers.base._completion_args): when ``max_tokens_param`` is not
``max_tokens``, the limit travels as a keyword argument of that name and the positional
``max_tokens`` is None.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import Completion, LLMProvider, load_runtime, register_provider
from runtime.providers.registry import unregister_provider

MODULE = "acme_llm_seed"  # a name no installed package uses
SEED_SOURCE = Path(__file__).with_name("seed_provider.py")
KEY = "your-test-key-123"

PROVIDERS = f"""\
providers:
  yours:
    class: {MODULE}.YourProvider
    api_key_env: YOUR_API_KEY
    base_url: https://llm.acme.example/v1
    options:
      region: eu-west
      timeout: 12
"""

MODELS = """\
models:
  seed-model:
    label: The seed's provider, renamed limit
    provider: yours
    provider_model: acme-large-2
    default_temperature: 0.3
    default_max_tokens: 123
    max_tokens_param: max_new_tokens
    extra_params: {top_k: 40}
  seed-plain:
    provider: yours
    default_temperature: 0.5
    default_max_tokens: 50
    max_tokens_param: max_tokens
"""


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory outside the package holding the user's module, first on sys.path."""
    directory = tmp_path / "user_code"
    directory.mkdir()
    shutil.copyfile(SEED_SOURCE, directory / f"{MODULE}.py")
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.setenv("YOUR_API_KEY", KEY)
    yield directory
    sys.modules.pop(MODULE, None)


@pytest.fixture
def yaml_files(tmp_path: Path) -> tuple[Path, Path]:
    providers = tmp_path / "providers.yaml"
    models = tmp_path / "models.yaml"
    providers.write_text(PROVIDERS, encoding="utf-8")
    models.write_text(MODELS, encoding="utf-8")
    return providers, models


def client_of(provider: LLMProvider) -> Any:
    client = provider._client
    assert type(client).__name__ == "YourClient"
    assert type(client).__module__ == MODULE  # the user's module, not tests.unit.seed_provider
    return client


async def test_seed_provider_from_yaml_gets_defaults_key_url_and_options(
    user_dir: Path, yaml_files: tuple[Path, Path]
) -> None:
    rt = load_runtime(*yaml_files, strict=True)  # strict: the class path imports
    async with rt:
        text = await rt.completion("Hello", model="seed-model")
        assert text == "acme-large-2: Hello"
        provider = rt.provider_for("seed-model")
        assert type(provider).__module__ == MODULE
        assert provider.api_key == KEY
        assert provider.base_url == "https://llm.acme.example/v1"
        client = client_of(provider)
        assert client.init_kwargs == {
            "api_key": KEY,
            "base_url": "https://llm.acme.example/v1",
            "region": "eu-west",
            "timeout": 12,
        }
        assert client.calls == [
            {
                "prompt": "Hello",
                "model": "acme-large-2",
                "temperature": 0.3,
                "max_tokens": None,  # the limit travels under max_tokens_param
                "max_new_tokens": 123,
                "top_k": 40,
            }
        ]
    assert client.closed  # rt.aclose() closed the user's client


async def test_call_arguments_win_over_model_defaults(
    user_dir: Path, yaml_files: tuple[Path, Path]
) -> None:
    async with load_runtime(*yaml_files) as rt:
        await rt.completion("Hi", "seed-model", temperature=0.9, max_tokens=7, top_k=5, stop=["\n"])
        await rt.completion("Hi", "seed-model", max_new_tokens=9)  # the wire name works too
        calls = client_of(rt.provider_for("seed-model")).calls
    assert calls == [
        {"prompt": "Hi", "model": "acme-large-2", "temperature": 0.9, "max_tokens": None,
         "max_new_tokens": 7, "top_k": 5, "stop": ["\n"]},
        {"prompt": "Hi", "model": "acme-large-2", "temperature": 0.3, "max_tokens": None,
         "max_new_tokens": 9, "top_k": 40},
    ]  # fmt: skip


async def test_max_tokens_param_max_tokens_is_positional(
    user_dir: Path, yaml_files: tuple[Path, Path]
) -> None:
    async with load_runtime(*yaml_files) as rt:
        result = await rt.generate(model="seed-plain", prompt="Hi")
        calls = client_of(rt.provider_for("seed-plain")).calls
    assert isinstance(result, Completion)
    assert (result.text, result.model, result.provider) == ("seed-plain: Hi", "seed-plain", "yours")
    assert result.finish_reason == "unknown"  # the seed interface returns text only
    assert calls == [{"prompt": "Hi", "model": "seed-plain", "temperature": 0.5, "max_tokens": 50}]


async def test_messages_reach_the_seed_provider_as_one_prompt(
    user_dir: Path, yaml_files: tuple[Path, Path]
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    async with load_runtime(*yaml_files) as rt:
        await rt.generate(model="seed-plain", messages=messages)
        calls = client_of(rt.provider_for("seed-plain")).calls
    assert calls[0]["prompt"] == "System: Be brief.\n\nUser: Hi\n\nAssistant:"


async def test_stream_yields_one_chunk(user_dir: Path, yaml_files: tuple[Path, Path]) -> None:
    async with load_runtime(*yaml_files) as rt:
        stream = rt.stream(model="seed-plain", prompt="Hi")
        chunks = [chunk async for chunk in stream]
        assert chunks == ["seed-plain: Hi"]
        assert stream.completion is not None
        assert stream.completion.text == "seed-plain: Hi"
        renamed = [chunk async for chunk in rt.stream(model="seed-model", prompt="Yo")]
        assert renamed == ["acme-large-2: Yo"]
        # One provider instance serves both models (same provider and credentials).
        calls = client_of(rt.provider_for("seed-model")).calls
    assert calls == [
        {"prompt": "Hi", "model": "seed-plain", "temperature": 0.5, "max_tokens": 50},
        {"prompt": "Yo", "model": "acme-large-2", "temperature": 0.3, "max_tokens": None,
         "max_new_tokens": 123, "top_k": 40},
    ]  # fmt: skip


async def test_explain_shows_the_seed_call(user_dir: Path, yaml_files: tuple[Path, Path]) -> None:
    async with load_runtime(*yaml_files) as rt:
        described = await rt.explain(model="seed-model", prompt="Hi")
    assert described["class"] == f"{MODULE}.YourProvider"
    assert described["api_key"] == "set"
    assert described["request"] == {
        "call": "YourProvider.completion",
        "args": {"prompt": "Hi", "model": "acme-large-2", "temperature": 0.3,
                 "max_tokens": None, "max_new_tokens": 123, "top_k": 40},
    }  # fmt: skip
    assert KEY not in repr(described)


def test_the_console_script_runs_the_user_provider(
    user_dir: Path, yaml_files: tuple[Path, Path], tmp_path: Path
) -> None:
    providers, models = yaml_files
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(PYTHONPATH=str(user_dir), YOUR_API_KEY=KEY)
    config = ["--providers", str(providers), "--models", str(models)]
    for argv, expected in (
        (["complete", *config, "-m", "seed-model", "hi"], "acme-large-2: hi\n"),
        (["complete", "--no-stream", *config, "-m", "seed-plain", "hi"], "seed-plain: hi\n"),
        (["validate", "--strict", *config], f"OK: 1 providers, 2 models ({providers}, {models}) "
                                            "[strict]\n"),
    ):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "runtime", *argv],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, ""), argv


async def test_register_provider_without_a_providers_entry(
    user_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    your_provider = importlib.import_module(MODULE).YourProvider
    providers = tmp_path / "other-providers.yaml"
    models = tmp_path / "registered-models.yaml"
    providers.write_text(
        "providers:\n  scripted:\n    class: runtime.testing.ScriptedProvider\n", encoding="utf-8"
    )
    models.write_text(
        textwrap.dedent("""\
            models:
              registered:
                provider: yours
                requires_api_key_env: YOUR_API_KEY
                base_url_env: YOUR_BASE_URL
                default_temperature: 0.2
                default_max_tokens: 64
                max_tokens_param: max_new_tokens
                extra_params: {top_k: 40}
            """),
        encoding="utf-8",
    )
    monkeypatch.setenv("YOUR_BASE_URL", "http://127.0.0.1:9/v1")
    register_provider("yours", your_provider)
    try:
        async with load_runtime(providers, models, strict=True) as rt:
            assert "yours" not in rt.providers
            assert await rt.completion("Hello", "registered", top_k=3) == "registered: Hello"
            provider = rt.provider_for("registered")
            assert type(provider) is your_provider
            client = client_of(provider)
    finally:
        unregister_provider("yours")
    assert client.init_kwargs == {"api_key": KEY, "base_url": "http://127.0.0.1:9/v1"}
    assert client.calls == [
        {"prompt": "Hello", "model": "registered", "temperature": 0.2, "max_tokens": None,
         "max_new_tokens": 64, "top_k": 3},
    ]  # fmt: skip
