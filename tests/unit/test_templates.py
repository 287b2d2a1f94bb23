"""Chat templates: every render bounded (steps, sizes, depth, time), every failure a TemplateError.

Each hostile template is refused quickly with one TemplateError naming the model and its
chat_template: directly, through ``await rt.generate(...)``, through the CLI (one line, no
traceback) and through ``validate --strict`` (file:line:column). Normal templates, the
bundled ``local-gemma`` one included, render exactly as they did before the bounds.
"""

from __future__ import annotations

import pickle
import re
import textwrap
import threading
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import ConfigError, InvalidRequestError, TemplateError, load_runtime, loader, templates
from runtime.cli import main
from runtime.template_budget import Budget
from runtime.templates import render_chat_template
from runtime.types import Message

from .test_loader import files, problems_of

pytestmark = pytest.mark.timeout(60)  # a hang is a failure, not a stuck suite

REPO = Path(__file__).resolve().parent.parent.parent
HI = (Message("user", "hi"),)
CONVERSATION = (
    Message("system", "Be brief."),
    Message("user", "  Hello!  "),
    Message("assistant", "Hi."),
    Message("user", "Why?"),
)


def limit(messages: Sequence[Message] = HI) -> int:
    """What one value, or the output, of a render of ``messages`` may reach."""
    variables = {"messages": [m.to_dict() for m in messages], "add_generation_prompt": True}
    return Budget(
        variables,
        max_steps=1,
        output=templates.MAX_OUTPUT,
        built_ratio=1,
        max_depth=1,
        max_int_bits=1,
        seconds=1.0,
    ).max_size


def refusal(source: str, messages: tuple[Message, ...] = HI, **extra: Any) -> str:
    """The message of the TemplateError that rendering ``source`` raises."""
    with pytest.raises(TemplateError) as info:
        render_chat_template(source, messages, model="m", **extra)
    assert info.value.model == "m"
    message = str(info.value)
    assert message.startswith("model 'm': its chat_template ")
    assert "\n" not in message
    return message.removeprefix("model 'm': its chat_template ")


def size(what: str, built: str = r"\d+") -> str:
    return (
        rf"would build a value of {built} characters or items \({re.escape(what)}\), more than "
        rf"the {limit()} allowed; fix the template, or raise runtime\.templates\.MAX_OUTPUT"
    )


STEPS = (
    r"ran more than 100000 steps \(loop iterations, calls, filters and operators\) in one "
    r"render; fix the template, or raise runtime\.templates\.MAX_STEPS"
)
DEPTH = (
    r"nested calls more than 32 deep \(a macro that calls itself without end\?\); fix the "
    r"template, or raise runtime\.templates\.MAX_DEPTH"
)
INT = (
    r"would build an integer of {bits} bits or more, more than the 4096 allowed; fix the "
    r"template, or raise runtime\.templates\.MAX_INT_BITS"
)
DOUBLING = "{% set ns = namespace(x='x') %}{% for i in range(64) %}{% set ns.x = ns.x OP ns.x %}{% endfor %}"  # noqa: E501
NAMESPACE_DAG = (
    "{% set ns = namespace(cur='a' * 1000) %}{% for i in range(64) %}{% set n = namespace() %}"
    "{% set n.a = ns.cur %}{% set n.b = ns.cur %}{% set ns.cur = n %}{% endfor %}{{ ns.cur }}"
)

