"""The lean paths: what fast start and the hot path skip, and that skipping changes nothing."""

from __future__ import annotations

import pytest

from runtime import resources, yamlpos


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
