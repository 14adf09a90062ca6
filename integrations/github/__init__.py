"""GitHub: labelled issues and @autan mentions in, branches, pull requests and comments out."""

from __future__ import annotations

from integrations.github.config import GitHubSettings
from integrations.github.intake import GitHubIntake
from integrations.github.publish import Published, Publisher
from integrations.github.reporter import GitHubReporter

__all__ = ["GitHubIntake", "GitHubReporter", "GitHubSettings", "Published", "Publisher"]
