"""Settings for every backing service, read once from the environment.

Each service has its own settings object with its own ``DHARMA_<SERVICE>_``
prefix.  The defaults point at the embedded stack on loopback (``dharma stack
up``); production sets the same variables to real services (see
``docker-compose.yml``).  Secrets are :class:`~pydantic.SecretStr`, so they
never appear in logs or ``repr``.

>>> s = Settings()
>>> s.kafka.bootstrap_servers
'127.0.0.1:19092'
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Loopback ports of the embedded stack; each can be changed by its variable.
DEFAULT_PORTS = {
    "kafka": 19092,
    "registry": 18081,
    "postgres": 15432,
    "redis": 16379,
    "bolt": 17687,
    "api": 18400,
}


def redact_url(url: str) -> str:
    """Hide the password of a URL or DSN, for printing.

    >>> redact_url("postgresql://app:s3cret@db:5432/dharma")
    'postgresql://app:***@db:5432/dharma'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class KafkaSettings(BaseSettings):
    """Kafka client settings (``DHARMA_KAFKA_*``)."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_KAFKA_")

    bootstrap_servers: str = Field(
        f"127.0.0.1:{DEFAULT_PORTS['kafka']}",
        description="DHARMA_KAFKA_BOOTSTRAP_SERVERS: comma-separated host:port list.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="DHARMA_KAFKA_SECURITY_PROTOCOL."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="DHARMA_KAFKA_SASL_MECHANISM."
    )
    sasl_username: str | None = Field(None, description="DHARMA_KAFKA_SASL_USERNAME.")
    sasl_password: SecretStr | None = Field(None, description="DHARMA_KAFKA_SASL_PASSWORD.")
    ssl_cafile: Path | None = Field(None, description="DHARMA_KAFKA_SSL_CAFILE: CA bundle for TLS.")

    def confluent_config(self) -> dict[str, str | int | float | bool]:
        """Client configuration for confluent-kafka (librdkafka names)."""
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = str(self.ssl_cafile)
        return conf

    def faust_broker_url(self) -> str:
        """Broker URL list for Faust: ``dharma://host:port;...`` (our aiokafka transport,
        :mod:`dharma.streams.faust_fork.transport`)."""
        hosts = [h.strip() for h in self.bootstrap_servers.split(",") if h.strip()]
        return ";".join(f"dharma://{h}" for h in hosts)


class RegistrySettings(BaseSettings):
    """Schema registry settings (``DHARMA_REGISTRY_*``)."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_REGISTRY_")

    url: str = Field(
        f"http://127.0.0.1:{DEFAULT_PORTS['registry']}",
        description="DHARMA_REGISTRY_URL: Confluent-compatible schema registry.",
    )
    basic_auth_user_info: SecretStr | None = Field(
        None, description="DHARMA_REGISTRY_BASIC_AUTH_USER_INFO: 'user:password'."
    )

    def client_config(self) -> dict[str, str]:
        """Configuration for ``confluent_kafka.schema_registry.SchemaRegistryClient``."""
        conf = {"url": self.url}
        if self.basic_auth_user_info:
            conf["basic.auth.user.info"] = self.basic_auth_user_info.get_secret_value()
        return conf


