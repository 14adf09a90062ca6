"""The four intakes built together over one orchestrator: what the webhook routes use,
and the processors that finish their deliveries in a worker."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from integrations.base import Intake
from integrations.config import IntegrationSettings, Routing
from integrations.connectors import NAMES, ConnectorState, Loaded, states
from integrations.deliveries import Deliveries
from integrations.errors import NotConfigured
from integrations.github.config import GitHubSettings
from integrations.github.intake import GitHubIntake
from integrations.github.processor import GitHubProcessor
from integrations.jira.config import JiraSettings
from integrations.jira.intake import JiraIntake
from integrations.sentry.config import SentrySettings
from integrations.sentry.intake import SentryIntake
from integrations.sentry.processor import SentryProcessor
from integrations.slack.config import SlackSettings
from integrations.slack.intake import SlackIntake
from integrations.slack.processor import SlackProcessor
from integrations.submit import Submitter
from orchestrator.base import IntakeProcessor
from orchestrator.lifecycle import Lifecycle


@dataclass
class Hub:
    github: GitHubIntake
    slack: SlackIntake
    jira: JiraIntake
    sentry: SentryIntake
    refused: dict[str, str] = field(default_factory=dict)
    """Connectors whose settings are wrong -> why; only their deliveries are refused."""
    unread: str = ""
    """Why autan.toml could not be read (so its [policy] is not known); empty: it was."""

    @property
    def routing(self) -> Routing:
        """autan.toml's mapping, which every intake shares."""
        return self.jira.routing

    def intake(self, name: str) -> Intake:
        """The connector `name`'s intake; NotConfigured (503) when its settings are wrong."""
        if why := self.refused.get(name):
            raise NotConfigured(f"{NAMES[name]} deliveries are refused: {why}")
        intake: Intake = getattr(self, name)
        return intake

    def states(self) -> list[ConnectorState]:
        """Each connector's state: configured, off, or misconfigured and why."""
        return states(
            {
                "github": self.github.settings,
                "slack": self.slack.settings,
                "jira": self.jira.settings,
                "sentry": self.sentry.settings,
            },
            self.refused,
        )

    @classmethod
    def build(
        cls,
        lifecycle: Lifecycle,
        client: redis.Redis,
        *,
        common: IntegrationSettings,
        routing: Routing,
        github: GitHubSettings,
        slack: SlackSettings,
        jira: JiraSettings,
        sentry: SentrySettings,
    ) -> Hub:
        submitter, deliveries = Submitter(lifecycle, routing), Deliveries(client)
        return cls(
            github=GitHubIntake(github, routing, submitter, deliveries),
            slack=SlackIntake(slack, common, routing, submitter, deliveries),
            jira=JiraIntake(jira, routing, submitter),
            sentry=SentryIntake(sentry, routing, submitter, deliveries),
        )

    def processors(self) -> dict[str, IntakeProcessor]:
        """The `autan.intakes` processors over these same settings (what a worker would build)."""
        return {
            "github": GitHubProcessor(self.github.settings, self.github.routing),
            "slack": SlackProcessor(self.slack.settings, self.slack.common, self.slack.routing),
            "sentry": SentryProcessor(
                self.sentry.settings, self.sentry.routing, self.github.settings
            ),
        }

    @classmethod
    def from_env(cls, lifecycle: Lifecycle, client: redis.Redis) -> Hub:
        """For an entry point: every setting from the environment, the mapping from autan.toml;
        a connector whose settings are wrong is built on defaults and refuses its deliveries."""
        loaded = Loaded.from_env()
        hub = cls.build(
            lifecycle,
            client,
            common=loaded.common,
            routing=loaded.routing,
            github=loaded.github,
            slack=loaded.slack,
            jira=loaded.jira,
            sentry=loaded.sentry,
        )
        hub.refused = loaded.refused
        hub.unread = loaded.unread
        return hub
