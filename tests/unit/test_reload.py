"""Hot reload: the snapshot swaps atomically, clients are kept or closed once, bad files change
nothing, and the optional watcher picks up edits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from runtime import errors, load_runtime
from runtime.testing import ScriptedProvider

HERE = __name__


class CountingProvider(ScriptedProvider):
    """A scripted provider that counts how often each instance is closed."""

    closes: ClassVar[dict[int, int]] = {}

    async def aclose(self) -> None:
        CountingProvider.closes[id(self)] = CountingProvider.closes.get(id(self), 0) + 1
        await super().aclose()


def write_files(
    tmp_path: Path, *, delay: float = 0.0, model_name: str = "v1", extra_provider: bool = True
) -> tuple[Path, Path]:
    providers = tmp_path / "providers.yaml"
    models = tmp_path / "models.yaml"
    lines = [
        "providers:",
        "  p:",
        f"    class: {HERE}.CountingProvider",
        f"    options: {{delay: {delay}}}",
    ]
    model_lines = ["models:", f"  m: {{provider: p, provider_model: {model_name}}}"]
    if extra_provider:
        lines += ["  other:", f"    class: {HERE}.CountingProvider"]
        model_lines.append("  o: {provider: other}")
    providers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    models.write_text("\n".join(model_lines) + "\n", encoding="utf-8")
    return providers, models


async def test_reload_picks_up_a_changed_model_and_keeps_unchanged_clients(tmp_path: Path) -> None:
    providers, models = write_files(tmp_path)
    rt = load_runtime(providers, models)
    try:
        before = rt.provider_for("m")
        await rt.generate(model="m", prompt="x")
        write_files(tmp_path, model_name="v2")
        await rt.reload()
        after = rt.provider_for("m")
        assert after is before  # provider p did not change: same client and pool
        await rt.generate(model="m", prompt="y")
        assert isinstance(after, ScriptedProvider)
        assert [c.model for c in after.calls] == ["v1", "v2"]
        assert CountingProvider.closes.get(id(before)) is None
    finally:
        await rt.aclose()


async def test_an_invalid_file_raises_and_leaves_the_running_config(tmp_path: Path) -> None:
    providers, models = write_files(tmp_path)
    rt = load_runtime(providers, models)
    try:
        models.write_text("models:\n  m: {provider: p, colour: red}\n", encoding="utf-8")
        with pytest.raises(errors.ConfigError) as info:
            await rt.reload()
        assert f"{models}:2:20: models.m.colour: unknown key 'colour'" in str(info.value)
        assert rt.model("m").provider_model == "v1"
        assert (await rt.generate(model="m", prompt="still here")).text == "still here"
    finally:
        await rt.aclose()


async def test_calls_in_flight_finish_on_the_snapshot_they_started_with(tmp_path: Path) -> None:
    providers, models = write_files(tmp_path, delay=0.05)
    rt = load_runtime(providers, models)
    try:
        provider = rt.provider_for("m")
        assert isinstance(provider, ScriptedProvider)
        first = [asyncio.ensure_future(rt.generate(model="m", prompt=f"a{i}")) for i in range(50)]
        await asyncio.sleep(0)
        write_files(tmp_path, delay=0.05, model_name="v2")
        await rt.reload()
        in_flight = sum(not task.done() for task in first)
        second = [asyncio.ensure_future(rt.generate(model="m", prompt=f"b{i}")) for i in range(50)]
        await asyncio.gather(*first, *second)
        seen = {c.as_prompt(): c.model for c in provider.calls}
        assert in_flight > 0  # the swap happened while calls were running
        assert {seen[f"a{i}"] for i in range(50)} == {"v1"}  # they kept their snapshot
        assert {seen[f"b{i}"] for i in range(50)} == {"v2"}
        assert len(seen) == 100
    finally:
        await rt.aclose()


async def test_a_changed_or_removed_provider_is_closed_once_after_its_last_call(
    tmp_path: Path,
) -> None:
    providers, models = write_files(tmp_path, delay=0.2)
    rt = load_runtime(providers, models)
    try:
        old_p = rt.provider_for("m")
        old_other = rt.provider_for("o")
        running = asyncio.ensure_future(rt.generate(model="m", prompt="slow"))
        await asyncio.sleep(0.05)
        write_files(tmp_path, delay=0.0, extra_provider=False)  # p's options change, other goes
        await rt.reload()
        for _ in range(5):
            await asyncio.sleep(0)  # the close of an idle instance runs as its own task
        assert CountingProvider.closes.get(id(old_other)) == 1  # idle: closed at once
        assert CountingProvider.closes.get(id(old_p)) is None  # still answering
        assert (await running).text == "slow"
        for _ in range(5):
            await asyncio.sleep(0)
        assert CountingProvider.closes.get(id(old_p)) == 1
        new_p = rt.provider_for("m")
        assert new_p is not old_p
        with pytest.raises(errors.UnknownModelError):
            rt.model("o")
    finally:
        await rt.aclose()
    assert CountingProvider.closes.get(id(old_p)) == 1  # not twice
    assert CountingProvider.closes.get(id(new_p)) == 1


async def test_the_watcher_reloads_after_an_edit(tmp_path: Path) -> None:
    providers, models = write_files(tmp_path)
    rt = load_runtime(providers, models)
    try:
        rt.watch(interval=0.02, debounce=0.02)
        await asyncio.sleep(0.05)
        write_files(tmp_path, model_name="v3")
        for _ in range(200):
            if rt.model("m").provider_model == "v3":
                break
            await asyncio.sleep(0.02)
        assert rt.model("m").provider_model == "v3"
    finally:
        await rt.aclose()
    assert rt._watcher is not None
    assert rt._watcher.done()


async def test_reload_without_files_needs_a_catalog() -> None:
    from runtime import LLMRuntime
    from tests.unit.helpers import catalog

    rt = LLMRuntime(catalog({"m": {"provider": "s"}}))
    with pytest.raises(errors.RuntimeClosedError, match="pass the new catalog"):
        await rt.reload()
    new = catalog({"n": {"provider": "s"}})
    assert await rt.reload(new) is new
    assert list(rt.models) == ["n"]
    await rt.aclose()


async def test_load_runtime_watch_true_starts_the_watcher_in_a_running_loop(
    tmp_path: Path,
) -> None:
    rt = load_runtime(*write_files(tmp_path), watch=True)
    try:
        assert rt._watcher is not None
        assert not rt._watcher.done()
    finally:
        await rt.aclose()
    assert rt._watcher.done()


def test_load_runtime_watch_true_outside_a_loop_starts_at_first_use(tmp_path: Path) -> None:
    rt = load_runtime(*write_files(tmp_path), watch=True)
    assert rt._watcher is None  # no loop yet: nothing to run a watcher on

    async def use() -> bool:
        async with rt:
            assert rt._watcher is not None
            return not rt._watcher.done()

    assert asyncio.run(use())
    assert rt._watcher is not None
    assert rt._watcher.done()


def test_watching_is_off_by_default(tmp_path: Path) -> None:
    rt = load_runtime(*write_files(tmp_path))

    async def use() -> None:
        async with rt:
            await rt.generate(model="m", prompt="x")

    asyncio.run(use())
    assert rt._watcher is None


async def test_a_changed_runtime_wide_http_setting_reaches_the_providers(tmp_path: Path) -> None:
    """settings.http is part of what defines a provider's instances: a reload that changes it
    replaces them, as a change of the provider's own http: does."""
    from runtime.errors import ResponseTooLargeError
    from tests.loopback import LoopbackServer, Reply
    from tests.wire.openai_fakes import completion

    def write(limit: int) -> tuple[Path, Path]:
        providers = tmp_path / "providers.yaml"
        models = tmp_path / "models.yaml"
        providers.write_text(
            "settings:\n"
            f"  http: {{max_body_bytes: {limit}}}\n"
            "providers:\n"
            "  p:\n"
            "    class: runtime.providers.openai_provider.OpenAIProvider\n"
            f"    base_url: {server.url}\n",
            encoding="utf-8",
        )
        models.write_text(
            "models:\n  m: {provider: p, retry: {max_attempts: 1}}\n", encoding="utf-8"
        )
        return providers, models

    answer = "x" * 5000
    with LoopbackServer() as server:
        server.queue(Reply(body=completion(answer)), Reply(body=completion(answer)))
        rt = load_runtime(*write(1_000_000))
        try:
            assert await rt.completion("hi", "m") == answer
            write(1000)
            await rt.reload()
            with pytest.raises(ResponseTooLargeError, match=r"max_body_bytes = 1000 bytes"):
                await rt.completion("hi", "m")
        finally:
            await rt.aclose()
