"""Settings of the API server."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def model_urls(self) -> list[str]:
        return [u.strip() for u in self.model_url.split(",") if u.strip()]

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
