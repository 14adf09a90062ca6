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
from integrations.jira.processor import JiraProcessor
from integrations.routing_file import RoutingFile
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
    routing_file: RoutingFile | None = None
    """autan.toml, re-read when it changes; None: the mapping given is kept."""
    refused: dict[str, str] = field(default_factory=dict)
    """Connectors whose settings are wrong -> why; only their deliveries are refused."""
    shared_problem: str = ""
    """Why the settings every connector shares could not be read; empty: they were."""

    @property
    def routing(self) -> Routing:
        """autan.toml's mapping, which every intake shares."""
        return self.jira.routing

    @property
    def unread(self) -> str:
        """Why autan.toml (so its [policy] and [sso.roles]) or the shared settings cannot be
        read, with the file looked at for an edit first; empty: `routing` is in force."""
        if self.shared_problem or self.routing_file is None:
            return self.shared_problem
        self.routing_file.refresh()
        return "" if self.routing_file.in_force else self.routing_file.problem

    def intake(self, name: str) -> Intake:
        """The connector `name`'s intake, with autan.toml current; NotConfigured (503) when its
        settings are wrong."""
        if why := self.refusals().get(name):
            raise NotConfigured(f"{NAMES[name]} deliveries are refused: {why}")
        intake: Intake = getattr(self, name)
        return intake

    def refusals(self) -> dict[str, str]:
        """Each refused connector -> why: its own settings, or autan.toml while no version of it
        is in force (a broken edit of a good one only warns: see `warnings`)."""
        if self.routing_file is None:
            return self.refused
        self.routing_file.refresh()
        if self.routing_file.in_force:
            return self.refused
        return {name: self.refused.get(name) or self.routing_file.problem for name in NAMES}

    def warnings(self) -> list[str]:
        """What is wrong without refusing anything: an edit of autan.toml that was refused."""
        found = self.routing_file.warning() if self.routing_file is not None else ""
        return [found] if found else []

    def states(self) -> list[ConnectorState]:
        """Each connector's state: configured, off, or misconfigured and why."""
        return states(
            {
                "github": self.github.settings,
                "slack": self.slack.settings,
                "jira": self.jira.settings,
                "sentry": self.sentry.settings,
            },
            self.refusals(),
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
            jira=JiraIntake(jira, routing, submitter, deliveries),
            sentry=SentryIntake(sentry, routing, submitter, deliveries),
        )

    def processors(self) -> dict[str, IntakeProcessor]:
        """The `autan.intakes` processors over these same settings (what a worker would build)."""
        return {
            "github": GitHubProcessor(self.github.settings, self.github.routing),
            "slack": SlackProcessor(self.slack.settings, self.slack.common, self.slack.routing),
            "jira": JiraProcessor(self.jira.routing),
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
        problem = loaded.routing_problem
        hub.refused = {n: why for n, why in loaded.refused.items() if why != problem}
        hub.shared_problem = loaded.unread if loaded.unread != problem else ""
        hub.routing_file = RoutingFile(loaded.common.data_dir / "autan.toml", hub.routing, problem)
        return hub