class PostgresSettings(BaseSettings):
    """PostgreSQL / TimescaleDB settings (``DHARMA_POSTGRES_*``)."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_POSTGRES_")

    dsn: SecretStr = Field(
        SecretStr(f"postgresql://postgres@127.0.0.1:{DEFAULT_PORTS['postgres']}/dharma"),
        description="DHARMA_POSTGRES_DSN: libpq connection string (may hold a password).",
    )


class GraphSettings(BaseSettings):
    """CMDB graph settings (``DHARMA_GRAPH_*``): FalkorDB (``falkordb://host:port/graph``,
    its own protocol) or Neo4j (``bolt://``, ``neo4j://``)."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_GRAPH_")

    uri: str = Field(
        f"falkordb://127.0.0.1:{DEFAULT_PORTS['redis']}/cmdb",
        description="DHARMA_GRAPH_URI: falkordb://host:port/graph, or a Bolt URI for Neo4j."
    )
    user: str | None = Field(None, description="DHARMA_GRAPH_USER.")
    password: SecretStr | None = Field(None, description="DHARMA_GRAPH_PASSWORD.")


class RedisSettings(BaseSettings):
    """Redis settings (``DHARMA_REDIS_*``)."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_REDIS_")

    url: SecretStr = Field(
        SecretStr(f"redis://127.0.0.1:{DEFAULT_PORTS['redis']}/0"),
        description="DHARMA_REDIS_URL: may hold a password.",
    )


class WorkerSettings(BaseSettings):
    """Faust worker settings (``DHARMA_WORKER_*``)."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_WORKER_")

    app_id: str = Field("dharma", description="DHARMA_WORKER_APP_ID: consumer group prefix.")
    metrics_port: int = Field(
        9464, description="DHARMA_WORKER_METRICS_PORT: Prometheus endpoint (0 picks a free port)."
    )
    web_port: int = Field(0, description="DHARMA_WORKER_WEB_PORT: Faust web port (0: free port).")
    data_dir: Path = Field(
        Path(".dharma/worker"), description="DHARMA_WORKER_DATA_DIR: table state files."
    )
    batch_size: int = Field(1000, description="DHARMA_WORKER_BATCH_SIZE: events per batch.")
    batch_within_s: float = Field(
        0.02, description="DHARMA_WORKER_BATCH_WITHIN_S: longest wait to fill a batch."
    )
    commit_interval_s: float = Field(
        2.8, gt=0, description="DHARMA_WORKER_COMMIT_INTERVAL_S: how often processed offsets "
        "are committed (Faust's default); a crash replays at most this much input.")
    max_future_skew_s: float = Field(
        300.0,
        description="DHARMA_WORKER_MAX_FUTURE_SKEW_S: newest accepted event time ahead of now.",
    )
    series_idle_ttl_s: float = Field(
        6 * 3600.0, description="DHARMA_WORKER_SERIES_IDLE_TTL_S: forget a series' detector "
        "after this long without samples (bounds memory).")
    max_series: int = Field(
        50_000, ge=1, description="DHARMA_WORKER_MAX_SERIES: anomaly detectors a worker keeps "
        "in memory at most (about 10 KB each, and a 3 KB checkpoint); beyond it the least "
        "recently used series still warming up is forgotten first, then the least recently "
        "used warm one (its open alert resolved), counted in dharma_table_keys_evicted_total.")
    replication_factor: int = Field(
        1, ge=1, description="DHARMA_WORKER_REPLICATION_FACTOR: of the topics a worker "
        "creates (table changelogs); 3 on a production cluster.")
    alert_resolve_after: int = Field(
        10, ge=1, description="DHARMA_WORKER_ALERT_RESOLVE_AFTER: normal samples in a row "
        "after which an anomaly alert resolves (with ALERT_RESOLVE_AFTER_S, the quiet period).")
    alert_resolve_after_s: float = Field(
        120.0, ge=0, description="DHARMA_WORKER_ALERT_RESOLVE_AFTER_S: event time those "
        "normal samples must span before an anomaly alert resolves.")
    alert_repeat_interval_s: float = Field(
        3600.0, gt=0, description="DHARMA_WORKER_ALERT_REPEAT_INTERVAL_S: a firing anomaly "
        "alert is sent again this often (event time) while its episode lasts.")
    checkpoint_every_s: float = Field(
        10.0, gt=0, description="DHARMA_WORKER_CHECKPOINT_EVERY_S: longest a detector's "
        "learning stays unsaved (bounds what a crash makes it re-learn).")
    fetch_max_wait_ms: int = Field(
        100, ge=1, le=1500,
        description="DHARMA_WORKER_FETCH_MAX_WAIT_MS: longest a fetch waits for data "
        "(Faust's own 1500 ms adds about a second of latency on brokers that hold fetches; "
        "the embedded broker answers nothing once its partition lookups outlast the wait, "
        "about 0.6 ms per 1,000 retained record batches, docs/broker.md).")
    recovery_fetch_max_wait_ms: int = Field(
        1500, ge=1, le=30_000,
        description="DHARMA_WORKER_RECOVERY_FETCH_MAX_WAIT_MS: the fetch wait while tables "
        "recover from their changelogs (latency does not matter there; lookups of a long "
        "changelog on the embedded broker do).")
    sink_outage_limit_s: float = Field(
        300.0, ge=0, description="DHARMA_WORKER_SINK_OUTAGE_LIMIT_S: how long an agent holds a "
        "batch (its partitions paused, the write retried with backoff) while a store is away, "
        "before its valid data is dead-lettered as sink_error.")
    sink_max_backoff_s: float = Field(
        15.0, gt=0, description="DHARMA_WORKER_SINK_MAX_BACKOFF_S: longest wait between two "
        "writes of a held batch (exponential from 0.5 s).")
    session_timeout_s: float = Field(6.0, description="DHARMA_WORKER_SESSION_TIMEOUT_S.")
    heartbeat_interval_s: float = Field(1.0, description="DHARMA_WORKER_HEARTBEAT_INTERVAL_S.")
    policy_dir: Path | None = Field(
        None,
        description="DHARMA_WORKER_POLICY_DIR: zero-trust policy set (None: packaged default).",
    )


