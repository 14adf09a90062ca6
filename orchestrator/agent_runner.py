"""The runner that does an attempt with the agent: base tree, sandbox, loop, tests, outcome."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent import AgentConfig, AgentError, RepoInfo, inspect
from agent.baseline import BaselineCache
from agent.errors import ModelFailed
from agent.loop import Agent
from agent.tools import truncate
from orchestrator import trajectories
from orchestrator.base import AttemptContext, AttemptFailed, AttemptOutcome, Emit
from orchestrator.baselines import StoreBaselines
from orchestrator.config import OrchestratorSettings, default_data_dir
from orchestrator.continuation import instruction_for
from orchestrator.live_link import LiveAttempt
from orchestrator.services import Services
from orchestrator.verification import Limits, Verification, apply_diff
from orchestrator.workspace_feed import WorkspaceFeed
from sandbox import SandboxConfig, SandboxError, create_sandbox
from sandbox.base import Sandbox
from sandbox.config import FULL_REFUSED, LimitsConfig, parse_size
from sandbox.diff import Budget, left_out_note
from sandbox.errors import RefNotFound
from sandbox.gitauth import Credentials
from sandbox.network import Connection, NetworkConfig, NetworkMode, OnConnection
from sandbox.trees import TreesConfig, TreeStore
from serving import (
    ChatModel,
    ClientConfig,
    EndpointConfig,
    Meter,
    OutageConfig,
    PatientModel,
    Router,
    RouterConfig,
)
from sync import snapshots
from sync.base import LocalBlobs, Storage
from sync.cache import worker_blobs
from sync.errors import SyncError
from sync.storage import open_storage

log = logging.getLogger(__name__)


class AgentRunnerSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_`; nested agent budgets as `AUTAN_AGENT__X`)."""

    model_config = SettingsConfigDict(
        env_prefix="AUTAN_", env_nested_delimiter="__", extra="ignore", protected_namespaces=()
    )

    model_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI base URL of the model; a comma-separated list of endpoints serving the same model
    spreads model calls over them by load and fails over when one is down."""

    model_name: str = "mistralai/Mistral-Medium-3.5"
    """Model name sent with each request, as the endpoint's `/v1/models` lists it."""

    model_api_key: SecretStr | None = None
    """Bearer token for the endpoint, if it wants one; never reaches the sandbox or the model."""

    model_read_timeout_s: float = Field(default=300.0, gt=0)
    """Longest silence from an endpoint before the call goes to another (or waits for one)."""

    model_outage_s: float = Field(default=120.0, ge=0)
    """Longest time an attempt waits, paused, for some endpoint to answer before it fails."""

    model_spread: Literal["load", "attempt"] = "load"
    """`load`: each model call goes to the least loaded healthy endpoint. `attempt`: attempt n
    keeps to the n-th URL (round-robin) while it is up, so that the attempts of a task run on
    different models or sampling settings; it fails over like `load` when that one is down."""

    sandbox_backend: str = "bwrap"
    """Sandbox backend: `bwrap` (isolated) or `local` (no isolation, development only)."""

    data_dir: Path = Field(default_factory=default_data_dir)
    """The platform's data directory (AUTAN_DATA_DIR): sandboxes and trees live under it."""

    sandbox_root: Path | None = None
    """Where sandboxes keep their state (AUTAN_SANDBOX_ROOT); DATA_DIR/sandboxes if unset.
    The worker reaps what a crashed worker left there when it starts."""

    sandbox_require_cgroups: bool = True
    """Refuse to run when memory and process limits cannot be enforced."""

    sandbox_ro_binds: list[Path] = Field(default_factory=list)
    """Host paths shown read-only inside the sandbox (a toolchain); JSON list in the env."""

    trees_dir: Path | None = None
    """Where base trees (mirrors, checkouts) are cached; DATA_DIR/trees if unset."""

    trees_budget: int = Field(default=20 << 30, gt=0)
    """Bytes of checked-out base trees a worker keeps (`20G`, `500M`); past it the least
    recently used ones that no sandbox holds are removed, at start and after each attempt."""

    ref_fresh_s: float = Field(default=0.0, ge=0)
    """A task's ref is fetched when its first attempt starts; a fetch of the same ref that
    ended at most this long before is reused (attempts that start together always share one)."""

    trajectory_dir: Path | None = None
    """Where each attempt's whole conversation is also kept as `<attempt id>.json` on the
    worker; it always goes to the shared store when the attempt ends (and is served by
    `GET /api/tasks/{id}/attempts/{n}/trajectory`)."""

    network: NetworkMode = "none"
    """Network of the agent's steps (and tests): `none`, `allowlist` (AUTAN_NETWORK_ALLOW
    through the platform's proxy) or `full` (only with AUTAN_NETWORK_FULL)."""

    setup_network: NetworkMode = "none"
    """Network of the repository's set-up commands only, never of the agent's steps; the
    allowlist adds the repository's own `[network] allow` (`true`, as before: `allowlist`)."""

    network_allow: list[str] = Field(default_factory=list)
    """Hosts every allowlist lets through (`pypi.org`, `*.pythonhosted.org`); JSON list."""

    network_allow_addresses: list[str] = Field(default_factory=list)
    """Non-public address ranges allowed hosts may resolve to (an internal mirror's); JSON."""

    network_ports: list[int] = Field(default_factory=lambda: [80, 443])
    """Ports the allowlist lets through; JSON list."""

    network_full: bool = False
    """The operator allows the `full` policy (any public host over HTTP(S), still by proxy)."""

    @field_validator("trees_budget", mode="before")
    @classmethod
    def _size(cls, value: str | int) -> int:
        return parse_size(value)

    @field_validator("setup_network", mode="before")
    @classmethod
    def _old_switch(cls, value: object) -> object:
        if isinstance(value, bool) or str(value).lower() in {"true", "false", "1", "0"}:
            return "allowlist" if str(value).lower() in {"true", "1"} else "none"
        return value

    @model_validator(mode="after")
    def _full_allowed(self) -> AgentRunnerSettings:
        if "full" in (self.network, self.setup_network) and not self.network_full:
            raise ValueError(FULL_REFUSED)
        return self

    setup_timeout_s: float = Field(default=900.0, gt=0)
    """Longest one set-up command may run."""

    agent: AgentConfig = Field(default_factory=AgentConfig)
    """Budgets, context window and tool limits of each attempt."""

    def router_config(self) -> RouterConfig:
        """One endpoint per URL of `model_url`, named by its host, port and path."""
        urls = [u.strip() for u in self.model_url.split(",") if u.strip()]
        if not urls:
            raise ValueError("AUTAN_MODEL_URL is empty: set it to the model's /v1 URL")
        endpoints = [
            EndpointConfig(
                name=url.split("://", 1)[-1].rstrip("/").removesuffix("/v1"),
                client=ClientConfig(
                    base_url=url,
                    model=self.model_name,
                    api_key=self.model_api_key,
                    read_timeout_s=self.model_read_timeout_s,
                    # One quick retry for a dropped keep-alive connection; past that the router's
                    # fail-over and the outage wait do better than waiting on one endpoint.
                    max_retries=1,
                    backoff_base_s=0.1,
                ),
            )
            for url in urls
        ]
        return RouterConfig(endpoints=endpoints)


