"""The runtime and the CLI tell the truth: fallbacks, dropped parameters, per-call arguments,
every failure of a chain, where an error happened, and no secret on the way."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import errors, load_runtime
from runtime.cli import main
from runtime.testing import Script, ScriptedProvider
from tests.loopback import LoopbackServer, Reply
from tests.unit.helpers import catalog, runtime_for
from tests.wire.openai_fakes import completion

REPO = Path(__file__).resolve().parent.parent.parent
TENANT_KEY = "sk-tenant-key-4c1d9e2f7a"


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


class Run:
    """``main`` in-process; what it printed, and no traceback ever."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.out = self.err = ""

    def __call__(self, *argv: str) -> int:
        self._capsys.readouterr()
        buffer = io.StringIO()
        code = main(list(argv), out=buffer)
        captured = self._capsys.readouterr()
        self.out, self.err = buffer.getvalue() + captured.out, captured.err
        assert "Traceback" not in self.out + self.err
        return code


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.chdir(tmp_path)
    return Run(capsys)


def files(tmp_path: Path, models: str, providers: str | None = None) -> list[str]:
    providers = (
        providers
        or """\
        providers:
          flaky:
            class: runtime.testing.ScriptedProvider
            options:
              replies:
                - {error: server, message: the first model is down}
          good:
            class: runtime.testing.ScriptedProvider
        """
    )
    return [
        "--providers",
        write(tmp_path / "providers.yaml", providers),
        "--models",
        write(tmp_path / "models.yaml", models),
    ]


CHAIN = """\
    models:
      first:
        provider: flaky
        retry: {max_attempts: 1}
        fallbacks: [second]
      second:
        provider: good
    """


# --------------------------------------------------------------------------- fallbacks


async def test_completion_lists_the_models_that_failed_before_the_answer() -> None:
    rt = runtime_for(
        catalog(
            {
                "a": {"provider": "s", "fallbacks": ["b"], "retry": {"max_attempts": 1}},
                "b": {"provider": "s"},
            }
        )
    )
    provider = rt.provider_for("a")
    assert isinstance(provider, ScriptedProvider)
    provider.queue(errors.ServerError("down"), "from b")
    result = await rt.generate(model="a", prompt="x")
    assert (result.text, result.model) == ("from b", "b")
    [(model, error)] = result.failures
    assert model == "a"
    assert isinstance(error, errors.ServerError)
    assert (error.model_id, error.message) == ("a", "down")


@pytest.mark.parametrize("stream", [False, True], ids=["no-stream", "stream"])
def test_cli_says_which_model_answered_and_why(run: Run, tmp_path: Path, stream: bool) -> None:
    argv = ["complete", *files(tmp_path, CHAIN), "-m", "first", "hello"]
    if not stream:
        argv.insert(1, "--no-stream")
    assert run(*argv) == 0
    assert run.out == "hello\n"
    assert run.err.splitlines() == [
        "llm-runtime: warning: model 'first' failed (ServerError); falling back to 'second'",
        "llm-runtime: answered by fallback model 'second' ('first' failed: "
        "[provider 'flaky', model 'first'] the first model is down)",
    ]


def test_verbose_shows_retries(run: Run, tmp_path: Path) -> None:
    models = CHAIN.replace(
        "retry: {max_attempts: 1}", "retry: {max_attempts: 2, initial_backoff: 0}"
    )
    argv = ["complete", *files(tmp_path, models), "-m", "first", "hello"]
    assert run(*argv) == 0
    quiet = run.err
    assert run(*argv[:1], "-v", *argv[1:]) == 0
    retry_line = (
        "llm-runtime: info: model 'first' attempt 1 failed (ServerError); retrying in 0.00s"
    )
    assert retry_line in run.err.splitlines()
    assert retry_line not in quiet


def test_a_failed_chain_names_every_failure_the_readme_example(run: Run, tmp_path: Path) -> None:
    models = write(
        tmp_path / "models.yaml",
        """\
        extends: bundled
        models:
          my-fast-model:
            label: Llama 3.3 70B on Groq
            provider: groq
            provider_model: llama-3.3-70b-versatile
            fallbacks: [gpt-4o-mini]
        """,
    )
    assert run("complete", "--models", models, "-m", "my-fast-model", "hi") == 1
    assert run.err == (
        "llm-runtime: warning: model 'my-fast-model' failed (MissingAPIKeyError); falling back "
        "to 'gpt-4o-mini'\n"
        "llm-runtime complete: model 'my-fast-model' (provider 'groq') needs an API key: set "
        "the environment variable GROQ_API_KEY\n"
        "  and every fallback failed too (1):\n"
        "  - model 'gpt-4o-mini': model 'gpt-4o-mini' (provider 'openai') needs an API key: "
        "set the environment variable OPENAI_API_KEY\n"
    )


