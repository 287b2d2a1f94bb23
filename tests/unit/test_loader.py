"""The loader: YAML files -> Catalog, every problem reported at once with file:line:column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import loader, resources, schemas, yamlpos
from runtime.config import Catalog, RetryConfig, TimeoutConfig
from runtime.errors import ConfigError
from runtime.providers.registry import register_provider, unregister_provider
from runtime.testing import ScriptedProvider

PROVIDERS = """\
providers:
  scripted:
    class: runtime.testing.ScriptedProvider
    api_key_env: SCRIPTED_API_KEY
"""

MODELS = """\
models:
  small:
    provider: scripted
    default_temperature: 0.5
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def files(tmp_path: Path, providers: str = PROVIDERS, models: str = MODELS) -> tuple[Path, Path]:
    return write(tmp_path, "providers.yaml", providers), write(tmp_path, "models.yaml", models)


def problems_of(providers: Path, models: Path, **kwargs: object) -> list[str]:
    """The problems load_catalog reports, one string each (FILE:LINE:COLUMN: path: message)."""
    with pytest.raises(ConfigError) as info:
        loader.load_catalog(providers, models, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).splitlines()[1:] == [f"  {p}" for p in info.value.problems]
    return [str(p) for p in info.value.problems]


def model_problems(tmp_path: Path, models: str) -> list[str]:
    providers, models_path = files(tmp_path, models=models)
    return problems_of(providers, models_path)


# --------------------------------------------------------------------------- the happy path


def test_valid_files_build_the_catalog(tmp_path: Path) -> None:
    providers, models = files(
        tmp_path,
        PROVIDERS + "settings:\n  retry: {max_attempts: 5}\n  timeouts: {connect: 3}\n",
        MODELS
        + textwrap.indent(
            textwrap.dedent("""\
            big:
              label: Big one
              provider: scripted
              provider_model: vendor-big
              fallbacks: [small]
              extra_params: {top_p: 0.9}
            """),
            "  ",
        ),
    )
    catalog = loader.load_catalog(providers, models)
    assert isinstance(catalog, Catalog)
    assert list(catalog.providers) == ["scripted"]
    scripted = catalog.providers["scripted"]
    assert (scripted.name, scripted.class_path, scripted.api_key_env) == (
        "scripted",
        "runtime.testing.ScriptedProvider",
        "SCRIPTED_API_KEY",
    )
    assert list(catalog.models) == ["small", "big"]
    small, big = catalog.models["small"], catalog.models["big"]
    assert (small.id, small.label, small.provider_model, small.default_temperature) == (
        "small",
        "small",
        "small",
        0.5,
    )
    assert (big.label, big.provider_model, big.fallbacks, big.extra_params) == (
        "Big one",
        "vendor-big",
        ["small"],
        {"top_p": 0.9},
    )
    assert catalog.settings.retry == RetryConfig(max_attempts=5)
    assert catalog.settings.timeouts == TimeoutConfig(connect=3)
    assert catalog.sources == (str(providers), str(models))


def test_merge_keys_and_anchors_are_supported(tmp_path: Path) -> None:
    _, models = files(
        tmp_path,
        models="""\
        defaults: &defaults
          provider: scripted
          default_max_tokens: 100
        models:
          a:
            <<: *defaults
            default_max_tokens: 200
          b: *defaults
        """,
    )
    # `defaults` is not a known top-level key: the anchor has to live somewhere else.
    assert problems_of(tmp_path / "providers.yaml", models) == [
        f"{models}:1:1: defaults: unknown key 'defaults'"
    ]
    models.write_text(
        "models:\n"
        "  a: &a {provider: scripted, default_max_tokens: 100}\n"
        "  b:\n"
        "    <<: *a\n"
        "    default_max_tokens: 200\n",
        encoding="utf-8",
    )
    catalog = loader.load_catalog(tmp_path / "providers.yaml", models)
    assert catalog.models["a"].default_max_tokens == 100
    assert catalog.models["b"].default_max_tokens == 200
    assert catalog.models["b"].provider == "scripted"


def test_a_provider_registered_in_code_needs_no_yaml_entry(tmp_path: Path) -> None:
    providers, models = files(tmp_path, "providers: {}\n", "models:\n  m:\n    provider: in-code\n")
    register_provider("in-code", ScriptedProvider)
    try:
        catalog = loader.load_catalog(providers, models, strict=True, environ={})
    finally:
        unregister_provider("in-code")
    assert catalog.models["m"].provider == "in-code"
    assert catalog.providers == {}