_routers: dict[tuple[object, ...], Router] = {}
_routers_lock = threading.Lock()


def shared_router(settings: AgentRunnerSettings) -> Router:
    """One router per endpoint list and process: every attempt a worker process runs shares
    its endpoints' health and load. Keyed by process too, so a forked worker child makes its
    own rather than sharing its parent's connections."""
    key = (
        os.getpid(), settings.model_url, settings.model_name, settings.model_read_timeout_s,
        settings.model_api_key.get_secret_value() if settings.model_api_key else None,
    )  # fmt: skip
    with _routers_lock:
        if key not in _routers:
            _routers[key] = Router(settings.router_config())
        return _routers[key]


class AgentRunner:
    """Implements Runner: every step an event, the result an honest AttemptOutcome."""

    def __init__(
        self,
        settings: AgentRunnerSettings | None = None,
        feed: WorkspaceFeed | None = None,
        baselines: BaselineCache | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.settings = settings or AgentRunnerSettings()
        self._feed = feed
        self._baselines = baselines
        self.trees = TreeStore(
            TreesConfig(
                root=self.settings.trees_dir or self.settings.data_dir / "trees",
                budget=self.settings.trees_budget,
                fresh_s=self.settings.ref_fresh_s,
            ),
            credentials,
        )
        self.prune_trees()

    def prune_trees(self) -> None:
        """Bring the base trees within AUTAN_TREES_BUDGET; a failure is logged, never fatal."""
        try:
            removed = self.trees.prune()
        except OSError as exc:
            log.warning("could not prune base trees in %s: %s", self.trees.root, exc)
            return
        if removed:
            log.info("removed %d base tree(s) past the budget: %s", len(removed), removed)

    @property
    def router(self) -> Router:
        """The model endpoints, shared by every attempt this process runs."""
        return shared_router(self.settings)

    def base_tree(self, repo: str, ref: str | None) -> Path:
        """The read-only checkout of `repo` at the commit `ref`, cached per commit;
        or a workspace's snapshot when `repo` is `workspace:<id>@<version>`."""
        try:
            if snapshots.is_workspace(repo):
                snapshots_dir = self.settings.data_dir / "snapshots"
                return snapshots.base_tree(repo, ref, self.blobs, snapshots_dir)
            return self.trees.checkout(repo, ref or "HEAD")
        except (SandboxError, SyncError) as exc:
            raise AttemptFailed(f"the base tree could not be made: {exc}") from exc

    def diff_budget(self) -> Budget:
        """What one diff of a sandbox made by `sandbox_config` may read."""
        config = self.sandbox_config()
        return Budget(config.max_file_bytes, config.max_diff_bytes)

    def sandbox_config(self, network: NetworkConfig | None = None) -> SandboxConfig:
        """Sandboxes whose commands get the agent's network policy, or `network`."""
        s = self.settings
        limits = LimitsConfig(require_cgroups=s.sandbox_require_cgroups)
        return SandboxConfig(
            backend=s.sandbox_backend,
            network=network or self.policy(s.network),
            allow_full_network=s.network_full,
            limits=limits,
            ro_binds=s.sandbox_ro_binds,
            root=s.sandbox_root or s.data_dir / "sandboxes",
        )

    def policy(self, mode: NetworkMode, info: RepoInfo | None = None) -> NetworkConfig:
        """The platform's allowlist, and for set-up the repository's own hosts too."""
        s = self.settings
        config = NetworkConfig(
            mode=mode,
            allow=s.network_allow,
            allow_addresses=s.network_allow_addresses,
            ports=s.network_ports,
        )
        return config.merged(info.autan.network.allow) if info else config

    def base_commit(self, ctx: AttemptContext) -> str | None:
        """The commit the attempt works on: the task's, or its ref fetched and resolved now
        (and pinned on the task for its other attempts); None for a workspace."""
        if snapshots.is_workspace(ctx.task.repo):
            return None
        if ctx.task.commit is not None:
            return ctx.pin(ctx.task.commit)
        try:
            return ctx.pin(self.trees.resolve(ctx.task.repo, ctx.task.ref))
        except RefNotFound as exc:
            raise AttemptFailed(str(exc)) from exc
        except SandboxError as exc:
            raise AttemptFailed(f"the base tree could not be made: {exc}") from exc

    def run(self, ctx: AttemptContext) -> AttemptOutcome:
        base = self.base_tree(ctx.task.repo, self.base_commit(ctx) or ctx.task.ref)
        try:
            with self.trees.using(base):
                return self._in_sandbox(ctx, base)
        finally:
            self.prune_trees()

    def _in_sandbox(self, ctx: AttemptContext, base: Path) -> AttemptOutcome:
        try:
            sandbox = create_sandbox(base, self.sandbox_config(), _reporter(ctx.emit))
        except SandboxError as exc:
            raise AttemptFailed(f"the sandbox could not be made: {exc}") from exc
        live: LiveAttempt | None = None
        try:
            if snapshots.is_workspace(ctx.task.repo):
                live = LiveAttempt(ctx, sandbox, self.blobs, self.feed)
            return self._attempt(ctx, sandbox, live, base=base)
        except (AgentError, SandboxError, SyncError) as exc:
            raise AttemptFailed(str(exc)) from exc
        finally:
            if live is not None:
                live.stop()
            sandbox.close()

    @cached_property
    def blobs(self) -> LocalBlobs:
        """The blobs workspace trees are built from, on this host's disk: the store when it
        is a directory, else this worker's bounded cache of object storage."""
        s, data = self.feed.services.settings, self.settings.data_dir
        budget = s.blob_cache_budget_mb << 20
        return worker_blobs(self.storage, s.blob_cache_dir or data / "cache", budget)

    @cached_property
    def storage(self) -> Storage:
        """The shared store: trajectories go there when an attempt ends."""
        settings = self.feed.services.settings
        return open_storage(settings.storage_config(), self.settings.data_dir / "blobs")

    @property
    def feed(self) -> WorkspaceFeed:
        """The store and Redis of the platform, for attempts that start from a workspace."""
        if self._feed is None:
            self._feed = WorkspaceFeed(Services(OrchestratorSettings()))
        return self._feed

    def _attempt(
        self,
        ctx: AttemptContext,
        sandbox: Sandbox,
        live: LiveAttempt | None = None,
        *,
        base: Path,
    ) -> AttemptOutcome:
        config, meter = self.settings.agent, Meter()
        emit = live.emit if live else ctx.emit
        info = inspect(sandbox, config.map_entries)
        spool = self.settings.trajectory_dir or self.settings.data_dir / "trajectories"
        trajectory = spool / f"{ctx.attempt_id}.json"
        agent = Agent(
            self.model(ctx, emit), sandbox, config=config, emit=emit, stop=ctx.stop,
            meter=meter, inbox=ctx.inbox,
            trajectory=trajectory,
        )  # fmt: skip
        setup = self.policy(self.settings.setup_network, info)
        verification = self.verification(ctx, base, setup, info, agent.command_env)
        try:
            return self._run_agent(ctx, sandbox, live, agent, info, meter, verification)
        finally:
            verification.close()
            keep = self.settings.trajectory_dir is not None
            sent = trajectories.upload(self.storage, ctx.attempt_id, trajectory, keep=keep)
            if sent and not keep:  # the store is there: send what its absence left behind
                trajectories.upload_left(self.storage, spool)

    def _run_agent(
        self,
        ctx: AttemptContext,
        sandbox: Sandbox,
        live: LiveAttempt | None,
        agent: Agent,
        info: RepoInfo,
        meter: Meter,
        verification: Verification,
    ) -> AttemptOutcome:
        _start_patch(ctx, sandbox, self.settings.setup_timeout_s)
        self._setup(ctx, sandbox, info, agent)
        verification.start()  # the baseline runs beside the agent: it needs only the base
        try:
            result = agent.run(instruction_for(ctx.task), info)
        except ModelFailed as exc:
            if live is not None:
                live.stop()  # the agent's last edits go out before its work so far is taken
            raise AttemptFailed(
                str(exc), _partial(meter, lambda: self._own(sandbox, live))
            ) from exc
        if live is not None:
            live.stop()  # the agent's last edits go out; the tests run on what was sent
        if not result.finished:
            partial = _partial(meter, lambda: self._own(sandbox, live))
            raise AttemptFailed(f"{result.message} ({result.reason})", partial)
        ctx.phase("verifying")
        whole = sandbox.diff()
        verdict = verification.verify(whole)  # the tests ran on the whole tree, saves included
        diff = whole if live is None else live.own_diff(whole, self.diff_budget())
        if ctx.stop.is_set():
            partial = _partial(meter, lambda: diff, result.summary)
            raise AttemptFailed("the attempt was stopped during verification", partial)
        reading = meter.reading()
        return AttemptOutcome(
            summary=result.summary + left_out_note(diff),
            diff=diff,
            verified=verdict.verified,
            tests_outcome=verdict.outcome,
            tests=verdict.to_json(),
            tokens_in=reading.usage.prompt_tokens,
            tokens_out=reading.usage.completion_tokens,
            cost_usd=reading.cost_usd,
        )

    def _own(self, sandbox: Sandbox, live: LiveAttempt | None) -> str:
        """The agent's diff: the sandbox's, less the developer's saves a live link took in."""
        whole = sandbox.diff()
        return whole if live is None else live.own_diff(whole, self.diff_budget())

    @property
    def baselines(self) -> BaselineCache:
        """Baselines in the platform's store, shared by every worker host."""
        if self._baselines is None:
            self._baselines = StoreBaselines(Services(OrchestratorSettings()).sessions)
        return self._baselines

    def verification(
        self,
        ctx: AttemptContext,
        base: Path,
        setup_network: NetworkConfig,
        info: RepoInfo,
        env: dict[str, str],
    ) -> Verification:
        """Fresh sandboxes over `base` for the baseline and for the attempt's diff."""
        limits = Limits(
            setup_s=self.settings.setup_timeout_s,
            tests_s=info.autan.test.timeout_s or self.settings.agent.test_timeout_s,
            event_chars=self.settings.agent.event_chars,
        )
        return Verification(
            base_id=base.name, info=info, cache=self.baselines, env=env, limits=limits,
            fresh=lambda: create_sandbox(base, self.sandbox_config(), _reporter(ctx.emit)),
            emit=ctx.emit, stop=ctx.stop, setup_network=setup_network,
        )  # fmt: skip

    def model(self, ctx: AttemptContext, emit: Emit) -> ChatModel:
        """The shared router, seen by this attempt: an outage pauses it, saying so."""
        limit = self.settings.model_outage_s

        def waiting(reason: str) -> None:
            emit("model.waiting", {"reason": reason, "limit_s": limit})
            ctx.phase("waiting_model")

        def resumed(waited_s: float) -> None:
            emit("model.resumed", {"waited_s": round(waited_s, 1)})
            ctx.phase("running")

        prefer = None
        if self.settings.model_spread == "attempt":
            names = [e.name for e in self.router.config.endpoints]
            prefer = names[(ctx.number - 1) % len(names)]
        return PatientModel(
            self.router, OutageConfig(limit_s=limit), on_wait=waiting, on_resume=resumed,
            stop=ctx.stop, prefer=prefer,
        )  # fmt: skip

    def _setup(self, ctx: AttemptContext, sandbox: Sandbox, info: RepoInfo, agent: Agent) -> None:
        for command in info.autan.setup.commands:
            ctx.emit("tool.call", {"name": "setup", "arguments": command})
            result = sandbox.exec(
                command, timeout=self.settings.setup_timeout_s, env=agent.command_env,
                stop=ctx.stop, network=self.policy(self.settings.setup_network, info),
            )  # fmt: skip
            output = truncate(result.stdout + result.stderr, self.settings.agent.event_chars)
            ctx.emit(
                "tool.output",
                {"name": "setup", "ok": result.exit_code == 0, "output": output,
                 "exit_code": result.exit_code, "limit": result.limit},
            )  # fmt: skip
            if result.exit_code != 0 or result.limit:
                why = result.limit or f"exit code {result.exit_code}"
                raise AttemptFailed(f"set-up command {command!r} failed ({why}): {output[-500:]}")


def _start_patch(ctx: AttemptContext, sandbox: Sandbox, timeout: float) -> None:
    """A continuation starts where the attempt it continues ended: its diff applied. The
    attempt's own diff is then against the base commit, the earlier change included."""
    if ctx.task.start_patch and (
        why := apply_diff(sandbox, ctx.task.start_patch, timeout, ctx.stop)
    ):
        raise AttemptFailed(f"the starting patch does not apply to the base: {why}")


def _partial(meter: Meter, own: Callable[[], str], summary: str = "") -> AttemptOutcome:
    """What an attempt that ended early leaves: its diff so far (`own()`), its tokens and its
    cost."""
    reading = meter.reading()
    try:
        diff = own()
    except SandboxError:
        diff = ""  # the sandbox is gone (killed with its attempt): the cost is still kept
    return AttemptOutcome(
        summary=summary,
        diff=diff,
        tokens_in=reading.usage.prompt_tokens,
        tokens_out=reading.usage.completion_tokens,
        cost_usd=reading.cost_usd,
        partial=True,
    )


def _reporter(emit: Emit) -> OnConnection:
    """Each connection a command asked the network proxy for becomes an event."""

    def report(connection: Connection) -> None:
        emit("network.connection", dataclasses.asdict(connection))

    return report