async def test_the_chain_error_keeps_the_first_type_catchable(tmp_path: Path) -> None:
    models = write(
        tmp_path / "models.yaml",
        """\
        extends: bundled
        models:
          my-fast-model: {provider: groq, fallbacks: [gpt-4o-mini]}
        """,
    )
    rt = load_runtime(models=models, environ={})
    with pytest.raises(errors.MissingAPIKeyError) as info:
        await rt.generate(model="my-fast-model", prompt="hi")
    assert info.value.env_var == "GROQ_API_KEY"
    assert [(m, type(e).__name__, getattr(e, "env_var", None)) for m, e in info.value.failures] == [
        ("gpt-4o-mini", "MissingAPIKeyError", "OPENAI_API_KEY")
    ]


# --------------------------------------------------------------------------- dropped parameters


POLICY_MODELS = """\
    models:
      reasoner:
        provider: good
        unsupported_params: [temperature]
        fixed_params: {top_p: 1}
    """


def test_explain_lists_what_the_policy_dropped_or_pinned(run: Run, tmp_path: Path) -> None:
    argv = ["explain", *files(tmp_path, POLICY_MODELS), "-m", "reasoner", "--temperature", "0.3"]
    assert run(*argv, "-p", "top_p=0.5", "hi") == 0
    assert json.loads(run.out)["parameter_policy"] == [
        "temperature: dropped (unsupported_params of this model)",
        "top_p: pinned to 1 (fixed_params of this model; got 0.5)",
    ]
    assert run.err.splitlines() == [
        "llm-runtime: warning: model 'reasoner': parameter 'temperature' dropped "
        "(unsupported_params of this model)",
        "llm-runtime: warning: model 'reasoner': parameter 'top_p' pinned to 1 "
        "(fixed_params of this model; got 0.5)",
    ]


def test_complete_warns_about_a_dropped_parameter(run: Run, tmp_path: Path) -> None:
    argv = ["complete", *files(tmp_path, POLICY_MODELS), "-m", "reasoner", "--temperature", "1"]
    assert run(*argv, "hi") == 0
    assert run.out == "hi\n"
    assert run.err == (
        "llm-runtime: warning: model 'reasoner': parameter 'temperature' dropped "
        "(unsupported_params of this model)\n"
    )


# --------------------------------------------------------------------------- per-call arguments