# --------------------------------------------------------------------------- schema problems


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    lable: x\n",
            ["4:5: models.m.lable: unknown key 'lable' (did you mean 'label'?)"],
            id="unknown-key-did-you-mean",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    zzz: 1\n",
            ["4:5: models.m.zzz: unknown key 'zzz'"],
            id="unknown-key-no-suggestion",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    default_temperature: hot\n",
            ["4:26: models.m.default_temperature: expected a number or null, got a string ('hot')"],
            id="wrong-type-nullable",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    supports_streaming: maybe\n",
            [
                "4:25: models.m.supports_streaming: expected a boolean (true or false), "
                "got a string ('maybe')"
            ],
            id="wrong-type",
        ),
        pytest.param(
            "models:\n  m:\n    label: M\n",
            ["2:3: models.m: missing required key 'provider'"],
            id="missing-required",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    default_temperature: -1\n",
            ["4:26: models.m.default_temperature: must be >= 0, got -1"],
            id="minimum",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    timeouts: {read: 0}\n",
            ["4:22: models.m.timeouts.read: must be > 0, got 0"],
            id="exclusive-minimum-inside-nullable-object",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    on_unsupported: x\n",
            ["4:21: models.m.on_unsupported: 'x' is not one of 'drop', 'error'"],
            id="enum",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    retry: 3\n",
            ["4:12: models.m.retry: expected a mapping or null, got an integer (3)"],
            id="object-or-null",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    requires_api_key_env: MY-KEY\n",
            [
                "4:27: models.m.requires_api_key_env: the value is not an environment variable "
                "name (letters, digits and _, not starting with a digit): name the variable "
                "that holds the key here, not the key itself"
            ],
            id="env-name-pattern",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    fallbacks: [a, 3]\n",
            [
                "4:17: models.m.fallbacks[0]: unknown model 'a'",
                "4:20: models.m.fallbacks[1]: expected a string, got an integer (3)",
            ],
            id="list-item",
        ),
        pytest.param(
            "models:\n  bad name:\n    provider: scripted\n",
            [
                "2:3: models.bad name: 'bad name' is not a valid name (letters, digits and "
                ". _ : / @ + -, starting with a letter or digit)"
            ],
            id="entry-name",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    fallbacks: [m2, m2]\n  m2:\n"
            "    provider: scripted\n",
            ["4:16: models.m.fallbacks: 'm2' is listed twice"],
            id="pydantic-validator",
        ),
        pytest.param(
            "models: []\n",
            ["1:9: models: expected a mapping, got a list"],
            id="section-not-a-mapping",
        ),
        pytest.param(
            "modles: {}\n",
            [
                "1:1: missing required key 'models'",
                "1:1: modles: unknown key 'modles' (did you mean 'models'?)",
            ],
            id="misspelt-section",
        ),
    ],
)
def test_schema_problems_are_positioned(tmp_path: Path, models: str, expected: list[str]) -> None:
    path = tmp_path / "models.yaml"
    assert model_problems(tmp_path, models) == [f"{path}:{line}" for line in expected]


def test_schema_problems_in_providers_and_settings(tmp_path: Path) -> None:
    providers, models = files(
        tmp_path,
        providers="""\
        providers:
          scripted:
            class: runtime.testing.ScriptedProvider
            base_ulr: http://x
          other:
            class: notdotted
        settings:
          retry: {max_attempts: 0}
          timeout: {}
        """,
    )
    assert problems_of(providers, models) == [
        f"{providers}:4:5: providers.scripted.base_ulr: unknown key 'base_ulr' "
        "(did you mean 'base_url'?)",
        f"{providers}:6:12: providers.other.class: 'notdotted' is not a dotted import path "
        "like package.module.Class",
        f"{providers}:8:25: settings.retry.max_attempts: must be >= 1, got 0",
        f"{providers}:9:3: settings.timeout: unknown key 'timeout' (did you mean 'timeouts'?)",
    ]


# --------------------------------------------------------------------------- references


def test_unknown_provider_with_did_you_mean(tmp_path: Path) -> None:
    models = "models:\n  m:\n    provider: scriptd\n"
    assert model_problems(tmp_path, models) == [
        f"{tmp_path / 'models.yaml'}:3:15: models.m.provider: unknown provider 'scriptd' "
        "(did you mean 'scripted'?)"
    ]


def test_unknown_fallback_and_own_fallback(tmp_path: Path) -> None:
    models = """\
    models:
      small:
        provider: scripted
        fallbacks: [smal, small]
    """
    assert model_problems(tmp_path, models) == [
        f"{tmp_path / 'models.yaml'}:4:17: models.small.fallbacks[0]: unknown model 'smal' "
        "(did you mean 'small'?)",
        f"{tmp_path / 'models.yaml'}:4:23: models.small.fallbacks[1]: "
        "a model cannot be its own fallback",
    ]


def test_fallback_cycle_is_reported_once_where_it_closes(tmp_path: Path) -> None:
    models = """\
    models:
      a: {provider: scripted, fallbacks: [b]}
      b: {provider: scripted, fallbacks: [d, c]}
      c: {provider: scripted, fallbacks: [a]}
      d: {provider: scripted}
    """
    assert model_problems(tmp_path, models) == [
        f"{tmp_path / 'models.yaml'}:4:39: models.c.fallbacks[0]: fallback cycle: a -> b -> c -> a"
    ]


def test_parameter_conflicts(tmp_path: Path) -> None:
    models = """\
    models:
      o1:
        provider: scripted
        unsupported_params: [temperature, top_p]
        fixed_params: {temperature: 1}
        extra_params: {top_p: 0.5}
    """
    assert model_problems(tmp_path, models) == [
        f"{tmp_path / 'models.yaml'}:4:26: models.o1.unsupported_params[0]: "
        "'temperature' is both in fixed_params and in unsupported_params",
        f"{tmp_path / 'models.yaml'}:4:39: models.o1.unsupported_params[1]: "
        "'top_p' is both in extra_params and in unsupported_params",
    ]


def test_parameters_the_runtime_owns_cannot_be_model_parameters(tmp_path: Path) -> None:
    models = """\
    models:
      m:
        provider: scripted
        extra_params: {stream: true, top_p: 0.5}
        fixed_params: {model: other}
    """
    assert model_problems(tmp_path, models) == [
        f"{tmp_path / 'models.yaml'}:4:20: models.m.extra_params.stream: "
        "'stream' is set by the runtime for every call, not a model parameter",
        f"{tmp_path / 'models.yaml'}:5:20: models.m.fixed_params.model: "
        "'model' is set by the runtime for every call, not a model parameter",
    ]


