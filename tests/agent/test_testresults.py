"""Per-test outcomes from each runner's output, and the verdict against a baseline: the rules,
counts where a runner names no tests, and output that tries to look like a pass."""

from __future__ import annotations

from agent.baseline import Baseline, merge
from agent.testresults import TestReport, read_report
from agent.verify import harness_changes, judge

PYTEST = """\
tests/test_x.py::test_print PASSED
PASSED tests/test_x.py::test_b
=========================== short test summary info ============================
PASSED tests/test_x.py::test_a
PASSED tests/test_x.py::test_e[a b]
SKIPPED [1] tests/test_x.py:8: unconditional skip
XFAIL tests/test_x.py::test_d
ERROR tests/test_y.py::test_err - RuntimeError
FAILED tests/test_x.py::test_b - assert 0 - and more
1 failed, 2 passed, 1 skipped, 1 xfailed, 1 error in 0.50s
"""
UNITTEST = """\
test_a (tests.test_u.T.test_a)
Doc line. ... x
ok
test_b (tests.test_u.T.test_b) ... FAIL
test_c (tests.test_u.T.test_c) ... skipped 'no'
test_d (tests.test_u.T) ... ERROR
test_e (tests.test_u.T.test_e) ... expected failure

Ran 5 tests in 0.001s

FAILED (failures=1, errors=1, skipped=1, expected failures=1)
"""


def report(tests: dict[str, str], exit_code: int | None = 1) -> TestReport:
    passed = sum(o == "passed" for o in tests.values())
    failed = sum(o == "failed" for o in tests.values())
    return TestReport("pytest", exit_code, tests, passed, failed)  # type: ignore[arg-type]


def test_pytest_outcomes_come_from_the_summary_only() -> None:
    # A test's own output printed `PASSED tests/test_x.py::test_b`: the summary says it failed.
    got = read_report("pytest", 1, PYTEST)
    assert got.tests == {
        "tests/test_x.py::test_a": "passed",
        "tests/test_x.py::test_e[a b]": "passed",
        "tests/test_x.py::test_d": "skipped",
        "tests/test_y.py::test_err": "failed",
        "tests/test_x.py::test_b": "failed",
    }
    assert (got.passed, got.failed) == (2, 2)


def test_unittest_verbose_outcomes_survive_interleaved_output_and_old_names() -> None:
    assert read_report("unittest", 1, UNITTEST).tests == {
        "tests.test_u.T.test_a": "passed",
        "tests.test_u.T.test_b": "failed",
        "tests.test_u.T.test_c": "skipped",
        "tests.test_u.T.test_d": "failed",
        "tests.test_u.T.test_e": "skipped",
    }


def test_go_and_cargo_name_their_tests() -> None:
    go = "=== RUN TestA\n--- PASS: TestA (0.00s)\n--- FAIL: TestB (0.01s)\n--- SKIP: TestC\n"
    assert read_report("go", 1, go).tests == {
        "TestA": "passed",
        "TestB": "failed",
        "TestC": "skipped",
    }
    cargo = "test a::one ... ok\ntest a::two ... FAILED\ntest a::three ... ignored\n"
    assert read_report("cargo", 1, cargo).tests == {
        "a::one": "passed", "a::two": "failed", "a::three": "skipped",
    }  # fmt: skip


def test_output_with_nothing_to_read_has_no_names_and_no_counts() -> None:
    got = read_report("make test", 2, "make: *** [test] Error 2\n\x00\xff garbage")
    assert (got.tests, got.passed, got.failed, got.exit_code) == ({}, None, None, 2)


def test_two_runs_that_disagree_or_miss_a_test_mark_it_flaky() -> None:
    first = report({"a": "passed", "b": "failed", "c": "passed"})
    second = report({"a": "passed", "b": "passed"})
    assert merge(first, second).flaky == ("b", "c")


def test_the_rules_of_verified() -> None:
    base = Baseline(report({"ok": "passed", "bug": "failed", "svc": "failed", "old": "skipped"}))
    fixed = judge(base, report({"ok": "passed", "bug": "passed", "svc": "failed"}), "")
    assert fixed.verified and fixed.fixed == ["bug"] and fixed.still_failing == ["svc"]
    broke = judge(base, report({"ok": "failed", "bug": "passed", "svc": "failed"}), "")
    assert not broke.verified and broke.broke == ["ok"] and broke.regressions == 1
    gone = judge(base, report({"bug": "passed", "svc": "failed", "ok": "skipped"}), "")
    assert not gone.verified and gone.vanished == ["ok"] and gone.regressions == 1
    new_red = judge(
        base, report({"ok": "passed", "bug": "passed", "svc": "failed", "n": "failed"}), ""
    )
    assert not new_red.verified and new_red.broke == ["n"]
    stopped = judge(base, TestReport("pytest", None, note="timed out"), "")
    assert not stopped.verified and stopped.reason == "the tests did not finish: timed out"


def test_where_nothing_failed_on_the_base_new_passing_tests_verify() -> None:
    base = Baseline(report({"ok": "passed"}, exit_code=0))
    added = judge(base, report({"ok": "passed", "new": "passed"}, exit_code=0), "")
    assert added.verified and added.added == ["new"]
    same = judge(base, report({"ok": "passed"}, exit_code=0), "")
    assert not same.verified and same.reason == "no test failed on the base and no test was added"


def test_counts_decide_where_no_names_and_exit_codes_where_no_counts() -> None:
    base = Baseline(TestReport("t", 1, passed=3, failed=1))
    assert judge(base, TestReport("t", 0, passed=4, failed=0), "").verified
    assert not judge(base, TestReport("t", 0, passed=3, failed=0), "").verified  # one is gone
    assert not judge(base, TestReport("t", 1, passed=4, failed=1), "").verified
    bare = Baseline(TestReport("make test", 2))
    assert judge(bare, TestReport("make test", 0), "").verified
    assert not judge(Baseline(TestReport("make test", 0)), TestReport("make test", 0), "").verified


def diff_of(path: str, body: str) -> str:
    return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n{body}"


def test_harness_files_are_listed_and_a_pyproject_only_for_its_test_sections() -> None:
    diff = "".join(
        [
            diff_of("lib.py", "@@ -1 +1 @@\n-a\n+b\n"),
            diff_of("tests/conftest.py", "@@ -0,0 +1 @@\n+x\n"),
            diff_of(".github/workflows/ci.yml", "@@ -1 +1 @@\n-a\n+b\n"),
            diff_of(
                "pyproject.toml", "@@ -1 +1 @@ [tool.pytest.ini_options]\n-a\n+addopts = '-k x'\n"
            ),
            diff_of("sub/setup.cfg", "@@ -1 +1 @@ [metadata]\n-version = 1\n+version = 2\n"),
            diff_of("usercustomize.py", "@@ -0,0 +1 @@\n+import os\n"),
        ]
    )
    assert harness_changes(diff) == [
        "tests/conftest.py", ".github/workflows/ci.yml", "pyproject.toml", "usercustomize.py",
    ]  # fmt: skip
    verdict = judge(Baseline(report({"bug": "failed"})), report({"bug": "passed"}), diff)
    assert verdict.verified and "test harness changed: tests/conftest.py" in verdict.outcome
