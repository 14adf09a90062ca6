"""`autan demo` end to end: the bundled repository is fixed and its tests pass."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from cli.demo import demo


def test_the_demo_fixes_the_bundled_repository_and_shows_the_diff_and_passing_tests() -> None:
    app = typer.Typer()
    app.command()(demo)
    result = CliRunner().invoke(app, ["--delay-ms", "0"])
    assert result.exit_code == 0, result.output
    assert "-        return round(self.subtotal() * discount, 2)" in result.output
    assert "+        return round(self.subtotal() * (1 - discount), 2)" in result.output
    assert (
        "tests: verified: 2 fixed, 2 still passing, 0 broken, 0 vanished "
        "(python3 -m unittest discover -s tests -t . -v); "
        "fixes what failed on the base and breaks nothing"
    ) in result.output
    assert "change modified cart.py" in result.output
    # The first test run failed (the script only reads the cart after it saw `FAILED (`).
    assert "AssertionError: 2.0 != 18.0" in result.output
    assert "Two tests fail on the totals. Reading the cart." in result.output