def test_strict_compiles_chat_templates(tmp_path: Path) -> None:
    models = """\
    models:
      m:
        provider: scripted
        chat_template: "{% for m in messages %}{{ m.content }"
    """
    providers, models_path = files(tmp_path, models=models)
    loader.load_catalog(providers, models_path)  # not compiled unless strict
    environ = {"SCRIPTED_API_KEY": "k"}
    assert problems_of(providers, models_path, strict=True, environ=environ) == [
        f"{models_path}:4:20: models.m.chat_template: "
        "the chat template does not compile: unexpected '}' (template line 1)"
    ]


def test_problems_of_both_files_are_reported_at_once(tmp_path: Path) -> None:
    providers, models = files(
        tmp_path,
        PROVIDERS + "    retries: 3\n",
        "models:\n  m:\n    provider: scripted\n    default_max_tokens: 0\n  n:\n"
        "    provider: nope\n",
    )
    with pytest.raises(ConfigError) as info:
        loader.load_catalog(providers, models)
    assert str(info.value) == "\n".join(
        [
            "3 problems in the configuration:",
            f"  {providers}:5:5: providers.scripted.retries: unknown key 'retries' "
            "(did you mean 'retry'?)",
            f"  {models}:4:25: models.m.default_max_tokens: must be >= 1, got 0",
            f"  {models}:6:15: models.n.provider: unknown provider 'nope'",
        ]
    )


# --------------------------------------------------------------------------- reading YAML


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with libyaml parsing, then with PyYAML's pure-Python parser."""
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(yamlpos, "LIBYAML", request.param == "libyaml")
    return str(request.param)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "models:\n  m:\n    provider: scripted\n    provider: other\n",
            "4:5: models.m.provider: duplicate key 'provider' (first defined at line 3)",
            id="duplicate-key",
        ),
        pytest.param(
            "models:\n  m: [a, b\n",
            "3:1: YAML syntax error: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence started at line 2)",
            id="syntax-error",
        ),
        pytest.param(
            "models:\n  m:\n    provider: a: b\n",
            "3:16: YAML syntax error: mapping values are not allowed here",
            id="syntax-error-colon",
        ),
        pytest.param(
            "", "1:1: the file is empty: it should be a mapping with a 'models:' key", id="empty"
        ),
        pytest.param(
            "# only a comment\n",
            "1:1: the file is empty: it should be a mapping with a 'models:' key",
            id="only-comment",
        ),
        pytest.param(
            "- a\n- b\n",
            "1:1: the top level must be a mapping with a 'models:' key, got a list",
            id="top-level-list",
        ),
        pytest.param(
            "just text\n",
            "1:1: the top level must be a mapping with a 'models:' key, got a string ('just text')",
            id="top-level-scalar",
        ),
        pytest.param(
            "models:\n  1: {provider: scripted}\n",
            '2:3: models: mapping key 1 is read as a number, not as text: quote it ("1")',
            id="non-string-key",
        ),
        pytest.param(
            "models:\n  m:\n    provider: !!python/object/apply:os.system [ls]\n",
            "3:15: models.m.provider: unsupported YAML tag '!!python/object/apply:os.system'",
            id="python-tag",
        ),
        pytest.param(
            "models:\n  m: !custom {provider: scripted}\n",
            "2:6: models.m: unsupported YAML tag '!custom'",
            id="custom-tag",
        ),
        pytest.param(
            "models:\n  m: {provider: scripted, default_max_tokens: !!int many}\n",
            "2:47: models.m.default_max_tokens: cannot read 'many' as !!int",
            id="bad-explicit-tag",
        ),
        pytest.param(
            "models:\n  m: &m {provider: scripted, options: {self: *m}}\n",
            "2:6: models.m.options.self: recursive alias: this value contains itself",
            id="recursive-alias",
        ),
        pytest.param(
            "models:\n  m: {provider: *nowhere}\n",
            "2:17: YAML syntax error: found undefined alias 'nowhere'",
            id="undefined-alias",
        ),
        pytest.param(
            "models: {}\n---\nmodels: {}\n",
            "2:1: YAML syntax error: but found another document "
            "(expected a single document in the stream started at line 1)",
            id="two-documents",
        ),
        pytest.param(
            "models:\n  m:\n    label: a\x01b\n",
            "3:13: control character U+0001 is not allowed in YAML",
            id="control-character",
        ),
    ],
)
def test_yaml_problems(tmp_path: Path, text: str, expected: str, parser: str) -> None:
    assert model_problems(tmp_path, text) == [f"{tmp_path / 'models.yaml'}:{expected}"]


def test_every_duplicate_key_is_reported(tmp_path: Path) -> None:
    text = "models:\n  m: {provider: scripted}\n  m: {provider: x}\n  m: {}\n"
    path = tmp_path / "models.yaml"
    assert model_problems(tmp_path, text) == [
        f"{path}:3:3: models.m: duplicate key 'm' (first defined at line 2)",
        f"{path}:4:3: models.m: duplicate key 'm' (first defined at line 2)",
    ]


def test_binary_junk_is_refused(tmp_path: Path) -> None:
    providers, _ = files(tmp_path)
    models = tmp_path / "models.yaml"
    models.write_bytes(b"models:\n  m: \x89PNG\r\n\x1a\n\x00\xff")
    assert problems_of(providers, models) == [
        f"{models}:2:6: not UTF-8 text (byte 0x89): save the file as UTF-8"
    ]