async def test_timeout_per_call_is_a_total_limit_not_a_body_field() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s", "retry": {"max_attempts": 1}}}))
    provider = rt.provider_for("m")
    assert isinstance(provider, ScriptedProvider)
    provider.queue(Script(text="slow", delay=30), "quick")
    with pytest.raises(errors.ProviderTimeoutError) as info:
        await rt.generate(model="m", prompt="x", timeout=0.05)
    assert str(info.value) == (
        "[provider 's', model 'm'] no reply within the total time limit of 0.05s "
        "(timeout= of this call)"
    )
    assert (await rt.generate(model="m", prompt="x", timeout=5)).text == "quick"
    assert all("timeout" not in call.params for call in provider.calls)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"base_url": "http://elsewhere"},
            "base_url cannot be given per call: set base_url (or base_url_env) for the "
            "provider in providers.yaml",
            id="base_url",
        ),
        pytest.param(
            {"timeout": 0}, "timeout must be a positive number of seconds, got 0", id="timeout"
        ),
        pytest.param({"api_key": 12}, "api_key must be a string", id="api_key"),
    ],
)
async def test_runtime_owned_arguments_that_cannot_be_honoured_are_refused(
    kwargs: dict[str, object], message: str
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    with pytest.raises(errors.InvalidRequestError) as info:
        await rt.generate(model="m", prompt="x", **kwargs)
    assert str(info.value) == message


OPENAI = "runtime.providers.openai_provider.OpenAIProvider"


async def test_api_key_per_call_is_sent_as_the_key_and_never_in_the_body() -> None:
    with LoopbackServer() as server:
        server.queue(Reply(200, completion("hi")), Reply(200, completion("again")))
        cat = catalog(
            {"m": {"provider": "p"}},
            {"p": {"class": OPENAI, "base_url": server.url + "/v1", "api_key_env": "P_API_KEY"}},
        )
        rt = runtime_for(cat, environ={})  # no key in the environment at all
        try:
            assert (await rt.generate(model="m", prompt="x", api_key=TENANT_KEY)).text == "hi"
            assert (await rt.generate(model="m", prompt="y", api_key=TENANT_KEY)).text == "again"
        finally:
            await rt.aclose()
    first, second = server.requests
    assert first.headers["authorization"] == f"Bearer {TENANT_KEY}"
    assert set(first.json) == {"model", "messages"}
    assert second.headers["authorization"] == f"Bearer {TENANT_KEY}"


async def test_api_key_per_call_is_redacted_in_explain() -> None:
    cat = catalog(
        {"m": {"provider": "p"}},
        {"p": {"class": OPENAI, "base_url": "http://127.0.0.1:9/v1", "api_key_env": "P_API_KEY"}},
    )
    rt = runtime_for(cat, environ={})
    described = await rt.explain(model="m", prompt="x", api_key=TENANT_KEY)
    assert described["api_key"] == "given for this call"
    assert described["request"]["headers"]["authorization"] == "***"
    assert TENANT_KEY not in json.dumps(described)
    assert "api_key" not in described["request"]["json"]


def test_cli_explain_with_an_api_key_parameter_does_not_print_it(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("explain", "-m", "gpt-4o-mini", "-p", f"api_key={TENANT_KEY}", "hi") == 0
    assert TENANT_KEY not in run.out + run.err
    assert json.loads(run.out)["request"]["headers"]["authorization"] == "***"


async def test_a_key_per_call_with_a_space_is_refused_without_echo() -> None:
    rt = runtime_for(
        catalog(
            {"m": {"provider": "p"}}, {"p": {"class": OPENAI, "base_url": "http://127.0.0.1:9/v1"}}
        )
    )
    with pytest.raises(errors.ConfigError) as info:
        await rt.generate(model="m", prompt="x", api_key="sk-bad key-123456789")
    assert "sk-bad" not in str(info.value)
    assert str(info.value) == (
        "the api_key passed to this call holds spaces, control or non-ASCII characters that "
        "no HTTP header can carry; set it to the key alone"
    )


async def test_instances_for_keys_per_call_are_bounded_and_closed() -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    seen = [rt.provider_for("m", api_key=f"sk-tenant-{i:04d}-abcdef") for i in range(70)]
    assert len({id(p) for p in seen}) == 70
    assert len(rt._instances._tenants) == 64
    await asyncio_sleep_a_bit()
    assert rt.provider_for("m", api_key="sk-tenant-0069-abcdef") is seen[-1]  # kept, reused
    await rt.aclose()


async def asyncio_sleep_a_bit() -> None:
    import asyncio

    for _ in range(3):
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- errors say where


async def test_errors_name_the_catalog_model_and_the_vendor_model() -> None:
    cat = catalog(
        {"alias": {"provider": "p", "provider_model": "vendor-x", "retry": {"max_attempts": 1}}},
        {"p": {"class": OPENAI, "base_url": "http://127.0.0.1:9/v1"}},
    )
    rt = runtime_for(cat)
    try:
        with pytest.raises(errors.ProviderConnectionError) as info:
            await rt.generate(model="alias", prompt="x")
    finally:
        await rt.aclose()
    assert (info.value.model_id, info.value.model) == ("alias", "vendor-x")
    assert str(info.value).startswith("[provider 'p', model 'alias' ('vendor-x' at the vendor)] ")


# --------------------------------------------------------------------------- the CLI's habits


def test_version(run: Run) -> None:
    from runtime import __version__

    assert run("--version") == 0
    assert run.out == f"llm-runtime {__version__}\n"


def test_stdin_and_a_prompt_together(run: Run, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("line one\nline two\n", encoding="utf-8")
    with notes.open(encoding="utf-8") as handle, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", handle)
        assert run("complete", "-m", "scripted-echo", "summarize") == 0
    assert run.out == "line one\nline two\n\nsummarize\n"


def test_stdin_and_a_prompt_in_a_real_pipe(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runtime", "complete", "-m", "scripted-echo", "summarize"],
        input="the notes",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("LLM_RUNTIME_")},
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "the notes\n\nsummarize\n", "")


def test_deeply_nested_json_parameter_is_a_usage_error(run: Run) -> None:
    value = "[" * 100_000 + "]" * 100_000
    assert run("explain", "-m", "scripted-echo", "-p", f"x={value}", "hi") == 2
    assert run.err.endswith("error: argument -p/--param: the value of 'x' is nested too deeply\n")


@pytest.mark.parametrize(
    ("param", "message"),
    [
        pytest.param("tools=5", "tools: expected a list of tools, got int", id="tools-not-a-list"),
        pytest.param(
            "temperature=NaN",
            "temperature: nan is not a finite number (JSON cannot carry it)",
            id="temperature-nan",
        ),
        pytest.param(
            "x=1e999", "x: inf is not a finite number (JSON cannot carry it)", id="overflow"
        ),
        pytest.param(
            'stop=["a", [-Infinity]]',
            "stop[1][0]: -inf is not a finite number (JSON cannot carry it)",
            id="nested-infinity",
        ),
    ],
)
def test_parameters_no_request_can_carry_are_one_line_errors(
    run: Run, param: str, message: str
) -> None:
    assert run("explain", "-m", "gpt-4o-mini", "-p", param, "hi") == 1
    assert run.err == f"llm-runtime explain: {message}\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"messages": 5}, "messages: expected a list of messages, got int", id="msgs"),
        pytest.param(
            {"prompt": "hi", "tools": 5}, "tools: expected a list of tools, got int", id="tools"
        ),
        pytest.param(
            {"prompt": "hi", "top_p": float("inf")},
            "top_p: inf is not a finite number (JSON cannot carry it)",
            id="top-p-inf",
        ),
    ],
)
async def test_arguments_of_the_wrong_kind_are_invalid_requests_not_type_errors(
    kwargs: dict[str, object], message: str
) -> None:
    rt = runtime_for(catalog({"m": {"provider": "s"}}))
    for call in (rt.generate, rt.explain):
        with pytest.raises(errors.InvalidRequestError) as info:
            await call(model="m", **kwargs)  # type: ignore[operator]
        assert str(info.value) == message
    await rt.aclose()


