"""Jira: labelled issues in, a comment and a transition out."""

from __future__ import annotations

from integrations.jira.config import JiraSettings
from integrations.jira.intake import JiraIntake
from integrations.jira.reporter import JiraReporter

__all__ = ["JiraIntake", "JiraReporter", "JiraSettings"]