def _bomb(levels: int) -> list[str]:
    """An alias bomb: level k is a list of nine aliases to level k - 1 (9**levels values)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    return lines


def test_alias_bomb_is_refused_early(tmp_path: Path) -> None:
    """9**40 values: only counting, never expanding, finishes at all."""
    lines = [*_bomb(40), "models: {m: {provider: scripted, options: {bomb: *a39}}}"]
    path = tmp_path / "models.yaml"
    problems = model_problems(tmp_path, "\n".join(lines) + "\n")
    # a6 is the first level over 4,000,000 values (5,380,840): its 6th alias crosses.
    assert problems == [
        f"{path}:7:35: a6[5]: more than 4,000,000 values (an alias counts each time it is "
        "used): refusing to read further (if the file is meant to be this large, raise "
        "LLM_RUNTIME_MAX_YAML_NODES)"
    ]


def test_an_alias_gives_its_anchor_value_and_positions(tmp_path: Path) -> None:
    text = (
        "models:\n"
        "  a: &a {provider: scripted, extra_params: {stop: [x]}}\n"
        "  b: *a\n"
        "  c: {<<: *a, default_max_tokens: 0}\n"
    )
    path = tmp_path / "models.yaml"
    assert model_problems(tmp_path, text) == [
        f"{path}:4:35: models.c.default_max_tokens: must be >= 1, got 0"
    ]
    data, positions = yamlpos.parse_yaml(text.encode())
    assert data["models"]["b"] == data["models"]["a"]
    assert positions.key(("models", "b")) == (3, 3)
    # Inside an alias, positions are the anchor's: that is where the text is.
    assert positions.value(("models", "b", "extra_params", "stop", 0)) == (2, 52)
    assert positions.key(("models", "c", "provider")) == (2, 10)
    assert positions.value(("models", "c", "default_max_tokens")) == (4, 35)


def test_a_merge_of_a_custom_tagged_mapping_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    # Was TypeError ('NoneType' object is not iterable) out of load_catalog.
    text = "models:\n  m:\n    <<: !custom {provider: scripted}\n    provider: scripted\n"
    assert model_problems(tmp_path, text) == [
        f"{tmp_path / 'models.yaml'}:3:9: models.m: unsupported YAML tag '!custom'"
    ]


def test_too_deep_nesting_is_refused(tmp_path: Path) -> None:
    text = "models: " + "[" * 10_000 + "]" * 10_000 + "\n"
    assert model_problems(tmp_path, text) == [
        f"{tmp_path / 'models.yaml'}:1:72: nesting deeper than 64 levels: refusing to read further"
    ]


@pytest.mark.parametrize(
    ("head", "unit", "where"),
    [
        pytest.param("models: ", "[", "1:72", id="flow"),
        pytest.param("models:\n", "- ", "2:127", id="block"),
    ],
)
def test_a_million_levels_stop_at_the_65th(
    tmp_path: Path, parser: str, head: str, unit: str, where: str
) -> None:
    """libyaml's own limit (1,000 levels) fires first: the problem is still ours, in place."""
    text = head + unit * 1_000_000 + "x\n"
    assert model_problems(tmp_path, text) == [
        f"{tmp_path / 'models.yaml'}:{where}: nesting deeper than 64 levels: refusing to "
        "read further"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "models:\n  m:\n    provider:\tscripted\n",
            "3:14: YAML syntax error: found character '\\t' that cannot start any token "
            "(while scanning for the next token)",
            id="after-a-colon",
        ),
        pytest.param(
            "models:\n  m: {provider: scripted, label: a\tb}\n",
            "2:35: YAML syntax error: found character '\\t' that cannot start any token "
            "(while scanning for the next token)",
            id="inside-a-plain-scalar",
        ),
        pytest.param(
            "models:\n  m:\n    provider: scripted\t# why\n",
            "3:23: YAML syntax error: found character '\\t' that cannot start any token "
            "(while scanning for the next token)",
            id="before-a-comment",
        ),
    ],
)
def test_a_tab_between_tokens_is_refused_by_both_parsers(
    tmp_path: Path, parser: str, text: str, expected: str
) -> None:
    """libyaml reads these tabs as spaces (as the YAML spec says); PyYAML refuses them. The
    loader gives PyYAML's answer either way, so a file valid here is valid everywhere."""
    assert model_problems(tmp_path, text) == [f"{tmp_path / 'models.yaml'}:{expected}"]


def test_tabs_in_quotes_block_scalars_and_comments_are_fine(tmp_path: Path, parser: str) -> None:
    text = (
        "models:\t# a\ttab\n"
        "  m:\n"
        "    provider: scripted\n"
        '    label: "a\tb"\n'
        "    provider_model: 'c\td'\n"
        "    chat_template: |\n"
        "      {{ messages }}\tx\n"
    )
    providers, models = files(tmp_path, models="")
    models.write_text(text.replace("models:\t#", "models: #"), encoding="utf-8")
    model = loader.load_catalog(providers, models).models["m"]
    assert (model.label, model.provider_model) == ("a\tb", "c\td")
    assert model.chat_template == "{{ messages }}\tx\n"


def test_a_syntax_error_past_the_first_mib_is_told_in_libyaml_words(
    tmp_path: Path, parser: str
) -> None:
    """Re-reading megabytes in pure Python to word an error would take minutes."""
    filler = "# " + "x" * 78 + "\n"
    text = "models:\n" + filler * 14_000 + "  m: [a, b\n"
    line = 14_002
    expected = {
        "libyaml": f"{line + 1}:1: YAML syntax error: did not find expected ',' or ']' "
        f"(while parsing a flow sequence started at line {line})",
        "python": f"{line + 1}:1: YAML syntax error: expected ',' or ']', but got "
        f"'<stream end>' (while parsing a flow sequence started at line {line})",
    }
    assert model_problems(tmp_path, text) == [f"{tmp_path / 'models.yaml'}:{expected[parser]}"]


