"""Settings of the control plane: where state lives, where jobs queue, how long attempts may run."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync.storage import StorageConfig


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "autan"


class OrchestratorSettings(BaseSettings):
    """Read from the environment (prefix `AUTAN_`) by the entry points only."""

    model_config = SettingsConfigDict(env_prefix="AUTAN_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    """Where the embedded database, the private Redis and the admin token live."""

    database_url: str = ""
    """SQLAlchemy URL of the store; empty means SQLite at `DATA_DIR/autan.db`."""

    redis_url: str = ""
    """Redis for the queue and the event streams; empty means the private one `autan up` starts."""

    storage_url: str = ""
    """Where blobs, manifests and trajectories live: `s3://bucket/prefix` (shared by every
    host), `file:///path`, or empty for `DATA_DIR/blobs` (one host)."""

    s3_endpoint_url: str = Field(
        default="", validation_alias=AliasChoices("AUTAN_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")
    )
    """The S3 API's address (MinIO, Ceph RGW); empty: AWS S3."""

    s3_region: str = Field(
        default="",
        validation_alias=AliasChoices("AUTAN_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    """The S3 region."""

    s3_access_key_id: str = Field(
        default="", validation_alias=AliasChoices("AUTAN_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    """The S3 access key; empty: botocore's own chain (an instance role, a profile)."""

    s3_secret_access_key: SecretStr = Field(
        default=SecretStr(""),
        validation_alias=AliasChoices("AUTAN_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    """The S3 secret key."""

    storage_attempts: int = Field(default=4, ge=1)
    """Tries of one object storage request that failed in a way that may pass (unreachable,
    5xx, throttled), with back-off; then the API answers 503 and a worker's attempt fails."""

    blob_cache_dir: Path | None = None
    """A worker's cache of blobs fetched from object storage; DATA_DIR/cache if unset."""

    blob_cache_budget_mb: int = Field(default=10_240, ge=1)
    """Most a worker's blob cache holds; past it the blobs used longest ago go."""

    audit_retention_days: float | None = Field(default=365.0, gt=0)
    """How long audit log entries are kept; unset (`AUTAN_AUDIT_RETENTION_DAYS=`) keeps them
    for ever. Deleting past it is the only deletion the log has."""

    worker_concurrency: int = Field(default=2, ge=1)
    """Attempts one worker process runs at once."""

    runner: str = "none"
    """What does the work of an attempt: a name (`none`) or an import path `module:attr`."""

    attempt_time_limit_s: float = Field(default=3600.0, gt=0)
    """Wall time an attempt may run before it ends as timed out."""

    attempt_hard_grace_s: float = Field(default=60.0, gt=0)
    """Extra time after the limit before Celery kills the worker child outright."""

    max_runs_per_attempt: int = Field(default=3, ge=1)
    """How many times an attempt is started before a lost worker fails it for good."""

    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    """How often a running attempt proves its worker alive (and learns of a cancel)."""

    heartbeat_timeout_s: float = Field(default=60.0, gt=0)
    """The lease: silence after which an attempt's worker counts as dead and the attempt runs
    again elsewhere. Longer than the self-stop deadline (`self_stop_s`), so a run cut off from
    the store has stopped and killed its sandbox before another worker takes its attempt."""

    store_outage_s: float = Field(default=120.0, gt=0)
    """How long an attempt's end (its result) is retried, with back-off, while the store is
    unreachable, and how long a run keeps going without it, its events kept in memory (in
    order); a run stops itself sooner where the lease needs it (`self_stop_s`)."""

    event_buffer: int = Field(default=10_000, ge=1)
    """Most events one run holds in memory while the store is unreachable; one more stops it."""

    schedule_to_start_s: float = Field(default=900.0, gt=0)
    """Age of a queued attempt that no worker has claimed after which it is queued again
    whatever its job marker says (a job that failed before its claim, a marker left behind)."""

    reconcile_interval_s: float = Field(default=10.0, gt=0)
    """How often each worker looks for attempts that lost their job or their worker."""

    requeue_grace_s: float = Field(default=30.0, ge=0)
    """Age of a queued attempt before a missing job marker counts as a lost job."""

    report_deadline_s: float = Field(default=24 * 3600.0, gt=0)
    """How long a report keeps retrying side effects that fail in a way that may pass
    (the network, 5xx, 429); after it the report ends as incomplete."""

    report_backoff_s: float = Field(default=10.0, gt=0)
    """The first wait before retrying a report; it doubles with each try."""

    report_backoff_max_s: float = Field(default=3600.0, gt=0)
    """The longest wait between two tries of a report."""

    report_lease_s: float = Field(default=600.0, gt=0)
    """How long a report job holds its task's report: another job waits this long before
    taking over from one whose worker died."""

    default_attempts: int = Field(default=1, ge=1)
    """Attempts per task when a submission does not say."""

    max_attempts: int = Field(default=8, ge=1)
    """Most attempts one task may ask for."""

    choose_review: bool = False
    """When two or more attempts are verified, the model reviews the ranking's top two against
    the instruction and picks one (event `task.review`); off: the ranking alone decides."""

    choose_review_timeout_s: float = Field(default=120.0, gt=0)
    """Longest the end of a task waits for the review; past it the ranking's pick stands."""

    sandbox_root: Path | None = None
    """Where the runner keeps its sandboxes (AUTAN_SANDBOX_ROOT, read by the runner too);
    DATA_DIR/sandboxes if unset."""

    queue_name: str = "autan.attempts"
    """Celery queue the attempt jobs go to."""

    @model_validator(mode="after")
    def _heartbeat_outlasts_interval(self) -> OrchestratorSettings:
        if self.heartbeat_timeout_s <= 2 * self.heartbeat_interval_s:
            raise ValueError(
                "heartbeat_timeout_s must be more than twice heartbeat_interval_s, "
                "or a live worker would be taken for dead"
            )
        return self

    @property
    def self_stop_s(self) -> float:
        """Time without a heartbeat after which a run stops itself and kills its sandbox.

        The store outage it rides out, cut short where needed to leave two heartbeat
        intervals (and a quarter of the lease at least) before the lease runs out."""
        margin = max(2 * self.heartbeat_interval_s, self.heartbeat_timeout_s / 4)
        return min(self.store_outage_s, self.heartbeat_timeout_s - margin)

    def storage_config(self) -> StorageConfig:
        return StorageConfig(
            url=self.storage_url, endpoint_url=self.s3_endpoint_url, region=self.s3_region,
            access_key_id=self.s3_access_key_id, secret_access_key=self.s3_secret_access_key,
            attempts=self.storage_attempts,
        )  # fmt: skip

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'autan.db'}"

    @property
    def resolved_redis_url(self) -> str:
        return self.redis_url or f"unix://{self.data_dir / 'redis.sock'}"

    @property
    def sandboxes_dir(self) -> Path:
        """Where this host's sandboxes live; orphans left by a crash are reaped at start."""
        return self.sandbox_root or self.data_dir / "sandboxes"

    @property
    def job_time_limit_s(self) -> float:
        """Longest an attempt's job may take: the attempt, the retries of its end through a
        store outage, and the grace before Celery kills the worker child outright."""
        return self.attempt_time_limit_s + self.store_outage_s + self.attempt_hard_grace_s

    @property
    def visibility_timeout_s(self) -> int:
        """Longer than the longest attempt's job, so Redis never redelivers one still running."""
        return int(self.job_time_limit_s + 300)
