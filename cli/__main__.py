"""`python -m cli`: the `autan` command."""

from __future__ import annotations

from cli.main import main

main()
