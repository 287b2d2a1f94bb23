"""The command line: exit codes, tables, JSON, explain (secrets redacted), complete, schema.

Most tests call ``runtime.cli.main(argv, out=...)`` in-process (stderr through capsys);
a few run the real ``python -m runtime`` process to prove the same from the outside.
User YAML files in tmp_path script the answers (ScriptedProvider ``replies:``).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import loader
from runtime.cli import main

CANARY = "sk-canary-7f3a9b"
REPO = Path(__file__).resolve().parent.parent.parent

PROVIDERS = """\
providers:
  scripted:
    class: runtime.testing.ScriptedProvider
  canned:
    class: runtime.testing.ScriptedProvider
    options:
      replies:
        - text: canned answer
          finish_reason: length
  failing:
    class: runtime.testing.ScriptedProvider
    options:
      replies:
        - {error: authentication, message: the scripted key was refused}
  keyed:
    class: runtime.testing.ScriptedProvider
    api_key_env: CLI_TEST_API_KEY
"""

MODELS = """\
models:
  echo:
    label: Echo
    provider: scripted
  canned:
    provider: canned
    supports_streaming: false
  failing:
    provider: failing
  keyed:
    provider: keyed
    provider_model: keyed-v1
"""


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./providers.yaml to discover: without --providers the bundled catalog is used."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture
def user_files(tmp_path: Path) -> list[str]:
    providers = tmp_path / "providers.yaml"
    models = tmp_path / "models.yaml"
    providers.write_text(PROVIDERS, encoding="utf-8")
    models.write_text(MODELS, encoding="utf-8")
    return ["--providers", str(providers), "--models", str(models)]


class CLI:
    """Runs ``main`` in-process and keeps what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.out = ""
        self.err = ""

    def __call__(self, *argv: str) -> int:
        self._capsys.readouterr()
        buffer = io.StringIO()
        code = main(list(argv), out=buffer)
        captured = self._capsys.readouterr()
        self.out = buffer.getvalue() + captured.out  # --help writes to sys.stdout itself
        self.err = captured.err
        assert "Traceback" not in self.out + self.err
        return code


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(capsys)


@pytest.fixture
def canary_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "CLI_TEST_API_KEY"):
        monkeypatch.setenv(name, CANARY)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith("LLM_RUNTIME_")
    }
    env.update(extra)
    return env


def run_module(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *argv],
        cwd=cwd,
        env=subprocess_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --------------------------------------------------------------------------- validate


def test_validate_the_bundled_catalog(cli: CLI) -> None:
    catalog = loader.load_catalog()
    assert cli("validate") == 0
    expected = (
        f"OK: {len(catalog.providers)} providers, {len(catalog.models)} models "
        f"({', '.join(catalog.sources)})\n"
    )
    assert cli.out == expected
    assert re.fullmatch(r"OK: \d+ providers, \d+ models \(\S+providers\.yaml, \S+models\.yaml\)\n",
                        cli.out)  # fmt: skip
    assert cli.err == ""


def test_validate_user_files(cli: CLI, user_files: list[str]) -> None:
    assert cli("validate", *user_files) == 0
    assert cli.out == f"OK: 4 providers, 4 models ({user_files[1]}, {user_files[3]})\n"