def test_deep_nesting_within_the_bound_is_fine(tmp_path: Path) -> None:
    options = "{a: " * 60 + "1" + "}" * 60
    _, models = files(
        tmp_path, models=f"models: {{m: {{provider: scripted, options: {options}}}}}\n"
    )
    catalog = loader.load_catalog(tmp_path / "providers.yaml", models)
    assert "a" in catalog.models["m"].options


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    providers, _ = files(tmp_path)
    models = tmp_path / "models.yaml"
    models.write_text("models: {}\n" + "#" * 2000 + "\n", encoding="utf-8")
    assert problems_of(providers, models, limits=yamlpos.Limits(max_bytes=2000)) == [
        f"{models}:1:1: file is larger than 2,000 bytes: refusing it "
        "(if it is meant to be this large, raise LLM_RUNTIME_MAX_YAML_BYTES)"
    ]
    env = {"LLM_RUNTIME_MAX_YAML_BYTES": str(1024)}
    assert problems_of(providers, models, environ=env) == [
        f"{models}:1:1: file is larger than 1,024 bytes: refusing it "
        "(if it is meant to be this large, raise LLM_RUNTIME_MAX_YAML_BYTES)"
    ]
    # The argument wins over the environment.
    catalog = loader.load_catalog(providers, models, environ=env, limits=yamlpos.Limits())
    assert catalog.models == {}


def test_the_bounds_default_to_32_mib_and_4_million_values(tmp_path: Path) -> None:
    providers, _ = files(tmp_path)
    models = tmp_path / "models.yaml"
    with models.open("wb") as handle:
        handle.write(b"models: {}\n")
        handle.truncate(32 * 1024 * 1024 + 1)  # NUL bytes past the bound: never read
    assert problems_of(providers, models) == [
        f"{models}:1:1: file is larger than 32 MiB: refusing it "
        "(if it is meant to be this large, raise LLM_RUNTIME_MAX_YAML_BYTES)"
    ]
    assert yamlpos.Limits() == yamlpos.Limits(max_bytes=32 * 1024 * 1024, max_nodes=4_000_000)


def test_the_value_bound_comes_from_the_environment(tmp_path: Path) -> None:
    providers, models = files(tmp_path)  # each holds 9 values, keys and mappings included
    env = {"LLM_RUNTIME_MAX_YAML_NODES": "8"}
    message = (
        "more than 8 values (an alias counts each time it is used): refusing to read further "
        "(if the file is meant to be this large, raise LLM_RUNTIME_MAX_YAML_NODES)"
    )
    assert problems_of(providers, models, environ=env) == [
        f"{providers}:4:18: {message}",
        f"{models}:4:26: {message}",
    ]
    assert loader.load_catalog(providers, models, environ={"LLM_RUNTIME_MAX_YAML_NODES": "9"})


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1e6"])
def test_a_bad_bound_in_the_environment_is_a_config_error(tmp_path: Path, value: str) -> None:
    providers, models = files(tmp_path)
    with pytest.raises(ConfigError) as info:
        loader.load_catalog(providers, models, environ={"LLM_RUNTIME_MAX_YAML_BYTES": value})
    assert str(info.value) == (
        "environment variable LLM_RUNTIME_MAX_YAML_BYTES must be a positive whole number "
        f"(e.g. 33_554_432), got {value!r}: fix or unset it"
    )
    with pytest.raises(ValueError, match=r"Limits\.max_nodes must be a positive integer"):
        yamlpos.Limits(max_nodes=0)


def _catalog(count: int) -> str:
    lines = ["models:"]
    for i in range(count):
        lines += [
            f"  model-{i}:",
            f"    label: Model number {i}",
            "    provider: scripted",
            "    max_tokens_param: max_completion_tokens",
            f"    default_max_tokens: {1000 + i}",
            "    default_temperature: 0.7",
            "    extra_params: {top_p: 0.9, stop: [END]}",
            f"    fallbacks: [model-{i + 1}]" if i + 1 < count else "    fallbacks: []",
        ]
    return "\n".join(lines) + "\n"


def test_a_10000_model_catalog_loads_with_positions(tmp_path: Path) -> None:
    """Over the old bounds (1 MiB, 100,000 values) ten times: the defaults have room."""
    text = _catalog(10_000)
    assert len(text.encode()) > 2 * 1024 * 1024
    providers, models = files(tmp_path, models=text)
    catalog = loader.load_catalog(providers, models)
    assert len(catalog.models) == 10_000
    assert catalog.models["model-9999"].default_max_tokens == 10_999
    # A typo in the last model is found at its line.
    last = text.rindex("    provider: scripted")
    models.write_text(text[:last] + text[last:].replace("scripted", "scriptd", 1), "utf-8")
    assert problems_of(providers, models) == [
        f"{models}:79996:15: models.model-9999.provider: unknown provider 'scriptd' "
        "(did you mean 'scripted'?)"
    ]


def test_missing_file_is_a_config_problem(tmp_path: Path) -> None:
    providers, _ = files(tmp_path)
    missing = tmp_path / "nope.yaml"
    assert problems_of(providers, missing) == [
        f"{missing}:1:1: cannot read the file: No such file or directory"
    ]


# --------------------------------------------------------------------------- the strict pre-check