def split_commas(value: object) -> object:
    """A comma-separated setting as a tuple of its non-empty parts (other values as given)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class TrustSettings(BaseSettings):
    """Zero-trust engine settings (``DHARMA_TRUST_*``); read by the trust worker."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_TRUST_")

    timezone: str = Field(
        "UTC", description="DHARMA_TRUST_TIMEZONE: IANA zone of business hours.")
    business_hours: Annotated[tuple[time, time], NoDecode] = Field(
        (time(9, 0), time(18, 0)), description="DHARMA_TRUST_BUSINESS_HOURS: local "
        "'HH:MM-HH:MM', start included, end excluded.")
    business_days: Annotated[frozenset[Annotated[int, Field(ge=1, le=7)]], NoDecode] = Field(
        frozenset({1, 2, 3, 4, 5}), description="DHARMA_TRUST_BUSINESS_DAYS: comma-separated "
        "ISO weekdays with business hours (1 = Monday ... 7 = Sunday).")
    internal_networks: Annotated[tuple[str, ...], NoDecode] = Field(
        ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"),
        description="DHARMA_TRUST_INTERNAL_NETWORKS: comma-separated CIDRs that earn the "
        "internal-network bonus.")
    clock_skew_s: int = Field(
        30, ge=0, description="DHARMA_TRUST_CLOCK_SKEW_S: a request dated further ahead of "
        "the worker's clock is denied (clock_skew).")
    max_request_age_s: int = Field(
        900, ge=1, description="DHARMA_TRUST_MAX_REQUEST_AGE_S: a request dated further "
        "before the worker's clock is denied (stale_request).")
    session_ttl_s: int = Field(
        900, ge=1, description="DHARMA_TRUST_SESSION_TTL_S: lifetime of an ALLOW's session "
        "(its expires_in).")
    replay_guard_s: int | None = Field(
        None, ge=1, description="DHARMA_TRUST_REPLAY_GUARD_S: how long opened and revoked "
        "sessions are remembered against replays (default and minimum: session TTL + "
        "request age + skew).")
    compromise_hold_s: int = Field(
        86_400, ge=0, description="DHARMA_TRUST_COMPROMISE_HOLD_S: after a risk signal "
        "saying the account is compromised, the user's requests are denied this long "
        "(account_compromised).")

    @field_validator("business_hours", mode="before")
    @classmethod
    def _hours(cls, value: object) -> object:
        if isinstance(value, str):
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError("business hours are 'HH:MM-HH:MM'")
            value = (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
        if isinstance(value, tuple | list) and len(value) == 2 and not value[0] < value[1]:
            raise ValueError("business hours must end after they start")
        return value

    @field_validator("internal_networks", "business_days", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return split_commas(value)


class HealingSettings(BaseSettings):
    """Self-healing settings (``DHARMA_HEALING_*``); read by the healing worker and the
    ``dharma incidents``/``remediation`` commands."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_HEALING_")

    group_wait_s: float = Field(
        30.0, ge=0, description="DHARMA_HEALING_GROUP_WAIT_S: how long a new incident "
        "collects related alerts before it is opened and decided (Alertmanager's group_wait).")
    group_interval_s: float = Field(
        300.0, ge=0, description="DHARMA_HEALING_GROUP_INTERVAL_S: least time between two "
        "updates of an open incident for alerts that joined it (group_interval).")
    topology_depth: int = Field(
        5, ge=1, le=20, description="DHARMA_HEALING_TOPOLOGY_DEPTH: dependency hops searched "
        "when relating an alert to open incidents and rooting them.")
    history_s: float = Field(
        3600.0, gt=0, description="DHARMA_HEALING_HISTORY_S: recent samples read to "
        "classify an issue (the seed's last hour).")
    cooldown_s: float = Field(
        1800.0, ge=0, description="DHARMA_HEALING_COOLDOWN_S: least time between two "
        "remediations of one (target, playbook).")
    rate_limit_per_hour: int = Field(
        3, ge=0, description="DHARMA_HEALING_RATE_LIMIT_PER_HOUR: most remediations one "
        "playbook requests in any hour.")
    max_unhealthy: float = Field(
        0.4, gt=0, le=1, description="DHARMA_HEALING_MAX_UNHEALTHY: above this share of "
        "unhealthy members of a group (same service, or asset type and team), none of "
        "them is remediated and the group is escalated once (Cluster API's maxUnhealthy).")
    lease_s: float = Field(
        600.0, gt=0, description="DHARMA_HEALING_LEASE_S: a requested remediation with "
        "no outcome from its executor this long after the request is failed and escalated.")
    verify_window_s: float | None = Field(
        None, gt=0, description="DHARMA_HEALING_VERIFY_WINDOW_S: overrides every "
        "playbook's verification window (None: the playbook's, 5 minutes by default).")
    verify_grace_s: float | None = Field(
        None, ge=0, description="DHARMA_HEALING_VERIFY_GRACE_S: overrides every playbook's "
        "grace after a remediation succeeded, before its window starts (None: the playbook's).")
    verify_settle_s: float = Field(
        15.0, ge=0, description="DHARMA_HEALING_VERIFY_SETTLE_S: extra wait after a "
        "verification window for its last samples to be stored.")
    tick_s: float = Field(
        1.0, gt=0, description="DHARMA_HEALING_TICK_S: how often due work (opening "
        "incidents, leases, verifications, approvals) is looked at.")
    dry_run: bool = Field(
        False, description="DHARMA_HEALING_DRY_RUN: decide and publish, never request.")
    ignored_components: Annotated[tuple[str, ...], NoDecode] = Field(
        ("trust", "healing", "cost"), description="DHARMA_HEALING_IGNORED_COMPONENTS: "
        "comma-separated `component` labels of alerts that are not infrastructure incidents "
        "(security alerts go to the security on-call, budget and cost anomaly alerts to "
        "whoever owns the spend; healing's own escalations are never re-healed).")
    playbook_dir: Path | None = Field(
        None, description="DHARMA_HEALING_PLAYBOOK_DIR: playbook set (None: packaged default).")

    @field_validator("ignored_components", mode="before")
    @classmethod
    def _components(cls, value: object) -> object:
        return split_commas(value)


class ExecutorSettings(BaseSettings):
    """Webhook executor settings (``DHARMA_EXECUTOR_*``); read by the executor worker."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_EXECUTOR_")

    url: str | None = Field(
        None, description="DHARMA_EXECUTOR_URL: the webhook each remediation request is "
        "POSTed to (None: every request is reported failed, nothing is called).")
    token: SecretStr | None = Field(
        None, description="DHARMA_EXECUTOR_TOKEN: sent in TOKEN_HEADER when set.")
    token_header: str = Field(
        "Authorization", description="DHARMA_EXECUTOR_TOKEN_HEADER: Authorization (the "
        "token as 'Bearer TOKEN', AWX), or a header given the bare token "
        "(X-Rundeck-Auth-Token, St2-Api-Key).")
    timeout_s: float = Field(
        10.0, gt=0, description="DHARMA_EXECUTOR_TIMEOUT_S: longest one POST may take.")
    attempts: int = Field(
        3, ge=1, le=10, description="DHARMA_EXECUTOR_ATTEMPTS: tries of a call that failed "
        "transiently (connection error, timeout, 408, 425, 429, 502, 503, 504).")
    payload_style: Literal["generic", "awx", "rundeck"] = Field(
        "generic", description="DHARMA_EXECUTOR_PAYLOAD_STYLE: body shape: generic (also "
        "StackStorm webhooks), awx (job template launch) or rundeck (job run).")
    max_age_s: float = Field(
        3600.0, gt=0, description="DHARMA_EXECUTOR_MAX_AGE_S: a request older than this "
        "is reported failed (expired), never executed.")
    concurrency: int = Field(
        8, ge=1, le=256, description="DHARMA_EXECUTOR_CONCURRENCY: calls in flight at once.")

    @field_validator("url", "token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable (compose's ``${NAME:-}``) means not set."""
        return None if value == "" else value


class CostSettings(BaseSettings):
    """Cost settings (``DHARMA_COST_*``); read by the cost worker and ``dharma cost``."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_COST_")

    currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="DHARMA_COST_CURRENCY: ISO 4217 currency "
        "of every price and amount (FOCUS BillingCurrency).")
    tick_s: float = Field(
        30.0, gt=0, description="DHARMA_COST_TICK_S: how often open assets accrue up to the "
        "event-time watermark and usage is flushed.")
    schedule_s: float = Field(
        3600.0, gt=0, description="DHARMA_COST_SCHEDULE_S: how often forecasts, budgets and "
        "recommendations are recomputed from the stored rollups (never per event).")
    horizon_days: int = Field(
        30, ge=1, le=366, description="DHARMA_COST_HORIZON_DAYS: days forecast.")
    level: float = Field(
        95.0, gt=0, lt=100, description="DHARMA_COST_LEVEL: forecast interval coverage, %.")
    history_days: int = Field(
        90, ge=7, description="DHARMA_COST_HISTORY_DAYS: daily actuals a forecast is fitted on "
        "(the seed's 90 days).")
    budget_thresholds: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.8, 1.0), description="DHARMA_COST_BUDGET_THRESHOLDS: comma-separated shares of a "
        "month's budget whose crossing by actual spend raises an alert.")
    usage_metrics: Annotated[tuple[str, ...], NoDecode] = Field(
        ("cpu_utilization", "memory_utilization"), description="DHARMA_COST_USAGE_METRICS: "
        "metrics.raw metrics (percent) kept as hourly utilisation for recommendations.")
    lookback_days: int = Field(
        14, ge=1, description="DHARMA_COST_LOOKBACK_DAYS: utilisation window of right-sizing "
        "(Compute Optimizer's 14 days).")
    min_hours: int = Field(
        30, ge=1, description="DHARMA_COST_MIN_HOURS: hours of utilisation needed before an "
        "asset is right-sized (Compute Optimizer's 30).")
    percentile: float = Field(
        99.5, gt=0, le=100, description="DHARMA_COST_PERCENTILE: utilisation percentile a "
        "smaller size must fit.")
    headroom: float = Field(
        1.2, ge=1, description="DHARMA_COST_HEADROOM: factor on that percentile.")
    idle_percent: float = Field(
        10.0, ge=0, le=100, description="DHARMA_COST_IDLE_PERCENT: a non-production asset "
        "whose CPU stays below this outside business hours can be scheduled off.")
    business_hours: tuple[int, int] = Field(
        (8, 19), description="DHARMA_COST_BUSINESS_HOURS: [start, end) hours, UTC, Monday "
        "to Friday, in which non-production assets stay on.")
    commitment_cv: float = Field(
        0.1, gt=0, description="DHARMA_COST_COMMITMENT_CV: a scope whose daily spend over "
        "30 days varies less than this (coefficient of variation) gets a commitment.")
    commitment_discount: float = Field(
        0.28, gt=0, lt=1, description="DHARMA_COST_COMMITMENT_DISCOUNT: discount of a "
        "commitment on the committed spend (1-year, no upfront: about 28 %).")
    reconcile_threshold: float = Field(
        0.05, ge=0, description="DHARMA_COST_RECONCILE_THRESHOLD: relative difference of "
        "billed and estimated cost per resource and day that `dharma cost reconcile` reports.")
    catalogue: Path | None = Field(
        None, description="DHARMA_COST_CATALOGUE: instance catalogue CSV (size, vCPU, memory, "
        "hourly price); None: the packaged one.")

    @field_validator("budget_thresholds", "usage_metrics", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return split_commas(value)


class ApiSettings(BaseSettings):
    """Read API and live page settings (``DHARMA_API_*``); read by ``dharma api serve``."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_API_")

    host: str = Field("127.0.0.1", description="DHARMA_API_HOST: address the API listens on.")
    port: int = Field(DEFAULT_PORTS["api"], ge=0, le=65535,
                      description="DHARMA_API_PORT (0: any free port).")
    rate_limit: int = Field(
        600, ge=1, description="DHARMA_API_RATE_LIMIT: requests per token per window.")
    rate_window_s: int = Field(
        60, ge=1, description="DHARMA_API_RATE_WINDOW_S: the rate limit's window.")
    max_page: int = Field(
        500, ge=1, le=10_000, description="DHARMA_API_MAX_PAGE: the largest page a query "
        "may ask for (more is a 422, never an unbounded query).")
    live_buffer: int = Field(
        1000, ge=1, description="DHARMA_API_LIVE_BUFFER: events held per live subscriber; "
        "a slower subscriber loses the oldest (counted), never slows the pipeline.")
    lookback_s: int = Field(
        3600, ge=0, description="DHARMA_API_LOOKBACK_S: how far back the API's feed reads "
        "its topics when it starts, to rebuild its live views.")
    lookback_records: int = Field(
        100_000, ge=0, description="DHARMA_API_LOOKBACK_RECORDS: at most this many records "
        "per partition read back on start (a broker that ignores times is still bounded).")
    series_points: int = Field(
        240, ge=2, le=100_000, description="DHARMA_API_SERIES_POINTS: points kept per series.")
    max_series: int = Field(
        20_000, ge=1, description="DHARMA_API_MAX_SERIES: series held; the least recently "
        "updated is forgotten beyond it.")
    max_alerts: int = Field(
        10_000, ge=1, description="DHARMA_API_MAX_ALERTS: alerts held (latest state per "
        "fingerprint); the least recently updated is forgotten beyond it.")


class StackSettings(BaseSettings):
    """Embedded stack settings (``DHARMA_STACK_*``): where it keeps state, which ports."""

    model_config = SettingsConfigDict(env_prefix="DHARMA_STACK_")

    state_dir: Path = Field(
        Path(".dharma/stack"), description="DHARMA_STACK_STATE_DIR: data, logs and pid files."
    )
    kafka_port: int = Field(DEFAULT_PORTS["kafka"], description="DHARMA_STACK_KAFKA_PORT.")
    registry_port: int = Field(DEFAULT_PORTS["registry"], description="DHARMA_STACK_REGISTRY_PORT.")
    postgres_port: int = Field(DEFAULT_PORTS["postgres"], description="DHARMA_STACK_POSTGRES_PORT.")
    redis_port: int = Field(DEFAULT_PORTS["redis"], description="DHARMA_STACK_REDIS_PORT.")
    bolt_port: int = Field(
        DEFAULT_PORTS["bolt"], gt=0, le=32767,
        description="DHARMA_STACK_BOLT_PORT (FalkorDB ignores Bolt ports above 32767).")
    redis_snapshots: bool = Field(
        True, description="DHARMA_STACK_REDIS_SNAPSHOTS: FalkorDB's Redis saves RDB snapshots "
        "(its defaults) so sessions and the graph outlive a restart; throwaway stacks (tests, "
        "benchmarks) turn them off: a snapshot forks the server, graph and all.")


class Settings(BaseModel):
    """All settings, one object per backing service."""

    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings())
    registry: RegistrySettings = Field(default_factory=lambda: RegistrySettings())
    postgres: PostgresSettings = Field(default_factory=lambda: PostgresSettings())
    graph: GraphSettings = Field(default_factory=lambda: GraphSettings())
    redis: RedisSettings = Field(default_factory=lambda: RedisSettings())
    worker: WorkerSettings = Field(default_factory=lambda: WorkerSettings())
    trust: TrustSettings = Field(default_factory=lambda: TrustSettings())
    healing: HealingSettings = Field(default_factory=lambda: HealingSettings())
    executor: ExecutorSettings = Field(default_factory=lambda: ExecutorSettings())
    cost: CostSettings = Field(default_factory=lambda: CostSettings())
    api: ApiSettings = Field(default_factory=lambda: ApiSettings())
    stack: StackSettings = Field(default_factory=lambda: StackSettings())

    @model_validator(mode="after")
    def _follow_stack_ports(self) -> Settings:
        """Point clients at the embedded stack's ports unless set explicitly."""
        st = self.stack
        if "bootstrap_servers" not in self.kafka.model_fields_set:
            self.kafka.bootstrap_servers = f"127.0.0.1:{st.kafka_port}"
        if "url" not in self.registry.model_fields_set:
            self.registry.url = f"http://127.0.0.1:{st.registry_port}"
        if "dsn" not in self.postgres.model_fields_set:
            self.postgres.dsn = SecretStr(f"postgresql://postgres@127.0.0.1:{st.postgres_port}/dharma")
        if "uri" not in self.graph.model_fields_set:
            self.graph.uri = f"falkordb://127.0.0.1:{st.redis_port}/cmdb"
        if "url" not in self.redis.model_fields_set:
            self.redis.url = SecretStr(f"redis://127.0.0.1:{st.redis_port}/0")
        return self
