"""A corpus of broken config files: each gives one paragraph with file:line, never a traceback.

tests/corpus/ holds one broken file per way a config can be wrong, named by what is wrong.
A ``models-*`` file is validated with ``_valid-providers.yaml``, a ``providers-*`` file with
``_valid-models.yaml`` (files starting with ``_`` are those valid partners). The first line
of a text file says what ``llm-runtime validate`` must report first::

    # expect: LINE: text the first problem line contains
    # expect[strict]: LINE: text      (validated with --strict, CORPUS_API_KEY set)
    # reject: text that must not appear anywhere in the output (e.g. a pasted secret)

Empty and binary files cannot carry that comment; their expectation is in ``TABLE`` below.
A corpus file that stops failing, or fails elsewhere than expected, fails its test.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from runtime import loader, resources, schemas, yamlpos
from runtime.cli import main
from runtime.config import RuntimeSettings

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
VALID_PROVIDERS = CORPUS / "_valid-providers.yaml"
VALID_MODELS = CORPUS / "_valid-models.yaml"
BOM = "\ufeff".encode()


@dataclass(frozen=True)
class Expect:
    """What validating one corpus file must report."""

    line: int
    text: str
    strict: bool = False
    reject: tuple[str, ...] = ()


#: Files that cannot carry a ``# expect:`` comment (empty, binary, not UTF-8 at line 1).
TABLE = {
    "models-empty.yaml": Expect(
        1, "the file is empty: it should be a mapping with a 'models:' key"
    ),
    "providers-empty.yaml": Expect(
        1, "the file is empty: it should be a mapping with a 'providers:' key"
    ),
    "models-binary-junk.yaml": Expect(1, "not UTF-8 text (byte 0xff): save the file as UTF-8"),
    "providers-binary-junk.yaml": Expect(1, "not UTF-8 text (byte 0xff): save the file as UTF-8"),
    "models-utf16.yaml": Expect(1, "not UTF-8 text (byte 0xff): save the file as UTF-8"),
    "models-nul-bytes.yaml": Expect(3, "control character U+0000 is not allowed in YAML"),
}

#: Corpus files whose output shows a loader bug reported to the lead (xfail, strict).
KNOWN_BUGS: dict[str, str] = {}

_EXPECT = re.compile(r"# expect(?P<strict>\[strict\])?: (?P<line>\d+): (?P<text>.+)")
_REJECT = re.compile(r"# reject: (?P<text>.+)")
_HEADER = re.compile(r"llm-runtime validate: (?P<n>\d+) problems? in the configuration:")


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and not p.name.startswith("_"))


def expectation(path: Path) -> Expect:
    """The ``# expect:`` / ``# reject:`` comments heading ``path``, else its TABLE entry."""
    if path.name in TABLE:
        return TABLE[path.name]
    head = path.read_bytes().removeprefix(BOM).split(b"\n")
    found = _EXPECT.fullmatch(head[0].decode("utf-8").rstrip("\r"))
    if found is None:
        raise AssertionError(f"{path.name}: no '# expect: LINE: text' first line, not in TABLE")
    rejects = []
    for raw in head[1:]:
        rejected = _REJECT.fullmatch(raw.decode("utf-8", errors="replace").rstrip("\r"))
        if rejected is None:
            break
        rejects.append(rejected["text"])
    return Expect(int(found["line"]), found["text"], bool(found["strict"]), tuple(rejects))


def argv_for(path: Path, expect: Expect) -> list[str]:
    if path.name.startswith("models-"):
        pair = ["--providers", str(VALID_PROVIDERS), "--models", str(path)]
    elif path.name.startswith("providers-"):
        pair = ["--providers", str(path), "--models", str(VALID_MODELS)]
    else:
        raise AssertionError(f"{path.name}: corpus files start with 'models-' or 'providers-'")
    return ["validate", *pair, *(["--strict"] if expect.strict else [])]


def check_paragraph(err: str, path: Path, expect: Expect) -> None:
    """``err`` is one paragraph: a header, then one ``FILE:LINE:COL: ...`` line per problem."""
    assert "Traceback" not in err
    assert err.endswith("\n")
    assert not err.endswith("\n\n")
    lines = err[:-1].split("\n")
    assert all(line.strip() for line in lines), f"blank line in:\n{err}"
    header = _HEADER.fullmatch(lines[0])
    assert header is not None, lines[0]
    assert int(header["n"]) == len(lines) - 1 >= 1
    where = re.compile(rf"  {re.escape(str(path))}:(\d+):(\d+): \S.*")
    positions = []
    for line in lines[1:]:
        found = where.fullmatch(line)
        assert found is not None, f"a problem outside {path.name} or without a position: {line}"
        positions.append((int(found[1]), int(found[2])))
    assert positions == sorted(positions)
    assert positions[0][0] == expect.line, lines[1]
    assert expect.text in lines[1]
    for text in expect.reject:
        assert text not in err