_NUMBERS = [0, 1, 3, 20, 0.5, 2.0]
_ODD = [None, True, 21, -1, 2.5, 3.0, float("nan"), float("inf"), 10**40, "", "x", "A_KEY\n"]
_ODD += ["a-b", "1abc", [], ["a", "a"], [1], {}, {"zzz": 1}, "ftp://x", "http://u:p@h"]
_COERCED = [0, 1, "5", "0.5", "true"]  # what lax pydantic takes and the schema refuses
_ENV = ["A_KEY", "B_2", None]
_POLICY = {
    **{key: _NUMBERS for key in RetryConfig.model_fields},
    **{key: [*_NUMBERS, None] for key in TimeoutConfig.model_fields},
    "max_concurrency": [1, 8, None],
    "requests_per_minute": [60, None],
}
_PARAMS = [{}, {"top_p": 0.9}, {"temperature": 1, "stop": ["x"]}]
# Per key of an entry: values of its type (valid or not by their bounds) for the strategy
# to draw from; _ODD and _COERCED values are drawn too, one time in eight each.
_FIELDS: dict[str, dict[str, list[object]]] = {
    "models": {
        "label": ["", "Model X"],
        "provider_model": ["vendor-x"],
        "max_tokens_param": ["max_tokens", "max_completion_tokens"],
        "default_temperature": [0, 0.7, 2, None],
        "default_max_tokens": [1, 100, None],
        "supports_streaming": [True, False],
        "requires_api_key_env": _ENV,
        "base_url_env": _ENV,
        "extra_params": _PARAMS,
        "fixed_params": _PARAMS,
        "options": _PARAMS,
        "unsupported_params": [[], ["temperature"]],
        "on_unsupported": ["drop", "error"],
        "context_window": [2048, None],
        "fallbacks": [[], ["m"], ["gpt-4o", "m"]],
        "chat_template": ["{{ messages }}", None],
        "lable": ["x"],
        "id": ["m"],
    },
    "providers": {
        "class": ["runtime.testing.ScriptedProvider", "a.b"],
        "api_key_env": _ENV,
        "base_url": ["http://127.0.0.1:9", "https://h.example/v1", None],
        "base_url_env": _ENV,
        "options": _PARAMS,
        "class_path": ["a.b"],
        "name": ["x"],
    },
}
_BASE = {"models": {"provider": "scripted"}, "providers": {"class": "runtime.testing.X"}}
_MOSTLY = st.sampled_from([True] * 9 + [False])


def _typed(choices: list[object]) -> st.SearchStrategy[object]:
    odd = [st.sampled_from(_ODD), st.sampled_from(_COERCED)]
    return st.one_of(*[st.sampled_from(choices)] * 6, *odd)


def _policy() -> st.SearchStrategy[object]:
    fields = {key: _typed(values) for key, values in _POLICY.items()}
    return _typed([None]) | st.fixed_dictionaries({}, optional=fields)  # type: ignore[arg-type]


@st.composite
def _files(draw: st.DrawFn) -> tuple[loader.Kind, dict[str, object]]:
    """A providers or models mapping: mostly valid entries with a few odd keys or values."""
    kind: loader.Kind = draw(st.sampled_from(["models", "providers"]))
    fields = {key: _typed(values) for key, values in _FIELDS[kind].items()}
    fields.update(dict.fromkeys(["retry", "timeouts", "limits"], _policy()))
    entries = {}
    names = st.sampled_from(["m", "gpt-4o", "o/1", "m2", "x.y", "m", "gpt-4o", "a b"])
    for name in draw(st.lists(names, max_size=3)):
        entry = dict(_BASE[kind]) if draw(_MOSTLY) else {}
        for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
            entry[key] = draw(fields[key])
        entries[name] = entry
    data: dict[str, object] = {kind: entries}
    if kind == "providers" and draw(st.booleans()):
        data["settings"] = draw(
            st.fixed_dictionaries({}, optional={"retry": _policy(), "timeouts": _policy()})
        )
    if not draw(_MOSTLY):
        data[draw(st.sampled_from(["extends", "settings", "other"]))] = draw(_typed(["bundled"]))
    return kind, data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_files())
def test_the_strict_check_passes_only_what_the_json_schema_passes(
    case: tuple[loader.Kind, dict[str, object]],
) -> None:
    """Skipping jsonschema when strict pydantic passes loses no message, and builds the same."""
    kind, data = case
    built = loader._prevalidated(kind, data)
    if any(True for _ in schemas.validator(kind).iter_errors(data)):
        assert built is None
    if built is not None:
        cls, key_field = loader._ENTRY_MODELS[kind]
        entries = data[kind]
        assert isinstance(entries, dict)
        assert list(built) == list(entries)
        for name, entry in entries.items():
            assert repr(built[name]) == repr(cls.model_validate({**entry, key_field: name}))


# --------------------------------------------------------------------------- strict