def test_validate_strict_with_every_key_set(
    cli: CLI, user_files: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_TEST_API_KEY", CANARY)
    assert cli("validate", "--strict", *user_files) == 0
    assert cli.out == f"OK: 4 providers, 4 models ({user_files[1]}, {user_files[3]}) [strict]\n"
    assert CANARY not in cli.out + cli.err


def test_invalid_config_prints_every_problem_and_exits_1(cli: CLI, tmp_path: Path) -> None:
    providers = tmp_path / "p.yaml"
    models = tmp_path / "m.yaml"
    providers.write_text(
        "providers:\n  scripted:\n    class: runtime.testing.ScriptedProvider\n    colour: red\n",
        encoding="utf-8",
    )
    models.write_text(
        textwrap.dedent("""\
            models:
              echo:
                provider: scriptd
                default_temperature: hot
              other:
                provider: scripted
                fallbacks: [nope]
            """),
        encoding="utf-8",
    )
    assert cli("validate", "--providers", str(providers), "--models", str(models)) == 1
    assert cli.out == ""
    assert cli.err == (
        "llm-runtime validate: 4 problems in the configuration:\n"
        f"  {providers}:4:5: providers.scripted.colour: unknown key 'colour'\n"
        f"  {models}:3:15: models.echo.provider: unknown provider 'scriptd' "
        "(did you mean 'scripted'?)\n"
        f"  {models}:4:26: models.echo.default_temperature: expected a number or null, "
        "got a string ('hot')\n"
        f"  {models}:7:17: models.other.fallbacks[0]: unknown model 'nope'\n"
    )


def test_strict_names_the_missing_variable_never_a_value(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = tmp_path / "providers.yaml"
    models = tmp_path / "models.yaml"
    providers.write_text(
        "providers:\n  s:\n    class: runtime.testing.ScriptedProvider\n"
        "    api_key_env: CLI_SET_API_KEY\n",
        encoding="utf-8",
    )
    models.write_text(
        "models:\n  a:\n    provider: s\n  b:\n    provider: s\n"
        "    requires_api_key_env: CLI_UNSET_API_KEY\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CLI_SET_API_KEY", CANARY)
    assert cli("validate", "--strict", "--providers", str(providers), "--models", str(models)) == 1
    assert cli.err == (
        "llm-runtime validate: 1 problem in the configuration:\n"
        f"  {models}:4:3: models.b: environment variable CLI_UNSET_API_KEY is not set\n"
    )
    assert CANARY not in cli.out + cli.err


def test_strict_with_an_empty_key_variable(
    cli: CLI, user_files: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_TEST_API_KEY", "   ")
    assert cli("validate", "--strict", *user_files) == 1
    assert "models.keyed: environment variable CLI_TEST_API_KEY is empty" in cli.err


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "the following arguments are required: COMMAND", id="no-command"),
        pytest.param(["frobnicate"], "invalid choice: 'frobnicate'", id="unknown-command"),
        pytest.param(
            ["explain", "hi"], "the following arguments are required: -m/--model", id="explain-no-m"
        ),
        pytest.param(
            ["complete", "hi"],
            "the following arguments are required: -m/--model",
            id="complete-no-m",
        ),
        pytest.param(["models", "--bogus"], "unrecognized arguments: --bogus", id="unknown-flag"),
        pytest.param(
            ["complete", "-m", "echo", "--max-tokens", "many", "hi"],
            "argument --max-tokens: invalid int value: 'many'",
            id="bad-int",
        ),
        pytest.param(
            ["explain", "-m", "echo", "-p", "novalue", "hi"],
            "expected KEY=VALUE, got 'novalue'",
            id="bad-param",
        ),
        pytest.param(["schema", "tools"], "invalid choice: 'tools'", id="bad-schema-kind"),
    ],
)
def test_usage_errors_exit_2_without_traceback(cli: CLI, argv: list[str], message: str) -> None:
    assert cli(*argv) == 2
    assert cli.out == ""
    assert cli.err.startswith("usage: llm-runtime")
    assert message in cli.err
    assert cli.err.rstrip("\n").splitlines()[-1].startswith("llm-runtime")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["complete", "-m", "scripted-echo"], id="no-prompt"),
        pytest.param(["complete", "-m", "scripted-echo", ""], id="empty"),
        pytest.param(["complete", "-m", "scripted-echo", " \n\t"], id="blank"),
        pytest.param(["explain", "-m", "scripted-echo", "  "], id="explain-blank"),
    ],
)
def test_empty_prompts_are_refused(cli: CLI, argv: list[str]) -> None:
    assert cli(*argv) == 2
    assert cli.out == ""
    command = argv[0]
    assert cli.err == (
        f"llm-runtime {command}: error: the prompt is empty: give it as an argument or on "
        "standard input\n"
    )


def test_help_exits_0(cli: CLI) -> None:
    assert cli("--help") == 0
    for command in ("validate", "models", "providers", "explain", "complete", "schema"):
        assert command in cli.out


# --------------------------------------------------------------------------- models, providers


def test_models_table(cli: CLI, user_files: list[str]) -> None:
    assert cli("models", *user_files) == 0
    unknown = ["?"] * 5  # tools, parallel, images, schema, reasoning: none declared
    assert [line.split() for line in cli.out.splitlines()] == [
        ["MODEL", "PROVIDER", "PROVIDER", "MODEL", "STREAM", "TOOLS", "PARALLEL", "IMAGES",
         "SCHEMA", "REASONING", "PRICE", "LABEL"],
        ["echo", "scripted", "echo", "yes", *unknown, "none", "Echo"],
        ["canned", "canned", "canned", "no", *unknown, "none", "canned"],
        ["failing", "failing", "failing", "yes", *unknown, "none", "failing"],
        ["keyed", "keyed", "keyed-v1", "yes", *unknown, "none", "keyed"],
    ]  # fmt: skip
    assert cli.out.splitlines()[1].startswith("echo     scripted  echo            yes     ?  ")