# --------------------------------------------------------------------------- secrets in config


def test_models_and_providers_json_redact_secret_options(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUTH_API_KEY", "sk-truth-env-value-99")
    argv = files(
        tmp_path,
        """\
        models:
          m:
            provider: good
            requires_api_key_env: TRUTH_API_KEY
            extra_params: {api_key: sk-inline-secret-1234, note: sk-truth-env-value-99}
            options: {token: tok-inline-secret-5678}
        """,
    )
    assert run("models", "--json", *argv) == 0
    [model] = json.loads(run.out)
    assert model["extra_params"] == {"api_key": "***", "note": "***"}
    assert model["options"] == {"token": "***"}
    for secret in ("sk-inline-secret-1234", "tok-inline-secret-5678", "sk-truth-env-value-99"):
        assert secret not in run.out


async def test_a_short_key_does_not_mangle_explain() -> None:
    cat = catalog(
        {"m": {"provider": "p"}},
        {"p": {"class": OPENAI, "base_url": "http://127.0.0.1:9/v1", "api_key_env": "P_API_KEY"}},
    )
    rt = runtime_for(cat, environ={"P_API_KEY": "on"})
    described = await rt.explain(model="m", prompt="application/json")
    assert described["request"]["headers"]["content-type"] == "application/json"
    assert described["request"]["headers"]["authorization"] == "***"
    assert described["request"]["json"]["messages"][0]["content"] == "application/json"


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        pytest.param(
            "https://user:hunter2-secret@api.example.com/v1",
            "must not hold credentials (user:password@): put the API key in the environment "
            "variable that api_key_env names, and extra headers in the provider's options",
            id="credentials",
        ),
        pytest.param(
            "ftp://api.example.com",
            "must be an http:// or https:// URL with a host, e.g. https://api.example.com/v1",
            id="scheme",
        ),
        pytest.param(
            "api.example.com/v1",
            "must be an http:// or https:// URL with a host, e.g. https://api.example.com/v1",
            id="no-scheme",
        ),
    ],
)
def test_base_url_must_be_http_without_credentials(
    run: Run, tmp_path: Path, base_url: str, message: str
) -> None:
    providers = f"""\
        providers:
          p:
            class: runtime.testing.ScriptedProvider
            base_url: {base_url}
        """
    argv = files(tmp_path, "models:\n  m: {provider: p}\n", providers)
    assert run("validate", *argv) == 1
    assert run.err == (
        "llm-runtime validate: 1 problem in the configuration:\n"
        f"  {tmp_path / 'providers.yaml'}:4:15: providers.p.base_url: {message}\n"
    )
    assert "hunter2" not in run.err


