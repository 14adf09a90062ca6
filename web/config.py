"""Settings of the API server."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.config import refuse_placeholder
from orchestrator.db import PoolConfig
from web.rate_limits import Rate


class WebSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_`) by the entry points only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_", extra="ignore")

    host: str = "127.0.0.1"
    """Address the API listens on; keep loopback unless a proxy with TLS is in front."""

    port: int = Field(default=8000, ge=1, le=65535)
    """Port the API listens on."""

    public_url: str = ""
    """How users reach the API (links in reports); empty means http://HOST:PORT."""

    sse_keepalive_s: float = Field(default=15.0, gt=0)
    """Silence after which an event stream sends a comment so proxies keep it open."""

    session_ttl_s: int = Field(default=12 * 3600, ge=60)
    """How long a dashboard sign-in lasts; signing out ends it at once."""

    model_url: str = ""
    """The model endpoints the Fleet page watches (AUTAN_MODEL_URL, comma-separated /v1 URLs)."""

    fleet_probe_timeout_s: float = Field(default=2.0, gt=0)
    """How long the Fleet page waits for each endpoint's /metrics before calling it unreachable."""

    api_threads: int = Field(default=40, ge=1)
    """Threads that run the API's blocking work (handlers, store reads); each holds at most
    one database connection, so the pool holds this many plus one for the health refresher."""

    max_waiting: int = Field(default=100, ge=1)
    """Requests that may wait for a free thread; past this the API answers 503 at once."""

    max_streams: int = Field(default=1000, ge=1)
    """Event streams and long-polls open at once (each holds a Redis connection while it
    waits); past this a new one gets 503."""

    live_max_tasks: int = Field(default=50, ge=1)
    """Tasks one browser's live stream (/api/live) may follow at once; past this it gets 422."""

    db_pool_timeout_s: float = Field(default=2.0, gt=0)
    """How long a request waits for a database connection before it gets 503."""

    retry_after_s: int = Field(default=2, ge=1)
    """What a 503 or 507 tells the client to wait (the Retry-After header)."""

    token_recheck_s: float = Field(default=30.0, gt=0)
    """How often an open event stream checks that its token has not been revoked."""

    health_interval_s: float = Field(default=5.0, gt=0)
    """How often /readyz's state (workers, database, disk) is refreshed in the background."""

    min_free_disk_mb: int = Field(default=1024, ge=0)
    """Free space in the data directory below which /readyz fails and submissions get 507."""

    allow_local_repos: bool = False
    """Let admins submit a repository that is a path on this server or a file:// URL
    (AUTAN_ALLOW_LOCAL_REPOS=true; `autan up` sets it). Nobody else ever may: a path reads
    whatever the worker can read, another team's checkout included."""

    api_docs: bool = False
    """Serve /docs and /openapi.json (AUTAN_API_DOCS=true), to signed-in users only."""

    signin_rate: str = "10/60"
    """Sign-in attempts allowed per client address and per token prefix: COUNT/SECONDS."""

    write_rate: str = "1200/60"
    """State-changing JSON API requests (POST, PUT, DELETE under /api/) allowed per client
    address and per token prefix: COUNT/SECONDS. The address is the one the server sees:
    behind a proxy, let uvicorn trust its forwarded headers or all clients share one."""

    oidc_issuer: str = ""
    """The OpenID Connect provider the dashboard signs people in with (its issuer URL, where
    /.well-known/openid-configuration is found); empty: API tokens only."""

    oidc_client_id: str = ""
    """This dashboard's client id at the provider."""

    oidc_client_secret: SecretStr | None = None
    """This dashboard's client secret at the provider."""

    oidc_name: str = ""
    """What the sign-in page calls the provider ("Sign in with NAME"); empty: its host name."""

    @field_validator("oidc_client_secret")
    @classmethod
    def _a_real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return refuse_placeholder(value, "AUTAN_OIDC_CLIENT_SECRET")

    @model_validator(mode="after")
    def _oidc_whole(self) -> WebSettings:
        given = [
            bool(self.oidc_issuer),
            bool(self.oidc_client_id),
            self.oidc_client_secret is not None,
        ]
        if any(given) and not all(given):
            raise ValueError(
                "single sign-on needs AUTAN_OIDC_ISSUER, AUTAN_OIDC_CLIENT_ID and "
                "AUTAN_OIDC_CLIENT_SECRET together: set all three, or none"
            )
        return self

    @field_validator("signin_rate", "write_rate")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        Rate.parse(value)
        return value

    def pool(self) -> PoolConfig:
        """One connection per API thread and one for the health refresher; no overflow, so
        the pool never grows past what the database was told to expect."""
        return PoolConfig(size=self.api_threads + 1, overflow=0, timeout_s=self.db_pool_timeout_s)

    @property
    def model_urls(self) -> list[str]:
        return [u.strip() for u in self.model_url.split(",") if u.strip()]

    @property
    def sso(self) -> bool:
        return bool(self.oidc_issuer)

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