HOSTILE = [
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        STEPS,
        id="nested-range",
    ),
    pytest.param(  # each loop alone is well under the budget: bounded as a product
        "{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}",
        STEPS,
        id="nested-loops-product",
    ),
    pytest.param("{{ 'a' * 10**10 }}", size("'*'", "10000000000"), id="repeat-string"),
    pytest.param("{{ ['a' * 1000] * 10**6 }}", size("'*'", "1002000000"), id="repeat-list"),
    pytest.param(DOUBLING.replace("OP", "~"), size("'~'", "2097152"), id="tilde-doubling"),
    pytest.param(DOUBLING.replace("OP", "+"), size("'+'", "2097152"), id="plus-doubling"),
    pytest.param(
        '{{ "%1000000000d"|format(1) }}', size("'%' formatting", "1000000000"), id="format-width"
    ),
    pytest.param(
        '{{ "%.1000000000f" % 1.5 }}', size("'%' formatting", "1000000000"), id="percent-precision"
    ),
    pytest.param(
        "{{ ('%(a)s' * 100000) % {'a': 'y' * 1000} }}", size("'%' formatting"), id="percent-repeats"
    ),
    pytest.param(
        "{{ '{:1000000000}'.format(1) }}", size("str.format", "1000000000"), id="str-format-width"
    ),
    pytest.param(
        "{{ ('{0}' * 100000).format('y' * 1000) }}", size("str.format"), id="str-format-repeats"
    ),
    pytest.param("{{ 'x'.ljust(10**9) }}", size("str.ljust", "1000000000"), id="ljust"),
    pytest.param("{{ 'x'.rjust(10**9) }}", size("str.rjust", "1000000000"), id="rjust"),
    pytest.param("{{ 'x'.center(10**9) }}", size("str.center", "1000000000"), id="center-method"),
    pytest.param("{{ 'x'.zfill(10**9) }}", size("str.zfill", "1000000000"), id="zfill"),
    pytest.param(
        "{{ 'x'|center(10**9) }}", size("filter 'center'", "1000000000"), id="center-filter"
    ),
    pytest.param("{{ ('x' * 1000)|indent(10**6) }}", size("filter 'indent'"), id="indent-width"),
    pytest.param(
        "{{ ('x\n' * 100000)|indent(' ' * 10) }}", size("filter 'indent'"), id="indent-many-lines"
    ),
    pytest.param(
        "{{ ('a ' * 100000)|wordwrap(1, wrapstring='x' * 1000) }}",
        size("filter 'wordwrap'"),
        id="wordwrap",
    ),
    pytest.param(
        "{{ ('a' * 1000)|replace('a', 'b' * 100000) }}",
        size("filter 'replace'", "100000000"),
        id="replace-filter",
    ),
    pytest.param(
        "{{ ('a' * 1000).replace('', 'b' * 100000) }}",
        size("str.replace", "100101000"),
        id="replace-method",
    ),
    pytest.param(
        "{{ ('x' * 1000)|list|join('y' * 2000) }}", size("filter 'join'", "1999000"), id="join"
    ),
    pytest.param(
        "{{ ('y' * 2000).join('x' * 1000) }}", size("str.join", "1999000"), id="join-method"
    ),
    pytest.param(
        "{{ [1]|batch(10**9, fill_with=0)|list }}",
        size("filter 'batch'", "1000000000"),
        id="batch-fill",
    ),
    pytest.param("{{ [1]|slice(10**9)|list }}", size("filter 'slice'", "1000000000"), id="slice"),
    pytest.param("{{ 2 ** 10000000 }}", INT.format(bits="10000001"), id="power"),
    pytest.param(
        "{{ (10**1000) * (10**1000) * (10**1000) * (10**1000) * (10**1000) }}",
        INT.format(bits=r"\d+"),
        id="big-product",
    ),
    pytest.param(
        "{{ range(10**9)|length }}",
        r"asked for a range of 1000000000 numbers, more than the 100000 steps a render may "
        r"take; fix the template, or raise runtime\.templates\.MAX_STEPS",
        id="range",
    ),
    pytest.param(
        "{{ range(10**30) }}",
        r"asked for a range of more than \d+ numbers, more than the 100000 steps a render may "
        r"take; fix the template, or raise runtime\.templates\.MAX_STEPS",
        id="range-beyond-maxsize",
    ),
    pytest.param("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", DEPTH, id="recursive-macro"),
    pytest.param(
        "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", DEPTH, id="recursive-loop"
    ),
    pytest.param("{% block a %}{{ self.a() }}{% endblock %}", DEPTH, id="recursive-block"),
    pytest.param(
        "{% macro f() %}{{ caller() }}{% endmacro %}"
        "{% macro g() %}{% call f() %}{{ g() }}{% endcall %}{% endmacro %}{{ g() }}",
        DEPTH,
        id="call-block",
    ),
    pytest.param(  # the namespace is measured when printed, not only when the list was built
        "{% set ns = namespace() %}{% set l = [ns] * 1000 %}{% set ns.x = 'y' * 1000000 %}{{ l }}",
        size("a printed value"),
        id="namespace-grown-after",
    ),
    pytest.param(NAMESPACE_DAG, size("a namespace attribute"), id="namespace-doubling"),
    pytest.param(
        "{% set big = 'y' * 1000000 %}{% for i in range(100) %}{{ big }}{% endfor %}",
        size("the rendered text"),
        id="output",
    ),
    pytest.param(
        "{% macro m() %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endmacro %}"
        "{{ m() }}",
        rf"built more than {16 * limit()} characters or items in all \(strings, lists and output "
        r"together\) in one render; fix the template, or raise runtime\.templates\.MAX_BUILT_RATIO",
        id="macro-buffer",
    ),
    pytest.param(
        "{{ 'x'.encode('punycode') }}",
        r"was refused by the sandbox: access to attribute 'encode' of 'str' object is unsafe\.",
        id="encode",
    ),
    pytest.param(
        "{{ (1).to_bytes(10**9, 'big') }}",
        r"was refused by the sandbox: access to attribute 'to_bytes' of 'int' object is unsafe\.",
        id="to-bytes",
    ),
    pytest.param(
        "{{ lipsum(10**9) }}", r"failed: UndefinedError: 'lipsum' is undefined", id="lipsum"
    ),
    pytest.param(
        "{{ 'x'|urlize }}",
        r"does not compile: No filter named 'urlize'\. \(template line 1\)",
        id="urlize",
    ),
]


