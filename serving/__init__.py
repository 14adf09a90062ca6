"""Model access: OpenAI-compatible client, router, vLLM profiles, costs (arrives with its issue)."""

__all__: list[str] = []
