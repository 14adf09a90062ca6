"""The local sync daemon and the server side of workspaces (arrives with its issue)."""

__all__: list[str] = []