@pytest.mark.parametrize(("source", "expected"), HOSTILE)
def test_hostile_templates_are_refused(source: str, expected: str) -> None:
    assert re.fullmatch(expected, refusal(source))


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{{ 'a' * 10**8 }}", id="repeat"),
        pytest.param("{{ 'x'.ljust(10**8) }}", id="ljust"),
        pytest.param('{{ "%100000000d"|format(1) }}', id="format"),
        pytest.param("{{ ('x' * 1000)|replace('x', 'y' * 100000) }}", id="replace"),
        pytest.param("{{ '{:100000000}'.format(1) }}", id="str-format"),
    ],
)
def test_sizes_are_refused_before_the_memory_is_taken(source: str) -> None:
    render_chat_template("{{ 'warm' ~ 'up' }}", HI)  # Jinja2 imported and set up outside
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError):
            render_chat_template(source, HI, model="m")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000  # each would take 100 MB, or 400 MB, if built


def test_sum_adds_through_the_bounded_plus(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python's sum() concatenates lists in C, quadratically, with no step between items.
    source = "{{ (range(300)|batch(1)|list|sum(start=[]))|length }}"
    # Not the deadline's test: a loaded machine must not turn this into a timeout.
    monkeypatch.setattr(templates, "MAX_SECONDS", 60.0)
    assert render_chat_template(source, HI) == "300"
    monkeypatch.setattr(templates, "MAX_STEPS", 500)  # the list alone takes about 300
    assert re.fullmatch(STEPS.replace("100000", "500"), refusal(source))


def test_the_deadline_is_checked_at_each_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(templates, "MAX_SECONDS", 0.0)
    assert refusal("{% for m in messages %}{{ m.content }}{% endfor %}") == (
        "ran longer than 0 s in one render; fix the template, or raise "
        "runtime.templates.MAX_SECONDS"
    )


def test_the_limits_are_read_at_each_render(monkeypatch: pytest.MonkeyPatch) -> None:
    source = "{% for i in range(150000) %}{% endfor %}done"
    assert re.fullmatch(r"asked for a range of 150000 numbers.*MAX_STEPS", refusal(source))
    monkeypatch.setattr(templates, "MAX_STEPS", 200_000)
    assert render_chat_template(source, HI) == "done"
    monkeypatch.setattr(templates, "MAX_DEPTH", 2)
    macro = "{% macro f(n) %}{{ f(n - 1) if n else 'end' }}{% endmacro %}{{ f(N) }}"
    assert render_chat_template(macro, HI, N=1) == "end"
    assert re.fullmatch(DEPTH.replace("32", "2"), refusal(macro, N=2))


def test_a_long_conversation_is_not_refused_by_a_template_that_copies_it() -> None:
    # The size limit is MAX_OUTPUT beyond the messages' own text.
    long = (Message("user", "x" * (3 * templates.MAX_OUTPUT)),)
    source = "{% for m in messages %}<{{ m.role }}>{{ m.content|trim }}{% endfor %}"
    assert render_chat_template(source, long) == "<user>" + long[0].content


# --------------------------------------------------------------------------- every failure


def _raise(exc: BaseException) -> Any:
    def call() -> None:
        raise exc

    return call


@pytest.mark.parametrize(
    ("source", "extra", "expected"),
    [
        pytest.param(
            "{% for m in messages %}{{ m.content }",
            {},
            "does not compile: unexpected '}' (template line 1)",
            id="syntax",
        ),
        pytest.param(
            "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
            {},
            "does not compile: RecursionError: it nests too deeply",
            id="parser-recursion",
        ),
        pytest.param(
            "{% for a in [1] %}" * 25 + "x" + "{% endfor %}" * 25,
            {},
            "does not compile: SyntaxError: too many statically nested blocks "
            "(<template>, line 77)",
            id="python-nesting",
        ),
        pytest.param(
            "{{ bos_token }}",
            {},
            "failed: UndefinedError: 'bos_token' is undefined",
            id="undefined",
        ),
        pytest.param(
            "{{ messages.__class__.__mro__ }}",
            {},
            "was refused by the sandbox: "
            "access to attribute '__class__' of 'list' object is unsafe.",
            id="sandbox",
        ),
        pytest.param(
            "{{ raise_exception('Conversation roles must alternate') }}",
            {},
            "refused the messages: Conversation roles must alternate",
            id="raise-exception",
        ),
        pytest.param(
            "{{ raise_exception('x' * 1000) }}",
            {},
            f"refused the messages: {'x' * 300}... (1000 characters)",
            id="raise-exception-long",
        ),
        pytest.param("{{ 1 / 0 }}", {}, "failed: ZeroDivisionError: division by zero", id="zero"),
        pytest.param(
            "{{ messages[0].content + 1 }}",
            {},
            'failed: TypeError: can only concatenate str (not "int") to str',
            id="type",
        ),
        pytest.param(
            "{{ boom() }}",
            {"boom": _raise(MemoryError())},
            "failed: MemoryError: it ran out of memory",
            id="memory",
        ),
        pytest.param(
            "{{ boom() }}",
            {"boom": _raise(RecursionError("deep"))},
            "failed: RecursionError: it nests too deeply",
            id="recursion",
        ),
        pytest.param(
            "{{ boom() }}",
            {"boom": _raise(KeyError("k"))},
            "failed: KeyError: 'k'",
            id="any-exception",
        ),
    ],
)
def test_every_failure_is_one_template_error(
    source: str, extra: dict[str, Any], expected: str
) -> None:
    assert refusal(source, **extra) == expected


def test_template_error_is_a_config_error_and_an_invalid_request_and_pickles() -> None:
    with pytest.raises(TemplateError) as info:
        render_chat_template("{{ 'a' * 10**10 }}", HI, model="m")
    error = info.value
    assert isinstance(error, ConfigError)
    assert isinstance(error, InvalidRequestError)
    assert isinstance(error, ValueError)
    assert error.problems == ()
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is TemplateError
    assert str(copy) == str(error)
    assert copy.model == "m"
    assert str(ConfigError("plain text")) == "plain text"  # ConfigError(str) still works


# --------------------------------------------------------------------------- normal templates

GEMMA = yaml.safe_load((REPO / "models.yaml").read_text(encoding="utf-8"))["models"]["local-gemma"][
    "chat_template"
]
ALTERNATE = (
    "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 1) %}"
    "{{ raise_exception('roles must alternate') }}{% endif %}"
    "{{ loop.index }}/{{ loop.length }}:{{ m.content }}{% if not loop.last %}|{% endif %}"
    "{% endfor %}"
)

# Each expected output was rendered by the code before the bounds (commit a9c9a4a).
NORMAL = [
    pytest.param(
        GEMMA,
        "<start_of_turn>user\nBe brief.\n\nHello!<end_of_turn>\n<start_of_turn>model\nHi."
        "<end_of_turn>\n<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n",
        id="local-gemma",
    ),
    pytest.param(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "<|im_start|>assistant\n",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n  Hello!  <|im_end|>\n"
        "<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
        "<|im_start|>assistant\n",
        id="chatml-from-the-readme",
    ),
    pytest.param(
        "{% for m in messages %}{% if m.role == 'system' %}[SYS]{{ m.content }}[/SYS]"
        "{% elif m.role == 'user' %}[INST]{{ m.content|trim }}[/INST]{% else %}{{ m.content }}</s>"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}",
        "[SYS]Be brief.[/SYS][INST]Hello![/INST]Hi.</s>[INST]Why?[/INST][ASSISTANT]",
        id="conditionals",
    ),
    pytest.param(ALTERNATE, "1/4:Be brief.|2/4:  Hello!  |3/4:Hi.|4/4:Why?", id="loop-variables"),
    pytest.param(
        "{{ messages|map(attribute='role')|join(',') }} "
        "{{ messages|selectattr('role','equalto','user')|list|length }} "
        "{{ '%s=%d'|format('n', messages|length) }} {{ '{}:{:>4}'.format('a', 'b') }} "
        "{{ messages|tojson }}",
        'system,user,assistant,user 2 n=4 a:   b [{"content": "Be brief.", "role": "system"}, '
        '{"content": "  Hello!  ", "role": "user"}, {"content": "Hi.", "role": "assistant"}, '
        '{"content": "Why?", "role": "user"}]',
        id="filters-and-formatting",
    ),
    pytest.param(
        "{% set ns = namespace(n=0) %}{% for m in messages %}"
        "{% set ns.n = ns.n + m.content|length %}{% endfor %}{{ ns.n }} "
        "{{ (messages[1:]|first).role ~ '!' }} {{ messages[-1].content[:2] }}"
        "{% macro tag(x) %}<{{ x }}>{{ caller() }}</{{ x }}>{% endmacro %}"
        "{% call tag('b') %}bold{% endcall %}",
        "26 user! Wh<b>bold</b>",
        id="namespace-slices-macros",
    ),
]


