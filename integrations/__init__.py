"""Connectors to GitHub, Slack, Jira and Sentry: intake and report-back (arrive with their issue)."""

__all__: list[str] = []
