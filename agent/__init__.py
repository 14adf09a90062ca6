"""The coding agent: step loop, tools, context budget, verification (arrives with its issue)."""

__all__: list[str] = []