@pytest.mark.parametrize(("source", "expected"), NORMAL)
def test_normal_templates_render_as_before(source: str, expected: str) -> None:
    assert render_chat_template(source, CONVERSATION, model="m") == expected


def test_raise_exception_still_refuses_the_messages() -> None:
    assert refusal(ALTERNATE, CONVERSATION[1:]) == "refused the messages: roles must alternate"


def test_the_budget_is_per_render_in_each_thread() -> None:
    """Two renders at once, each taking 60% of the steps: shared, one would be refused."""
    n = templates.MAX_STEPS * 6 // 10
    half = n // 2
    source = (
        "{% for i in range(" + str(n) + ") %}{% if i == " + str(half) + " %}{{ meet() }}"
        "{% endif %}{% endfor %}ok"
    )
    barrier = threading.Barrier(2, timeout=30)
    results: list[str] = []
    failures: list[BaseException] = []

    def meet() -> str:
        barrier.wait()  # both renders are half-way through their loops now
        return ""

    def run() -> None:
        try:
            results.append(render_chat_template(source, HI, meet=meet))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert results == ["ok", "ok"]
    # Nothing leaks into the next render either (a shared or unreset counter would be at 2n).
    assert render_chat_template(source, HI, meet=lambda: "") == "ok"


# --------------------------------------------------------------------------- through the runtime

