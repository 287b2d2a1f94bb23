"""The lean paths: what fast start and the hot path skip, and that skipping changes nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime import loader, resources, yamlpos
from runtime.errors import ConfigError, MissingAPIKeyError, ProviderTimeoutError, ServerError
from runtime.providers import registry
from runtime.providers.registry import register_provider, unregister_provider
from runtime.service import LLMRuntime
from runtime.testing import Script, ScriptedProvider

from .helpers import catalog


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: {b: }\n", 5, id="empty-flow-value"),
        pytest.param("a: [x, {b: }]\n", 9, id="empty-flow-value-nested"),
        pytest.param("? a\n: b\n", 0, id="explicit-key"),
        pytest.param("a: |#\n  x\n", 3, id="block-header-comment"),
        pytest.param("a:\tb\n", 2, id="tab-between-tokens"),
        pytest.param("t: |\n  {{ messages[1:] }}\n  {a: }\n", None, id="in-block-scalar"),
        pytest.param("t: '{a: } messages[1:]'\n", None, id="in-single-quotes"),
        pytest.param('t: "{a: }\\t ? x"\n', None, id="in-double-quotes"),
        pytest.param("a: 1  # {b: } and ? x\n", None, id="in-comment"),
        pytest.param("# {b: }\na: 1\n", None, id="in-comment-line"),
        pytest.param("t: '#'\na: {b: }\n", 12, id="quoted-hash-is-no-comment"),
    ],
)
def test_only_text_outside_scalars_and_comments_sends_yaml_to_the_python_parser(
    text: str, expected: int | None
) -> None:
    assert yamlpos._pyyaml_reads_otherwise(text) == expected


@pytest.mark.skipif(not yamlpos.LIBYAML, reason="PyYAML was built without libyaml")
@pytest.mark.parametrize("name", ["providers.yaml", "models.yaml"])
def test_the_bundled_files_are_read_by_libyaml_alone(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the pure-Python parser read a bundled file again")

    monkeypatch.setattr(yamlpos, "_python_read", refuse)
    data, positions = yamlpos.load_yaml_file(resources.bundled_path(name))
    assert isinstance(data, dict)
    assert set(data) >= {name.removesuffix(".yaml")}
    assert positions


# --------------------------------------------------------------------------- fast start


def _run(code: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/"
    )
    return json.loads(out.stdout)


def test_import_runtime_imports_the_package_alone_and_names_load_on_first_use() -> None:
    loaded = _run(
        "import json, sys, runtime\n"
        "before = sorted(m for m in sys.modules if m.startswith('runtime'))\n"
        "names = [runtime.LLMRuntime.__name__, runtime.ConfigError.__module__,\n"
        "         runtime.errors.__name__, runtime.types.Message.__name__]\n"
        "print(json.dumps([before, names, 'pydantic' in sys.modules]))\n"
    )
    assert loaded == [
        ["runtime"],
        ["LLMRuntime", "runtime.errors", "runtime.errors", "Message"],
        True,  # runtime.LLMRuntime needs the config models
    ]


def test_every_public_name_resolves_and_an_unknown_one_is_an_attribute_error() -> None:
    import runtime

    for name in runtime.__all__:
        assert getattr(runtime, name) is not None, name
    assert set(runtime.__all__) <= set(dir(runtime))
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = runtime.no_such_name


def test_loading_the_bundled_catalog_imports_no_provider_module() -> None:
    loaded = _run(
        "import json, sys, runtime\n"
        "rt = runtime.load_runtime()\n"
        "assert rt.models\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.startswith('runtime.providers.')\n"
        "                        and m.rpartition('.')[2] not in ('base', 'registry', 'wire'))))\n"
    )
    assert loaded == []


#: What only a failure, a hook, a limit, a price, a reload or explain() needs.
LATER = (
    "difflib",
    "runtime.engine.explain",
    "runtime.engine.limits",
    "runtime.engine.output",
    "runtime.engine.reload",
    "runtime.engine.retry",
    "runtime.hook_events",
    "runtime.ledger",
    "runtime.pricing",
    "runtime.status",
)


def test_ready_imports_nothing_that_only_a_later_event_needs() -> None:
    """Ready: import, the bundled catalog loaded, the first provider built."""
    loaded = _run(
        "import json, sys, runtime\n"
        "rt = runtime.load_runtime()\n"
        "rt.provider_for('llamacpp/default')\n"
        f"print(json.dumps([m for m in {LATER!r} if m in sys.modules]))\n"
    )
    assert loaded == []


def test_the_bundled_options_are_valid_for_their_classes() -> None:
    """What every load takes on trust (not importing each provider module to check it)."""
    catalog = loader.load_catalog(
        resources.bundled_path("providers.yaml"),
        resources.bundled_path("models.yaml"),
        strict=True,  # imports each used class and checks every entry's options
        environ={},
    )
    with_options = [name for name, p in catalog.providers.items() if p.options]
    assert with_options  # the check above had something to check
    for name in with_options:
        config = catalog.providers[name]
        cls = registry.import_provider_class(config.class_path)
        options = getattr(cls, "Options", None)
        assert options is not None, name
        options.model_validate(config.options)


def test_a_users_entry_over_a_bundled_provider_still_has_its_options_checked(
    tmp_path: Path,
) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "extends: bundled\n"
        "providers:\n"
        "  mine:\n"
        "    class: runtime.providers.openai_provider.OpenAIProvider\n"
        "    options: {organisation: x}\n",
        encoding="utf-8",
    )
    models = tmp_path / "models.yaml"
    models.write_text(
        "extends: bundled\nmodels:\n  m: {provider: local, options: {nope: 1}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        loader.load_catalog(providers, models, environ={})
    text = str(caught.value)
    assert f"{providers}:5:" in text
    assert "unknown option 'organisation' (did you mean 'organization'?)" in text
    assert f"{models}:3:" in text
    assert "unknown option 'nope'" in text


# --------------------------------------------------------------------------- the hot path


def test_the_shared_instance_follows_a_key_set_or_changed_after_loading() -> None:
    environ: dict[str, str] = {}
    rt = LLMRuntime(
        catalog({"m": {"provider": "s"}}, providers={"s": {"api_key_env": "S_KEY"}}),
        environ=environ,
    )

    async def main() -> list[Any]:
        seen: list[Any] = []
        with pytest.raises(MissingAPIKeyError):
            await rt.generate(model="m", prompt="hi")
        environ["S_KEY"] = "first"
        await rt.generate(model="m", prompt="hi")
        first = rt.provider_for("m")
        seen.append(first.api_key)
        await rt.generate(model="m", prompt="hi")
        seen.append(rt.provider_for("m") is first)
        environ["S_KEY"] = "second"
        await rt.generate(model="m", prompt="hi")
        seen.append(rt.provider_for("m").api_key)
        del environ["S_KEY"]
        with pytest.raises(MissingAPIKeyError):
            await rt.generate(model="m", prompt="hi")
        await rt.aclose()
        return seen

    assert asyncio.run(main()) == ["first", True, "second"]


def test_a_class_registered_after_the_first_call_serves_the_next_one() -> None:
    rt = LLMRuntime(catalog({"m": {"provider": "s"}}), environ={})

    class Mine(ScriptedProvider):
        pass

    async def main() -> list[str]:
        names = [type(rt.provider_for("m")).__name__]
        await rt.generate(model="m", prompt="hi")
        register_provider("s", Mine)
        try:
            await rt.generate(model="m", prompt="hi")
            names.append(type(rt.provider_for("m")).__name__)
        finally:
            unregister_provider("s")
        await rt.aclose()
        return names

    assert asyncio.run(main()) == ["ScriptedProvider", "Mine"]


def test_requests_carry_the_plans_timeouts_and_capabilities() -> None:
    rt = LLMRuntime(
        catalog(
            {
                "m": {"provider": "s", "capabilities": {"tools": True}, "fallbacks": ["f"]},
                "f": {"provider": "s", "timeouts": {"connect": 3, "read": 4}},
            },
            settings={"timeouts": {"connect": 1, "read": 2}, "retry": {"initial_backoff": 0}},
        ),
        environ={},
    )

    async def main() -> list[tuple[Any, ...]]:
        provider = rt.provider_for("m")
        assert isinstance(provider, ScriptedProvider)
        provider.queue(ServerError("down", provider="s"), ServerError("down", provider="s"))
        provider.queue(ServerError("down", provider="s"))
        await rt.generate(model="m", prompt="hi")
        await rt.aclose()
        return [
            (r.model, r.connect_timeout, r.read_timeout, dict(r.capabilities))
            for r in provider.calls
        ]

    assert asyncio.run(main()) == [
        ("m", 1.0, 2.0, {"tools": True}),
        ("m", 1.0, 2.0, {"tools": True}),
        ("m", 1.0, 2.0, {"tools": True}),
        ("f", 3.0, 4.0, {}),
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_one_deadline_per_attempt_fires_as_the_total_limit(stream: bool) -> None:
    rt = LLMRuntime(
        catalog(
            {"m": {"provider": "s"}},
            settings={"timeouts": {"total": 0.05}, "retry": {"max_attempts": 1}},
        ),
        environ={},
    )

    async def call() -> None:
        if stream:
            async for _ in rt.stream(model="m", prompt="hi"):
                pass
        else:
            await rt.generate(model="m", prompt="hi")

    async def main() -> str:
        provider = rt.provider_for("m")
        assert isinstance(provider, ScriptedProvider)
        provider.queue(Script(text="late", delay=5.0))
        try:
            with pytest.raises(ProviderTimeoutError) as caught:
                await call()
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
            return caught.value.message
        finally:
            await rt.aclose()

    message = asyncio.run(main())
    assert "total time limit of 0.05s" in message
    assert "(timeouts.total)" in message


def test_a_cancellation_from_outside_is_not_taken_for_the_deadline() -> None:
    rt = LLMRuntime(catalog({"m": {"provider": "s"}}), environ={})

    async def main() -> bool:
        provider = rt.provider_for("m")
        assert isinstance(provider, ScriptedProvider)
        provider.queue(Script(text="late", delay=5.0))
        task = asyncio.ensure_future(rt.generate(model="m", prompt="hi"))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        finally:
            await rt.aclose()
        return False

    assert asyncio.run(main()) is True


def test_a_load_pauses_the_garbage_collector_and_resumes_it_even_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    during: list[bool] = []
    real_merge = loader._merge

    def merge(*args: Any) -> Any:
        during.append(gc.isenabled())
        return real_merge(*args)

    monkeypatch.setattr(loader, "_merge", merge)
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  s: {class: runtime.testing.ScriptedProvider}\n")
    good = tmp_path / "models.yaml"
    good.write_text("models:\n  m: {provider: s}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m: {provider: nope}\n")
    original = gc.isenabled()
    try:
        gc.enable()
        loader.load_catalog(providers, good)
        assert during == [False, False]  # paused while the sections were built
        assert gc.isenabled()
        with pytest.raises(ConfigError):
            loader.load_catalog(providers, bad)
        assert gc.isenabled()  # resumed after a failed load too
        gc.disable()  # a caller that turned it off keeps it off
        loader.load_catalog(providers, good)
        assert not gc.isenabled()
    finally:
        if original:
            gc.enable()
        else:
            gc.disable()