@pytest.mark.parametrize(
    ("class_path", "message"),
    [
        pytest.param(
            "runtime.no_such_module.Provider",
            "cannot import module 'runtime.no_such_module': No module named "
            "'runtime.no_such_module'",
            id="not-importable",
        ),
        pytest.param(
            "runtime.testing.NoSuchClass",
            "module 'runtime.testing' has no attribute 'NoSuchClass'",
            id="no-such-attribute",
        ),
        pytest.param(
            "runtime.testing.Script",
            "'runtime.testing.Script' is not a subclass of runtime.providers.base.LLMProvider",
            id="not-a-provider",
        ),
    ],
)
def test_strict_imports_the_provider_class(tmp_path: Path, class_path: str, message: str) -> None:
    providers, models = files(
        tmp_path, PROVIDERS.replace("runtime.testing.ScriptedProvider", class_path)
    )
    env = {"SCRIPTED_API_KEY": "k"}
    assert loader.load_catalog(providers, models, environ=env).providers["scripted"]
    assert problems_of(providers, models, strict=True, environ=env) == [
        f"{providers}:3:12: providers.scripted.class: {message}"
    ]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({}, "environment variable SCRIPTED_API_KEY is not set", id="unset"),
        pytest.param(
            {"SCRIPTED_API_KEY": " "}, "environment variable SCRIPTED_API_KEY is empty", id="empty"
        ),
    ],
)
def test_strict_checks_the_key_variable(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    providers, models = files(tmp_path)
    assert problems_of(providers, models, strict=True, environ=environ) == [
        f"{models}:2:3: models.small: {message}"
    ]


def test_strict_prefers_the_model_key_variable_and_never_prints_values(tmp_path: Path) -> None:
    providers, models = files(
        tmp_path,
        models=MODELS + "    requires_api_key_env: SMALL_API_KEY\n",
    )
    secret = "sk-secret-value"
    env = {"SCRIPTED_API_KEY": secret}
    with pytest.raises(ConfigError) as info:
        loader.load_catalog(providers, models, strict=True, environ=env)
    assert str(info.value).splitlines()[1:] == [
        f"  {models}:2:3: models.small: environment variable SMALL_API_KEY is not set"
    ]
    assert secret not in str(info.value)
    catalog = loader.load_catalog(providers, models, strict=True, environ={"SMALL_API_KEY": secret})
    assert catalog.models["small"].requires_api_key_env == "SMALL_API_KEY"


# --------------------------------------------------------------------------- discovery


def _pair(directory: Path, provider: str) -> tuple[Path, Path]:
    providers = write(directory, "providers.yaml", PROVIDERS.replace("scripted:", f"{provider}:"))
    return providers, write(directory, "models.yaml", "models: {}\n")


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Path, Path]]:
    """Four pairs of files (explicit, env, cwd, bundled); bundled_path points at the last."""
    found = {
        place: _pair(tmp_path / place, place) for place in ("explicit", "env", "cwd", "bundled")
    }
    monkeypatch.setattr(resources, "bundled_path", lambda name: tmp_path / "bundled" / name)
    return found