PROVIDERS = """\
providers:
  scripted:
    class: runtime.testing.ScriptedProvider
"""


def user_files(tmp_path: Path, template: str) -> tuple[Path, Path]:
    providers = tmp_path / "providers.yaml"
    models = tmp_path / "models.yaml"
    providers.write_text(PROVIDERS, encoding="utf-8")
    models.write_text(
        yaml.safe_dump({"models": {"m": {"provider": "scripted", "chat_template": template}}}),
        encoding="utf-8",
    )
    return providers, models


THROUGH = [
    pytest.param("{{ 'a' * 10**10 }}", "MAX_OUTPUT", id="repeat"),
    pytest.param("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "MAX_DEPTH", id="recursion"),
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "MAX_STEPS",
        id="nested-range",
    ),
]


@pytest.mark.parametrize(("template", "knob"), THROUGH)
async def test_generate_raises_template_error(tmp_path: Path, template: str, knob: str) -> None:
    async with load_runtime(*user_files(tmp_path, template)) as rt:
        with pytest.raises(TemplateError) as info:
            await rt.generate(model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.model == "m"
    assert str(info.value).startswith("model 'm': its chat_template ")
    assert str(info.value).endswith(f"fix the template, or raise runtime.templates.{knob}")


async def test_generate_renders_a_normal_template(tmp_path: Path) -> None:
    template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}"
    async with load_runtime(*user_files(tmp_path, template)) as rt:
        result = await rt.generate(model="m", messages=[{"role": "user", "content": "hi"}])
    assert result.text == "[user] hi"  # the scripted provider echoes the rendered prompt