def _params() -> list[object]:
    out = []
    for path in corpus_files():
        marks = []
        if path.name in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[path.name]))
        out.append(pytest.param(path, id=path.name, marks=marks))
    return out


def test_the_corpus_is_large_and_every_file_has_an_expectation() -> None:
    files = corpus_files()
    assert len(files) >= 45
    assert set(TABLE) <= {p.name for p in files}
    assert set(KNOWN_BUGS) <= {p.name for p in files}
    for path in files:
        assert path.stat().st_size < 2048, f"{path.name}: keep corpus files small"
        expectation(path)  # raises when a file has none


def test_the_valid_partners_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    argv = ["validate", "--providers", str(VALID_PROVIDERS), "--models", str(VALID_MODELS)]
    assert main(argv, out=out) == 0
    assert out.getvalue().startswith("OK: 2 providers, 1 models (")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("path", _params())
def test_broken_config_fails_with_one_paragraph(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expect = expectation(path)
    monkeypatch.setenv("CORPUS_API_KEY", "dummy")  # strict runs: only the class is wrong
    out = io.StringIO()
    code = main(argv_for(path, expect), out=out)
    err = capsys.readouterr().err
    assert code == 1, f"{path.name} no longer fails validation"
    assert out.getvalue() == ""
    check_paragraph(err, path, expect)


SUBPROCESS_SAMPLE = [
    "models-binary-junk.yaml",
    "models-alias-bomb.yaml",
    "models-tab-indent.yaml",
    "models-python-object-tag.yaml",
    "providers-class-not-importable.yaml",
]


def test_the_console_script_prints_no_traceback(tmp_path: Path) -> None:
    """The real ``python -m runtime`` process, over a handful of the corpus."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["CORPUS_API_KEY"] = "dummy"
    for name in SUBPROCESS_SAMPLE:
        path = CORPUS / name
        expect = expectation(path)
        proc = subprocess.run(
            [sys.executable, "-m", "runtime", *argv_for(path, expect)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1, name
        assert proc.stdout == ""
        check_paragraph(proc.stderr, path, expect)


def test_a_utf8_bom_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Editors on Windows write a BOM: the loader drops it (and lines still count from 1)."""
    models = tmp_path / "models.yaml"
    models.write_bytes(BOM + b"models:\n  echo:\n    provider: scripted\n")
    argv = ["validate", "--providers", str(VALID_PROVIDERS), "--models", str(models)]
    assert main(argv, out=io.StringIO()) == 0
    assert capsys.readouterr().err == ""


def test_crlf_line_ends_report_the_same_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = CORPUS / "models-unknown-key.yaml"
    crlf = tmp_path / source.name
    crlf.write_bytes(source.read_bytes().replace(b"\n", b"\r\n"))
    expect = expectation(source)
    assert main(argv_for(crlf, expect), out=io.StringIO()) == 1
    check_paragraph(capsys.readouterr().err, crlf, expect)


# --------------------------------------------------------------------------- libyaml vs PyYAML

BUNDLED = [resources.bundled_path("providers.yaml"), resources.bundled_path("models.yaml")]
EVERY_FILE = [
    pytest.param(path, id=path.name)
    for path in [*sorted(p for p in CORPUS.iterdir() if p.is_file()), *BUNDLED]
]
needs_libyaml = pytest.mark.skipif(
    not yaml.__with_libyaml__, reason="PyYAML was built without libyaml"
)


def _paths(value: object, path: yamlpos.Path = ()) -> Iterator[yamlpos.Path]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def read_with(parser: str, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    """What ``parse_yaml`` gives with one parser: the value and every position, or problems."""
    monkeypatch.setattr(yamlpos, "LIBYAML", parser == "libyaml")
    try:
        data, positions = yamlpos.parse_yaml(raw)
    except yamlpos.YAMLReadError as exc:
        return exc.problems
    where = [(p, positions.value(p), positions.key(p)) for p in _paths(data)]
    return data, where, positions.value(("no", "such", 0))


@needs_libyaml
@pytest.mark.parametrize("path", EVERY_FILE)
def test_libyaml_and_pure_python_read_every_file_alike(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = path.read_bytes()
    assert read_with("libyaml", raw, monkeypatch) == read_with("python", raw, monkeypatch)


@needs_libyaml
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: 1\nb:\tc\n", id="tab-after-colon"),
        pytest.param("a: b\tc\n", id="tab-in-plain-scalar"),
        pytest.param("!!int \t'1': x\n", id="tab-between-a-tag-and-a-quote"),
        pytest.param("a: {b: }\n", id="empty-flow-value"),
        pytest.param("a: [b: ]\n", id="empty-flow-pair-value"),
        pytest.param("? a # c", id="explicit-key-without-value"),
        pytest.param("a: !\n", id="empty-non-specific-tag"),
        pytest.param("a:\n\ufeff  b: 2\n", id="byte-order-mark-inside"),
        pytest.param("--- # only a comment", id="empty-document"),
        pytest.param("!@:!r/ x\n", id="tag-characters"),
        pytest.param("a: >#\n", id="block-header-into-comment"),
    ],
)
def test_libyaml_and_pure_python_agree_where_they_read_differently(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of these reads differently in libyaml and in PyYAML: PyYAML's reading is taken."""
    raw = text.encode()
    assert read_with("libyaml", raw, monkeypatch) == read_with("python", raw, monkeypatch)


_PIECES = ["models:", "\n  ", "\n", "- ", ": ", "&a ", "*a", "<<: ", "!!str ", "!!int ", "'q'"]
_PIECES += ['"d\\t"', "|\n  x", ">-\n  y", "# c", "\t", "[", "]", "{", "}", ", ", "? ", "---\n"]
_PIECES += ["!foo ", "!", "~", "1e3", "0x10", ".inf", "2024-01-01", "a", "b", "\r", "\ufeff"]


@needs_libyaml
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=25).map("".join)
    | st.text(alphabet="ab:-[]{}&*!|>'\"#,?\n\t 01.~", max_size=60)
)
def test_libyaml_and_pure_python_read_random_text_alike(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        raw = text.encode()
        assert read_with("libyaml", raw, monkeypatch) == read_with("python", raw, monkeypatch)


@needs_libyaml
def test_libyaml_and_pure_python_give_the_same_validate_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORPUS_API_KEY", "dummy")
    for path in corpus_files():
        argv = argv_for(path, expectation(path))
        said = []
        for libyaml in (True, False):
            monkeypatch.setattr(yamlpos, "LIBYAML", libyaml)
            code = main(argv, out=io.StringIO())
            said.append((code, capsys.readouterr().err))
        assert said[0] == said[1], path.name


# --------------------------------------------------------------------------- pydantic vs jsonschema


def _kind(path: Path) -> loader.Kind:
    return "providers" if "providers" in path.name.split("-")[0] else "models"


def _verdicts() -> dict[str, tuple[bool, bool, bool]]:
    """Per file that reads as a mapping: (strict pydantic passes, the JSON Schema passes,
    the JSON Schema and then lax pydantic pass: what the loader checked before)."""
    out = {}
    for param in EVERY_FILE:
        (path,) = param.values
        assert isinstance(path, Path)
        try:
            data, _ = yamlpos.load_yaml_file(path)
        except yamlpos.YAMLReadError:
            continue
        if not isinstance(data, dict):
            continue
        kind = _kind(path)
        strict = loader._prevalidated(kind, data) is not None
        schema = not any(True for _ in schemas.validator(kind).iter_errors(data))
        both = schema
        if schema:
            cls, key_field = loader._ENTRY_MODELS[kind]
            try:
                for name, entry in data[kind].items():
                    cls.model_validate({**entry, key_field: name})
                RuntimeSettings.model_validate(data.get("settings", {}))
            except ValidationError:
                both = False
        out[path.name] = (strict, schema, both)
    return out


def test_the_strict_pydantic_check_agrees_with_the_json_schema() -> None:
    """The happy path skips jsonschema: it may only do so where jsonschema finds nothing."""
    verdicts = _verdicts()
    assert len(verdicts) >= 50
    refused_by_pydantic = {name for name, (strict, _, _) in verdicts.items() if not strict}
    refused_by_schema = {name for name, (_, schema, _) in verdicts.items() if not schema}
    refused_before = {name for name, (_, _, both) in verdicts.items() if not both}
    assert refused_by_pydantic == refused_before
    # The JSON Schema cannot say "listed twice": pydantic's validator does (and did before).
    assert refused_by_pydantic - refused_by_schema == {"models-fallback-listed-twice.yaml"}
    assert {"models.yaml", "providers.yaml", "_valid-models.yaml"} <= (
        verdicts.keys() - refused_by_pydantic
    )


@pytest.mark.parametrize("path", _params())
def test_the_messages_are_those_of_the_json_schema_path(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same output with the strict pre-check and without it (jsonschema on every file)."""
    monkeypatch.setenv("CORPUS_API_KEY", "dummy")
    argv = argv_for(path, expectation(path))
    code = main(argv, out=io.StringIO())
    fast = capsys.readouterr().err
    monkeypatch.setattr(loader, "_prevalidated", lambda kind, data: None)
    assert (code, fast) == (main(argv, out=io.StringIO()), capsys.readouterr().err)