def test_discovery_explicit_path_wins(
    places: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_RUNTIME_PROVIDERS", str(places["env"][0]))
    monkeypatch.chdir(places["cwd"][0].parent)
    catalog = loader.load_catalog(*places["explicit"])
    assert list(catalog.providers) == ["explicit"]
    assert catalog.sources == tuple(map(str, places["explicit"]))


def test_discovery_env_var_then_cwd_per_file(
    places: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_RUNTIME_PROVIDERS", str(places["env"][0]))
    monkeypatch.chdir(places["cwd"][0].parent)
    catalog = loader.load_catalog()
    assert list(catalog.providers) == ["env"]
    assert catalog.sources == (str(places["env"][0]), "models.yaml")


def test_discovery_environ_argument_is_used(
    places: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # holds no providers.yaml / models.yaml
    env = {"LLM_RUNTIME_MODELS": str(places["env"][1]), "LLM_RUNTIME_PROVIDERS": ""}
    catalog = loader.load_catalog(environ=env)
    assert catalog.sources == (str(places["bundled"][0]), str(places["env"][1]))


def test_discovery_falls_back_to_the_bundled_files(
    places: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # holds no providers.yaml / models.yaml
    catalog = loader.load_catalog()
    assert list(catalog.providers) == ["bundled"]
    assert catalog.sources == tuple(map(str, places["bundled"]))


def test_bundled_path_finds_the_repository_files() -> None:
    root = Path(resources.__file__).resolve().parent.parent
    assert resources.bundled_path("schemas/models.schema.json") == (
        root / "schemas" / "models.schema.json"
    )


# --------------------------------------------------------------------------- extends


def test_extends_bundled_merges_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = tmp_path / "bundled"
    write(
        bundled,
        "providers.yaml",
        PROVIDERS
        + "  other:\n    class: runtime.testing.ScriptedProvider\n"
        + "settings:\n  retry: {max_attempts: 4}\n  timeouts: {connect: 1}\n",
    )
    write(
        bundled,
        "models.yaml",
        MODELS + "    fallbacks: [large]\n  large:\n    provider: other\n    label: Large\n",
    )
    monkeypatch.setattr(resources, "bundled_path", lambda name: bundled / name)
    providers = write(
        tmp_path,
        "providers.yaml",
        """\
        extends: bundled
        providers:
          other:
            class: runtime.testing.ScriptedProvider
            base_url: http://127.0.0.1:9
        settings:
          timeouts: {connect: 2}
        """,
    )
    models = write(
        tmp_path,
        "models.yaml",
        """\
        extends: bundled
        models:
          large: {provider: scripted}
          mine: {provider: other, fallbacks: [small]}
        """,
    )
    catalog = loader.load_catalog(providers, models)
    assert list(catalog.providers) == ["scripted", "other"]
    assert catalog.providers["other"].base_url == "http://127.0.0.1:9"
    assert list(catalog.models) == ["small", "large", "mine"]
    assert catalog.models["large"].label == "large"  # replaced whole, not merged key by key
    assert catalog.models["large"].provider == "scripted"
    assert catalog.models["small"].fallbacks == ["large"]
    assert catalog.settings.retry == RetryConfig(max_attempts=4)
    assert catalog.settings.timeouts == TimeoutConfig(connect=2)
    assert catalog.sources == (
        str(bundled / "providers.yaml"),
        str(providers),
        str(bundled / "models.yaml"),
        str(models),
    )


def test_without_extends_a_file_replaces_the_bundled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = tmp_path / "bundled"
    write(bundled, "models.yaml", "models:\n  gone: {provider: scripted}\n")
    monkeypatch.setattr(resources, "bundled_path", lambda name: bundled / name)
    providers, models = files(tmp_path)
    assert list(loader.load_catalog(providers, models).models) == ["small"]


def test_extends_problems_point_at_the_right_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = tmp_path / "bundled"
    bundled_models = write(bundled, "models.yaml", "models:\n  small: {provider: scripted}\n")
    monkeypatch.setattr(resources, "bundled_path", lambda name: bundled / name)
    providers = write(tmp_path, "providers.yaml", PROVIDERS)
    models = write(
        tmp_path,
        "models.yaml",
        "extends: bundld\nmodels:\n  mine: {provider: scripted, fallbacks: [smal]}\n",
    )
    assert problems_of(providers, models) == [
        f"{models}:1:10: extends: must be 'bundled', got 'bundld'",
        f"{models}:3:42: models.mine.fallbacks[0]: unknown model 'smal'",
    ]
    models.write_text(
        "extends: bundled\nmodels:\n  mine: {provider: scripted, fallbacks: [smal]}\n",
        encoding="utf-8",
    )
    bundled_models.write_text(
        "models:\n  small: {provider: scripted, lable: x}\n", encoding="utf-8"
    )
    assert problems_of(providers, models) == [
        f"{bundled_models}:2:31: models.small.lable: unknown key 'lable' (did you mean 'label'?)",
        f"{models}:3:42: models.mine.fallbacks[0]: unknown model 'smal' (did you mean 'small'?)",
    ]


def test_the_bundled_file_cannot_extend_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers, models = files(tmp_path, models="extends: bundled\n" + MODELS)
    monkeypatch.setattr(resources, "bundled_path", lambda name: tmp_path / name)
    assert problems_of(providers, models) == [
        f"{models}:1:1: extends: the bundled file cannot extend itself"
    ]


# --------------------------------------------------------------------------- fuzz

_YAMLISH = st.text(alphabet="models:provider{}[]-&*!<>|'\"#,?\n\t 0123456789.~%@`\\", max_size=200)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "provider",
                    "fallbacks",
                    "m",
                    "models",
                    "label",
                    "retry",
                    "timeouts",
                    "read",
                    "extra_params",
                    "lable",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content=st.binary(max_size=200)
    | _YAMLISH.map(str.encode)
    | _JSONISH.map(lambda value: yaml.safe_dump({"models": value}).encode())
    | _JSONISH.map(lambda value: yaml.safe_dump(value).encode()),
    strict=st.booleans(),
)
def test_only_config_error_escapes(tmp_path: Path, content: bytes, strict: bool) -> None:
    providers = write(tmp_path, "providers.yaml", PROVIDERS)
    models = tmp_path / "models.yaml"
    models.write_bytes(content)
    problems = None
    try:
        loader.load_catalog(providers, models, strict=strict, environ={})
    except ConfigError as exc:
        problems = exc.problems
    if problems is not None:
        assert problems
    for problem in problems or ():
        assert problem.line >= 1
        assert problem.column >= 1
        assert problem.file in (str(providers), str(models))


USER_PROVIDER_WITH_OPTIONS = """\
from pydantic import BaseModel, ConfigDict

from runtime.providers.base import LLMProvider


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = "eu"


class Declared(LLMProvider):
    Options = Opts
    ModelOptions = None

    def _initialize_client(self, **kwargs):
        self._client = None

    async def completion(self, prompt, model, temperature, max_tokens, **kwargs):
        return prompt
"""


def test_options_are_checked_at_load_for_our_classes_and_for_any_class_under_strict(
    tmp_path: Path,
) -> None:
    """Whole messages, file:line:column: our classes at every load, a user's under --strict."""
    write(tmp_path, "declared_options_provider.py", USER_PROVIDER_WITH_OPTIONS)
    providers, models = files(
        tmp_path,
        """\
        providers:
          oa:
            class: runtime.providers.openai_provider.OpenAIProvider
            base_url: https://api.openai.com/v1
            options: {organizaton: org-1, max_connections: "8"}
          mine:
            class: declared_options_provider.Declared
            options: {regoin: us}
        """,
        """\
        models:
          a: {provider: oa, options: {gguf: x.gguf}}
          b: {provider: mine, options: {anything: 1}}
        """,
    )
    ours = [
        f"{providers}:5:15: providers.oa.options.organizaton: unknown option 'organizaton' (did "
        "you mean 'organization'?); known: headers, max_connections, organization, project, "
        "stream_usage",
        f"{providers}:5:52: providers.oa.options.max_connections: must be an integer",
        f"{models}:2:31: models.a.options.gguf: provider 'oa' (OpenAIProvider) takes no options "
        "here",
    ]
    assert problems_of(providers, models) == ours
    assert problems_of(providers, models, strict=True) == [
        *ours[:2],
        f"{providers}:8:15: providers.mine.options.regoin: unknown option 'regoin' (did you mean "
        "'region'?); known: region",
        ours[2],
        f"{models}:3:33: models.b.options.anything: provider 'mine' (Declared) takes no options "
        "here",
    ]
