"""Connectors to GitHub, Slack, Jira and Sentry: intake and report-back (arrive with issue 6)."""

__all__: list[str] = []
