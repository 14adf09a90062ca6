"""Isolated copy-on-write workspaces: backends, base trees, limits, pool (arrives with its issue)."""

__all__: list[str] = []