def test_models_json(cli: CLI, user_files: list[str]) -> None:
    assert cli("models", "--json", *user_files) == 0
    data = json.loads(cli.out)
    assert [m["id"] for m in data] == ["echo", "canned", "failing", "keyed"]
    unknown = dict.fromkeys(
        ("tools", "parallel_tool_calls", "images", "structured_output", "reasoning")
    )
    assert data[0] == {"id": "echo", "label": "Echo", "provider": "scripted",
                       "provider_model": "echo", "supports": unknown,
                       "price_source": "none", "price": None}  # fmt: skip
    assert data[1]["supports_streaming"] is False


def test_bundled_models_json_lists_every_model(cli: CLI) -> None:
    assert cli("models", "--json") == 0
    assert [m["id"] for m in json.loads(cli.out)] == list(loader.load_catalog().models)


def test_providers_table_shows_key_state_never_the_key(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("providers") == 0
    lines = cli.out.splitlines()
    assert lines[0].split() == ["PROVIDER", "CLASS", "BASE", "URL", "API", "KEY"]
    openai = next(line for line in lines if line.startswith("openai "))
    assert openai.split() == [
        "openai",
        "runtime.providers.openai_provider.OpenAIProvider",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        "(unset)",
    ]
    scripted = next(line for line in lines if line.startswith("scripted "))
    assert scripted.split()[-2:] == ["-", "-"]  # no base URL, no key

    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    assert cli("providers") == 0
    assert "OPENAI_API_KEY (set)" in cli.out
    assert "ANTHROPIC_API_KEY (unset)" in cli.out
    assert CANARY not in cli.out + cli.err


def test_providers_json(cli: CLI, canary_keys: None) -> None:
    assert cli("providers", "--json") == 0
    data = json.loads(cli.out)
    names = [p["name"] for p in data]
    assert names == list(loader.load_catalog().providers)
    openai = data[names.index("openai")]
    assert openai["class"] == "runtime.providers.openai_provider.OpenAIProvider"
    assert openai["api_key_env"] == "OPENAI_API_KEY"
    assert CANARY not in cli.out + cli.err


# --------------------------------------------------------------------------- explain


def test_explain_scripted_echo(cli: CLI) -> None:
    assert cli("explain", "-m", "scripted-echo", "hi there") == 0
    assert json.loads(cli.out) == {
        "model": "scripted-echo",
        "provider": "scripted",
        "class": "runtime.testing.ScriptedProvider",
        "api_key_env": None,
        "api_key": "not needed",
        "stream": False,
        "timeout": 600.0,
        "parameter_policy": [],
        "messages": [{"role": "user", "content": "hi there"}],
        "request": {
            "call": "ScriptedProvider.chat",
            "args": {
                "model": "scripted-echo",
                "messages": [{"role": "user", "content": "hi there"}],
                "prompt": "hi there",
                "temperature": None,
                "max_tokens": 256,
            },
        },
    }


def _wire(model: str, provider: str, cls: str, key_env: str, stream: bool) -> dict[str, object]:
    return {
        "model": model,
        "provider": provider,
        "class": cls,
        "api_key_env": key_env,
        "api_key": "set",
        "stream": stream,
        "timeout": 600.0,
        "parameter_policy": [],
    }


def test_explain_openai(cli: CLI, canary_keys: None) -> None:
    argv = ["explain", "-m", "gpt-4o-mini", "--system", "be brief", "hi"]
    assert cli(*argv, "--temperature", "0.2", "-p", "top_p=0.5", "-p", "user=abc") == 0
    assert CANARY not in cli.out + cli.err
    data = json.loads(cli.out)
    request = data.pop("request")
    messages = data.pop("messages")
    assert messages[-1] == {"role": "user", "content": "hi"}
    assert data == _wire(
        "gpt-4o-mini",
        "openai",
        "runtime.providers.openai_provider.OpenAIProvider",
        "OPENAI_API_KEY",
        False,
    )
    assert request == {
        "method": "POST",
        "url": "https://api.openai.com/v1/chat/completions",
        "headers": {
            "content-type": "application/json",
            "authorization": "***",
            "accept": "application/json",
        },
        "json": {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            "temperature": 0.2,
            "max_completion_tokens": 2000,
            "top_p": 0.5,
            "user": "abc",
        },
    }


def test_explain_openai_stream(cli: CLI, canary_keys: None) -> None:
    assert cli("explain", "--stream", "-m", "gpt-4o-mini", "--max-tokens", "5", "hi") == 0
    assert CANARY not in cli.out + cli.err
    data = json.loads(cli.out)
    assert data["stream"] is True
    assert data["request"]["headers"]["authorization"] == "***"
    assert data["request"]["headers"]["accept"] == "text/event-stream"
    assert data["request"]["json"] == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.7,
        "max_completion_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_explain_anthropic(cli: CLI, canary_keys: None) -> None:
    assert cli("explain", "-m", "claude-sonnet", "--system", "be brief", "hi") == 0
    assert CANARY not in cli.out + cli.err
    data = json.loads(cli.out)
    request = data.pop("request")
    messages = data.pop("messages")
    assert messages[-1] == {"role": "user", "content": "hi"}
    assert data == _wire(
        "claude-sonnet",
        "anthropic",
        "runtime.providers.anthropic_provider.AnthropicProvider",
        "ANTHROPIC_API_KEY",
        False,
    )
    assert request == {
        "method": "POST",
        "url": "https://api.anthropic.com/v1/messages",
        "headers": {
            "anthropic-version": "2023-06-01",
            "x-api-key": "***",
            "content-type": "application/json",
            "accept": "application/json",
        },
        "json": {
            "model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4096,
            "system": "be brief",
        },
    }


def test_explain_gemini_stream(cli: CLI, canary_keys: None) -> None:
    assert cli("explain", "--stream", "-m", "gemini-2.5-flash", "hi") == 0
    assert CANARY not in cli.out + cli.err
    data = json.loads(cli.out)
    request = data.pop("request")
    messages = data.pop("messages")
    assert messages[-1] == {"role": "user", "content": "hi"}
    assert data == _wire(
        "gemini-2.5-flash",
        "gemini",
        "runtime.providers.gemini_provider.GeminiProvider",
        "GEMINI_API_KEY",
        True,
    )
    assert request == {
        "method": "POST",
        "url": "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-2.5-flash:streamGenerateContent?alt=sse",
        "headers": {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "x-goog-api-key": "***",
        },
        "json": {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": 8192, "temperature": 0.7},
        },
    }


@pytest.mark.parametrize(
    ("model", "env"),
    [
        pytest.param("gpt-4o", "OPENAI_API_KEY", id="openai"),
        pytest.param("claude-haiku", "ANTHROPIC_API_KEY", id="anthropic"),
        pytest.param("gemini-2.5-pro", "GEMINI_API_KEY", id="gemini"),
    ],
)
def test_explain_without_the_key_still_works(cli: CLI, model: str, env: str) -> None:
    assert cli("explain", "-m", model, "hi") == 0
    data = json.loads(cli.out)
    assert data["api_key"] == "unset"
    assert data["api_key_env"] == env
    assert data["request"]["method"] == "POST"
    assert cli.err == ""


def test_explain_unknown_model(cli: CLI) -> None:
    assert cli("explain", "-m", "gpt-4o-mni", "hi") == 1
    assert cli.err == (
        "llm-runtime explain: unknown model 'gpt-4o-mni' (did you mean 'gpt-4o-mini'?); "
        "run 'llm-runtime models' to list the configured ones\n"
    )


# --------------------------------------------------------------------------- complete


def test_complete_echo_streams_the_prompt_back(cli: CLI) -> None:
    assert cli("complete", "-m", "scripted-echo", "hello world") == 0
    assert cli.out == "hello world\n"
    assert cli.err == ""


def test_complete_no_stream(cli: CLI) -> None:
    assert cli("complete", "--no-stream", "-m", "scripted-echo", "hello world") == 0
    assert cli.out == "hello world\n"


def test_complete_reads_the_prompt_from_stdin(cli: CLI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("from standard input"))
    assert cli("complete", "-m", "scripted-echo", "-") == 0
    assert cli.out == "from standard input\n"


def test_complete_json(cli: CLI, user_files: list[str]) -> None:
    assert cli("complete", "--json", *user_files, "-m", "canned", "one two") == 0
    data = json.loads(cli.out)
    assert isinstance(data.pop("latency"), float)
    assert data == {
        "text": "canned answer",
        "finish_reason": "length",
        "model": "canned",
        "provider": "canned",
        "attempts": 1,
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
        "fallbacks": [],
        "tool_calls": [],
        "reasoning": None,
        "parsed": None,
        "cost": None,
    }


def test_complete_json_of_a_streaming_model(cli: CLI) -> None:
    assert cli("complete", "--json", "-m", "scripted-echo", "a b c") == 0
    data = json.loads(cli.out)
    assert data["text"] == "a b c"
    assert data["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_complete_with_a_system_message(cli: CLI) -> None:
    assert cli("complete", "-m", "scripted-echo", "--system", "be nice", "hello") == 0
    # The echo provider answers with the request as one prompt: both messages arrived.
    assert cli.out == "System: be nice\n\nUser: hello\n\nAssistant:\n"


def test_complete_scripted_reply_from_yaml(cli: CLI, user_files: list[str]) -> None:
    assert cli("complete", *user_files, "-m", "canned", "anything") == 0
    assert cli.out == "canned answer\n"


def test_complete_unknown_model(cli: CLI) -> None:
    assert cli("complete", "-m", "no-such-model", "hi") == 1
    assert cli.out == ""
    assert cli.err.startswith("llm-runtime complete: unknown model 'no-such-model'")
    assert "run 'llm-runtime models' to list the configured ones" in cli.err
    assert cli("complete", "-m", "scripted-ecko", "hi") == 1
    assert "unknown model 'scripted-ecko' (did you mean 'scripted-echo'?)" in cli.err


def test_complete_provider_error_exits_1(cli: CLI, user_files: list[str]) -> None:
    assert cli("complete", *user_files, "-m", "failing", "hi") == 1
    assert cli.err == (
        "llm-runtime complete: [provider 'failing', model 'failing'] the scripted key was refused\n"
    )


def test_complete_missing_key_names_the_variable(cli: CLI, user_files: list[str]) -> None:
    assert cli("complete", *user_files, "-m", "keyed", "hi") == 1
    assert cli.err == (
        "llm-runtime complete: model 'keyed' (provider 'keyed') needs an API key: "
        "set the environment variable CLI_TEST_API_KEY\n"
    )


@pytest.mark.parametrize("name", ["model", "prompt", "messages", "stream"])
@pytest.mark.parametrize("command", ["complete", "explain"])
def test_param_cannot_set_what_the_command_sets(cli: CLI, command: str, name: str) -> None:
    assert cli(command, "-m", "scripted-echo", "-p", f"{name}=x", "hi") == 2
    assert cli.out == ""
    assert cli.err.startswith("usage: llm-runtime")
    assert f"argument -p/--param: {name!r}" in cli.err


def test_param_values_are_parsed_as_json(cli: CLI, canary_keys: None) -> None:
    argv = ["explain", "-m", "gpt-4o-mini", "-p", "n=2", "-p", 'stop=["a"]', "-p", "x=plain"]
    assert cli(*argv, "hi") == 0
    body = json.loads(cli.out)["request"]["json"]
    assert (body["n"], body["stop"], body["x"]) == (2, ["a"], "plain")


# --------------------------------------------------------------------------- schema


def test_schema_prints_both(cli: CLI) -> None:
    assert cli("schema") == 0
    data = json.loads(cli.out)
    assert data == {
        "providers": loader.file_schema("providers"),
        "models": loader.file_schema("models"),
    }


@pytest.mark.parametrize("kind", ["providers", "models"])
def test_schema_of_one_kind_equals_the_committed_file(cli: CLI, kind: str) -> None:
    assert cli("schema", kind) == 0
    assert cli.out == (REPO / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8")


def test_schema_write(cli: CLI, tmp_path: Path) -> None:
    target = tmp_path / "out" / "schemas"
    assert cli("schema", "--write", str(target)) == 0
    assert cli.out == (
        f"wrote {target / 'providers.schema.json'}\nwrote {target / 'models.schema.json'}\n"
    )
    for kind in ("providers", "models"):
        written = (target / f"{kind}.schema.json").read_text(encoding="utf-8")
        assert written == (REPO / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the real process


def test_module_help(tmp_path: Path) -> None:
    proc = run_module("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: llm-runtime")
    assert proc.stderr == ""


def test_module_complete_and_validate(tmp_path: Path) -> None:
    proc = run_module("complete", "-m", "scripted-echo", "hello world", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hello world\n", "")
    proc = run_module("validate", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("OK: ")


def test_module_errors_have_no_traceback(tmp_path: Path) -> None:
    proc = run_module(cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    proc = run_module("complete", "-m", "no-such-model", "hi", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("llm-runtime complete: unknown model 'no-such-model'")
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  x:\n    provider: scripted\n    colour: red\n", encoding="utf-8")
    proc = run_module("validate", cwd=tmp_path)  # ./models.yaml is discovered
    assert proc.returncode == 1
    assert proc.stderr == (
        "llm-runtime validate: 1 problem in the configuration:\n"
        "  models.yaml:4:5: models.x.colour: unknown key 'colour'\n"
    )


def test_module_explain_redacts_the_key(tmp_path: Path) -> None:
    proc = run_module("explain", "-m", "claude-opus", "hi", cwd=tmp_path, ANTHROPIC_API_KEY=CANARY)
    assert proc.returncode == 0
    assert CANARY not in proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["request"]["headers"]["x-api-key"] == "***"
