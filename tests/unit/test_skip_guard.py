"""The CI skip guard: a skip whose reason is not allowed fails the session (pytester runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.skip_guard import ALLOWED_FILE, SkipGuard, read_allowed

pytest_plugins = ["pytester"]

SKIPS = """
import pytest

def test_runs():
    assert True

def test_needs_a_package():
    pytest.importorskip("no_such_package_for_the_skip_guard")

@pytest.fixture
def engine():
    pytest.skip("the engine is not installed")

def test_needs_the_engine(engine):
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""
PASSES = """
import pytest

def test_runs():
    assert True

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""
MODULE_SKIP = """
import pytest

pytest.importorskip("no_such_package_for_the_skip_guard")

def test_never_collected():
    pass
"""
#: Not needed inside, and its summary hook costs seconds per run (it imports hypothesis).
FAST = ("-p", "no:hypothesispytest", "-p", "no:cacheprovider")
PACKAGE_REASON = "could not import 'no_such_package_for_the_skip_guard': No module named "
PACKAGE_REASON += "'no_such_package_for_the_skip_guard'"


@pytest.fixture
def ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


@pytest.mark.usefixtures("ini")
def test_an_unexpected_skip_fails_the_session_and_names_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skips=SKIPS)
    result = pytester.runpytest(*FAST, plugins=[SkipGuard(allowed=())])
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*unexpected skips (LLM_RUNTIME_CI=1)*",
            f"test_skips.py::test_needs_a_package: {PACKAGE_REASON}",
            "test_skips.py::test_needs_the_engine: the engine is not installed",
            "2 test(s) skipped for a reason not listed in allowed-skips.txt*",
        ]
    )


@pytest.mark.usefixtures("ini")
def test_a_session_without_skips_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_passes=PASSES)
    result = pytester.runpytest(*FAST, plugins=[SkipGuard(allowed=())])
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "unexpected skips" not in result.stdout.str()


@pytest.mark.usefixtures("ini")
def test_allowed_reasons_do_not_fail_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skips=SKIPS)
    guard = SkipGuard(allowed=(PACKAGE_REASON, "the engine is not installed"))
    result = pytester.runpytest(*FAST, plugins=[guard])
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.usefixtures("ini")
def test_a_module_skipped_at_collection_fails_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_module=MODULE_SKIP, test_passes=PASSES)
    result = pytester.runpytest(*FAST, plugins=[SkipGuard(allowed=())])
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"test_module.py: {PACKAGE_REASON}"])


@pytest.mark.usefixtures("ini")
def test_a_failing_session_keeps_its_exit_code(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skips=SKIPS + "\ndef test_fails():\n    assert False\n")
    result = pytester.runpytest(*FAST, plugins=[SkipGuard(allowed=())])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.usefixtures("ini")
@pytest.mark.parametrize(
    ("value", "fails"),
    [pytest.param("1", True, id="ci"), pytest.param(None, False, id="not-ci")],
)
def test_the_suites_conftest_turns_the_guard_on_with_the_env_var(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str | None, fails: bool
) -> None:
    # The repository's own conftest as a plugin, as CI runs it (LLM_RUNTIME_CI=1 in .ci/run).
    if value is None:
        monkeypatch.delenv("LLM_RUNTIME_CI", raising=False)
    else:
        monkeypatch.setenv("LLM_RUNTIME_CI", value)
    pytester.makepyfile(test_skips=SKIPS)
    result = pytester.runpytest(*FAST, "-p", "tests.conftest")
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    expected = pytest.ExitCode.TESTS_FAILED if fails else pytest.ExitCode.OK
    assert result.ret == expected


def test_the_repositorys_allow_list_is_empty() -> None:
    # Every skip in CI is a defect until someone writes down why it is not.
    assert ALLOWED_FILE.is_file()
    assert read_allowed() == frozenset()


def test_the_allow_list_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "allowed.txt"
    path.write_text("# why\n\n  reason one  \n#reason two\nreason three\n", encoding="utf-8")
    assert read_allowed(path) == {"reason one", "reason three"}
