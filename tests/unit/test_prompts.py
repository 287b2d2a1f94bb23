"""Named prompt templates and per-model system prompts: YAML -> messages, checked at load."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runtime import errors, load_runtime
from runtime.cli import main
from runtime.testing import ScriptedProvider

PROVIDERS = "providers:\n  s: {class: runtime.testing.ScriptedProvider}\n"

MODELS = """\
models:
  m: {provider: s}
  guided:
    provider: s
    system_prompt: You answer in French.
templates:
  summarize:
    description: Summarize a text
    system: "You are a concise editor{% if style %} ({{ style }}){% endif %}."
    user: "Summarize in {{ words }} words:\\n\\n{{ text }}"
    variables: [text, words, style]
  plain:
    user: "Hello {{ who }}"
    variables: [who]
"""


def files(tmp_path: Path, models: str = MODELS) -> tuple[Path, Path]:
    providers_file = tmp_path / "providers.yaml"
    models_file = tmp_path / "models.yaml"
    providers_file.write_text(PROVIDERS, encoding="utf-8")
    models_file.write_text(models, encoding="utf-8")
    return providers_file, models_file


def scripted(rt: object, model: str = "m") -> ScriptedProvider:
    provider = rt.provider_for(model)  # type: ignore[attr-defined]
    assert isinstance(provider, ScriptedProvider)
    return provider


async def test_a_template_makes_the_messages(tmp_path: Path) -> None:
    rt = load_runtime(*files(tmp_path))
    variables = {"text": "A long story.", "words": 5, "style": "dry"}
    await rt.generate(model="m", template="summarize", variables=variables)
    sent = scripted(rt).calls[-1].messages
    assert [(m.role, m.content) for m in sent] == [
        ("system", "You are a concise editor (dry)."),
        ("user", "Summarize in 5 words:\n\nA long story."),
    ]
    assert "template" not in scripted(rt).calls[-1].params


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param(
            {"text": "x", "words": 1},
            "template 'summarize': variables missing style (it takes: text, words, style)",
            id="missing",
        ),
        pytest.param(
            {"text": "x", "words": 1, "style": "", "tone": "warm"},
            "template 'summarize': variables unknown tone (it takes: text, words, style)",
            id="unknown",
        ),
    ],
)
async def test_every_declared_variable_and_no_other(
    tmp_path: Path, variables: dict[str, object], message: str
) -> None:
    rt = load_runtime(*files(tmp_path))
    with pytest.raises(errors.InvalidRequestError) as info:
        await rt.generate(model="m", template="summarize", variables=variables)
    assert str(info.value) == message
    assert scripted(rt).calls == []


async def test_an_unknown_template_suggests_a_near_name(tmp_path: Path) -> None:
    rt = load_runtime(*files(tmp_path))
    with pytest.raises(errors.InvalidRequestError) as info:
        await rt.generate(model="m", template="sumarize", variables={})
    assert str(info.value).startswith("unknown template 'sumarize' (did you mean 'summarize'?)")


async def test_a_template_and_a_prompt_together_are_refused(tmp_path: Path) -> None:
    rt = load_runtime(*files(tmp_path))
    with pytest.raises(errors.InvalidRequestError, match="not both"):
        await rt.generate(model="m", prompt="x", template="plain", variables={"who": "a"})


@pytest.mark.parametrize(
    ("template", "where", "message"),
    [
        pytest.param(
            '    user: "Hi {{ who"\n    variables: [who]\n',
            "6:11: templates.t.user",
            "the template does not compile: unexpected end of template",
            id="syntax",
        ),
        pytest.param(
            '    user: "Hi {{ whom }}"\n    variables: [who]\n',
            "6:11: templates.t.user",
            "the template uses a variable its variables list does not declare ('whom' is "
            "undefined); declared: who",
            id="undeclared",
        ),
        pytest.param(
            '    user: "{% for i in range(10**9) %}{% endfor %}"\n',
            "6:11: templates.t.user",
            "on placeholder variables the template asked for a range of",
            id="bounded",
        ),
    ],
)
def test_a_broken_template_is_a_load_error_with_its_place(
    tmp_path: Path, template: str, where: str, message: str
) -> None:
    models = "models:\n  m: {provider: s}\n\ntemplates:\n  t:\n" + template
    providers, models_file = files(tmp_path, models)
    with pytest.raises(errors.ConfigError) as info:
        load_runtime(providers, models_file)
    [problem] = info.value.problems
    assert str(problem).startswith(f"{models_file}:{where}: {message}")


def test_templates_extend_the_bundled_file(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "extends: bundled\nmodels: {}\ntemplates:\n  hi: {user: 'Hi {{ x }}', variables: [x]}\n",
        encoding="utf-8",
    )
    rt = load_runtime(models=models)
    assert list(rt.catalog.templates) == ["hi"]
    assert "gpt-4o-mini" in rt.models  # the bundled models are still there


async def test_a_model_system_prompt_goes_first_unless_the_call_brings_one(tmp_path: Path) -> None:
    rt = load_runtime(*files(tmp_path))
    await rt.generate(model="guided", prompt="Bonjour?")
    sent = scripted(rt, "guided").calls[-1]
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "You answer in French."),
        ("user", "Bonjour?"),
    ]
    own = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    await rt.generate(model="guided", messages=own)
    assert [m.role for m in scripted(rt, "guided").calls[-1].messages] == ["system", "user"]
    assert scripted(rt, "guided").calls[-1].messages[0].content == "Be terse."


async def test_explain_shows_the_rendered_messages(tmp_path: Path) -> None:
    rt = load_runtime(*files(tmp_path))
    described = await rt.explain(model="m", template="plain", variables={"who": "Ada"})
    assert described["template"] == "plain"
    assert described["messages"] == [{"role": "user", "content": "Hello Ada"}]


def test_cli_template_with_a_variable_from_a_file_and_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    providers, models = files(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("Line one.", encoding="utf-8")
    out = io.StringIO()
    argv = [
        "complete",
        "--providers",
        str(providers),
        "--models",
        str(models),
        "-m",
        "m",
        "--template",
        "plain",
        "--var",
        f"who=@{notes}",
        "-u",
    ]
    assert main(argv, out=out) == 0
    assert out.getvalue() == "Hello Line one.\n"
    err = capsys.readouterr().err
    assert err.startswith("llm-runtime: usage: prompt 3, completion 3 tokens; cost ")
    out = io.StringIO()
    assert main([*argv[:-1], "--json"], out=out) == 0
    data = json.loads(out.getvalue())
    assert (data["text"], data["tool_calls"], data["reasoning"]) == ("Hello Line one.", [], None)


def test_cli_var_without_template_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    providers, models = files(tmp_path)
    argv = [
        "complete",
        "--providers",
        str(providers),
        "--models",
        str(models),
        "-m",
        "m",
        "--var",
        "who=x",
        "hi",
    ]
    assert main(argv, out=io.StringIO()) == 2
    assert capsys.readouterr().err == "llm-runtime complete: error: --var goes with --template\n"