async def test_base_url_from_the_environment_with_credentials_is_refused_by_name() -> None:
    cat = catalog(
        {"m": {"provider": "p"}},
        {"p": {"class": OPENAI, "base_url_env": "P_BASE_URL"}},
    )
    rt = runtime_for(cat, environ={"P_BASE_URL": "https://u:hunter2-secret@h.example/v1"})
    with pytest.raises(errors.ConfigError) as info:
        await rt.generate(model="m", prompt="x")
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith(
        "the environment variable P_BASE_URL (base URL of provider 'p'): must not hold credentials"
    )


# --------------------------------------------------------------------------- validate --strict


STRICT_MODELS = """\
    extends: bundled
    models:
      mine:
        provider: keyed
        fallbacks: [gpt-4o-mini]
    """
STRICT_PROVIDERS = """\
    extends: bundled
    providers:
      keyed:
        class: runtime.testing.ScriptedProvider
        api_key_env: MINE_API_KEY
    """


def test_strict_checks_the_keys_of_your_models_and_their_fallbacks_only(
    run: Run, tmp_path: Path
) -> None:
    argv = files(tmp_path, STRICT_MODELS, STRICT_PROVIDERS)
    assert run("validate", "--strict", *argv) == 1
    lines = run.err.splitlines()
    assert lines[0] == "llm-runtime validate: 2 problems in the configuration:"
    assert lines[1].endswith(": models.gpt-4o-mini: environment variable OPENAI_API_KEY is not set")
    assert lines[2] == (
        f"  {tmp_path / 'models.yaml'}:3:3: models.mine: environment variable MINE_API_KEY is "
        "not set"
    )


def test_strict_with_model_checks_only_that_model(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = files(tmp_path, STRICT_MODELS, STRICT_PROVIDERS)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-present-123")
    assert run("validate", "--strict", "--model", "claude-sonnet", *argv) == 0
    assert run.out.startswith("OK: ")
    assert run("validate", "--strict", "--model", "claude-sonet", *argv) == 1
    assert "unknown model 'claude-sonet' (did you mean 'claude-sonnet'?)" in run.err


# --------------------------------------------------------------------------- the console script


def test_the_console_script_imports_a_provider_module_beside_the_yaml(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("llm-runtime")
    if not script.exists():
        pytest.fail(f"the console script is not installed next to {sys.executable}")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "beside_provider.py").write_text(
        textwrap.dedent(
            """\
            from runtime.providers.base import LLMProvider

            class Beside(LLMProvider):
                async def completion(self, prompt, model, temperature, max_tokens, **kwargs):
                    return f"beside: {prompt}"
            """
        ),
        encoding="utf-8",
    )
    providers = write(conf / "providers.yaml", "providers:\n  b: {class: beside_provider.Beside}\n")
    models = write(conf / "models.yaml", "models:\n  m: {provider: b}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    argv = [str(script), "complete", "--providers", providers, "--models", models, "-m", "m", "hi"]
    proc = subprocess.run(
        argv,
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "beside: hi\n", "")


def test_a_class_module_that_is_nowhere_says_where_it_looked(run: Run, tmp_path: Path) -> None:
    argv = files(
        tmp_path,
        "models:\n  m: {provider: p}\n",
        "providers:\n  p: {class: nowhere_module.Provider}\n",
    )
    assert run("complete", *argv, "-m", "m", "hi") == 1
    assert run.err == (
        "llm-runtime complete: provider 'p': class 'nowhere_module.Provider': cannot import "
        "module 'nowhere_module': No module named 'nowhere_module'; looked on sys.path and in "
        f"{tmp_path}: put nowhere_module.py beside providers.yaml, install its package, or add "
        "its folder to PYTHONPATH\n"
    )