@pytest.mark.parametrize(("template", "knob"), THROUGH)
def test_the_cli_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str, knob: str
) -> None:
    providers, models = user_files(tmp_path, template)
    argv = ["--providers", str(providers), "--models", str(models)]
    code = main(["complete", *argv, "-m", "m", "--system", "be brief", "hi"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("llm-runtime complete: model 'm': its chat_template ")
    assert captured.err.endswith(f"fix the template, or raise runtime.templates.{knob}\n")


# --------------------------------------------------------------------------- validate --strict


def strict_models(template: str) -> str:
    quoted = "'" + template.replace("'", "''") + "'"  # a YAML single-quoted scalar
    return textwrap.dedent(
        f"""\
        models:
          m:
            provider: scripted
            chat_template: {quoted}
        """
    )


SAMPLE = "on a sample conversation (system, user, assistant, user) the chat template "


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        pytest.param(
            "{{ 'a' * 10**10 }}",
            lambda: (
                f"would build a value of 10000000000 characters or items ('*'), more than the "
                f"{limit(templates.SAMPLE)} allowed; fix the template, or raise "
                "runtime.templates.MAX_OUTPUT"
            ),
            id="repeat",
        ),
        pytest.param(
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            lambda: (
                "nested calls more than 32 deep (a macro that calls itself without end?); fix "
                "the template, or raise runtime.templates.MAX_DEPTH"
            ),
            id="recursion",
        ),
        pytest.param(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            lambda: (
                "ran more than 100000 steps (loop iterations, calls, filters and operators) "
                "in one render; fix the template, or raise runtime.templates.MAX_STEPS"
            ),
            id="nested-range",
        ),
        pytest.param(
            "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}",
            lambda: "failed: UndefinedError: 'bos_token' is undefined",
            id="unknown-variable",
        ),
    ],
)
def test_validate_strict_renders_each_template(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    template: str,
    problem: Any,
) -> None:
    providers, models = files(tmp_path, models=strict_models(template))
    environ = {"SCRIPTED_API_KEY": "k"}
    monkeypatch.setenv("SCRIPTED_API_KEY", "k")
    expected = f"{models}:4:20: models.m.chat_template: {SAMPLE}{problem()}"
    assert problems_of(providers, models, strict=True, environ=environ) == [expected]
    # The same through the command line, which exits 1 with every problem and no traceback.
    code = main(["validate", "--strict", "--providers", str(providers), "--models", str(models)])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    assert captured.err == f"llm-runtime validate: 1 problem in the configuration:\n  {expected}\n"


NO_SYSTEM = (
    "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}"
    "{% endif %}{{ m.content }}{% endfor %}"
)


def test_validate_strict_accepts_a_template_that_refuses_on_purpose(tmp_path: Path) -> None:
    # Some models take no system message; their templates say so with raise_exception.
    providers, models = files(tmp_path, models=strict_models(NO_SYSTEM))
    catalog = loader.load_catalog(providers, models, strict=True, environ={"SCRIPTED_API_KEY": "k"})
    assert catalog.models["m"].chat_template == NO_SYSTEM


def test_validate_strict_renders_the_rest_of_a_template_that_refuses_a_system_message(
    tmp_path: Path,
) -> None:
    template = NO_SYSTEM + "{{ 'a' * 10**10 }}"
    providers, models = files(tmp_path, models=strict_models(template))
    [problem] = problems_of(providers, models, strict=True, environ={"SCRIPTED_API_KEY": "k"})
    assert problem.startswith(
        f"{models}:4:20: models.m.chat_template: on a sample conversation (user, assistant, "
        "user) the chat template would build a value of 10000000000 characters or items ('*')"
    )


def test_validate_strict_accepts_the_bundled_templates() -> None:
    catalog = loader.load_catalog()
    sources = [m.chat_template for m in catalog.models.values() if m.chat_template]
    assert sources  # local-gemma has one
    assert [templates.template_problem(source) for source in sources] == [None] * len(sources)
