"""Settings: loopback defaults, environment overrides, derived endpoints, hidden secrets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from dharma.streams.settings import (
    DEFAULT_PORTS,
    KafkaSettings,
    RegistrySettings,
    Settings,
    redact_url,
)

SECRETS = {
    "DHARMA_KAFKA_SASL_PASSWORD": "kafka-pw-1x9",
    "DHARMA_REGISTRY_BASIC_AUTH_USER_INFO": "sr-user:sr-pw-2y8",
    "DHARMA_POSTGRES_DSN": "postgresql://app:pg-pw-3z7@db:5432/dharma",
    "DHARMA_GRAPH_PASSWORD": "graph-pw-4w6",
    "DHARMA_REDIS_URL": "redis://:redis-pw-5v5@cache:6379/0",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DHARMA_* variable leaks in (the integration session fixture sets some)."""
    for key in list(os.environ):
        if key.startswith("DHARMA_"):
            monkeypatch.delenv(key)


def test_defaults_point_at_the_loopback_stack() -> None:
    s = Settings()
    assert s.kafka.bootstrap_servers == f"127.0.0.1:{DEFAULT_PORTS['kafka']}"
    assert s.registry.url == f"http://127.0.0.1:{DEFAULT_PORTS['registry']}"
    assert s.postgres.dsn.get_secret_value() == (
        f"postgresql://postgres@127.0.0.1:{DEFAULT_PORTS['postgres']}/dharma")
    assert s.redis.url.get_secret_value() == f"redis://127.0.0.1:{DEFAULT_PORTS['redis']}/0"
    assert s.graph.uri == f"falkordb://127.0.0.1:{DEFAULT_PORTS['redis']}/cmdb"
    assert s.stack.kafka_port == DEFAULT_PORTS["kafka"]
    assert s.kafka.faust_broker_url() == f"dharma://127.0.0.1:{DEFAULT_PORTS['kafka']}"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHARMA_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("DHARMA_REGISTRY_URL", "https://sr.example:8081")
    monkeypatch.setenv("DHARMA_GRAPH_URI", "bolt://neo4j:7687")
    monkeypatch.setenv("DHARMA_WORKER_BATCH_SIZE", "42")
    monkeypatch.setenv("DHARMA_WORKER_DATA_DIR", "/var/lib/dharma")
    s = Settings()
    assert s.kafka.bootstrap_servers == "k1:9092, k2:9092"
    assert s.kafka.faust_broker_url() == "dharma://k1:9092;dharma://k2:9092"
    assert s.registry.url == "https://sr.example:8081"
    assert s.graph.uri == "bolt://neo4j:7687"
    assert s.worker.batch_size == 42
    assert s.worker.data_dir == Path("/var/lib/dharma")


@pytest.mark.parametrize(
    ("port_var", "endpoint"),
    [
        ("DHARMA_STACK_KAFKA_PORT", lambda s: s.kafka.bootstrap_servers),
        ("DHARMA_STACK_REGISTRY_PORT", lambda s: s.registry.url),
        ("DHARMA_STACK_POSTGRES_PORT", lambda s: s.postgres.dsn.get_secret_value()),
        ("DHARMA_STACK_REDIS_PORT", lambda s: s.redis.url.get_secret_value()),
        ("DHARMA_STACK_REDIS_PORT", lambda s: s.graph.uri),   # FalkorDB serves Redis too
    ],
)
def test_stack_port_moves_the_derived_endpoint(
    monkeypatch: pytest.MonkeyPatch, port_var: str, endpoint: Callable[[Settings], str]
) -> None:
    monkeypatch.setenv(port_var, "23456")
    assert "127.0.0.1:23456" in endpoint(Settings())


@pytest.mark.parametrize(
    ("port_var", "client_var", "explicit", "endpoint"),
    [
        ("DHARMA_STACK_KAFKA_PORT", "DHARMA_KAFKA_BOOTSTRAP_SERVERS", "broker:9092",
         lambda s: s.kafka.bootstrap_servers),
        ("DHARMA_STACK_REGISTRY_PORT", "DHARMA_REGISTRY_URL", "http://sr:8081",
         lambda s: s.registry.url),
        ("DHARMA_STACK_POSTGRES_PORT", "DHARMA_POSTGRES_DSN", "postgresql://db/dharma",
         lambda s: s.postgres.dsn.get_secret_value()),
        ("DHARMA_STACK_REDIS_PORT", "DHARMA_REDIS_URL", "redis://cache:6379/1",
         lambda s: s.redis.url.get_secret_value()),
        ("DHARMA_STACK_REDIS_PORT", "DHARMA_GRAPH_URI", "bolt://graph:7687",
         lambda s: s.graph.uri),
    ],
)
def test_explicit_client_setting_wins_over_stack_port(
    monkeypatch: pytest.MonkeyPatch, port_var: str, client_var: str, explicit: str,
    endpoint: Callable[[Settings], str],
) -> None:
    monkeypatch.setenv(port_var, "23456")
    monkeypatch.setenv(client_var, explicit)
    assert endpoint(Settings()) == explicit


def test_explicit_client_default_value_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting the variable to the default itself is explicit: the stack port does not move it."""
    default = f"127.0.0.1:{DEFAULT_PORTS['kafka']}"
    monkeypatch.setenv("DHARMA_STACK_KAFKA_PORT", "23456")
    monkeypatch.setenv("DHARMA_KAFKA_BOOTSTRAP_SERVERS", default)
    assert Settings().kafka.bootstrap_servers == default


def test_secrets_are_secretstr_and_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DHARMA_KAFKA_SASL_USERNAME", "svc")
    s = Settings()
    assert isinstance(s.kafka.sasl_password, SecretStr)
    assert isinstance(s.registry.basic_auth_user_info, SecretStr)
    assert isinstance(s.postgres.dsn, SecretStr)
    assert isinstance(s.graph.password, SecretStr)
    assert isinstance(s.redis.url, SecretStr)
    shown = [repr(s), str(s), s.model_dump_json()]
    for text in shown:
        for secret in ("kafka-pw-1x9", "sr-pw-2y8", "pg-pw-3z7", "graph-pw-4w6", "redis-pw-5v5"):
            assert secret not in text
    # still usable where they are needed
    assert s.postgres.dsn.get_secret_value() == SECRETS["DHARMA_POSTGRES_DSN"]
    assert s.registry.client_config()["basic.auth.user.info"] == "sr-user:sr-pw-2y8"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/dharma", "postgresql://app:***@db:5432/dharma"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://postgres@127.0.0.1:5432/dharma", "postgresql://postgres@127.0.0.1:5432/dharma"),
        ("bolt://127.0.0.1:7687", "bolt://127.0.0.1:7687"),
        ("http://u:p%40ss@h/x?y=1", "http://u:***@h/x?y=1"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_when_password_appears_elsewhere() -> None:
    """Only the password in the netloc is hidden; a username equal to it stays intact."""
    shown = redact_url("postgresql://pw:pw@db/pw")
    assert shown == "postgresql://pw:***@db/pw"


def test_sasl_and_tls_flow_into_confluent_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHARMA_KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("DHARMA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DHARMA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DHARMA_KAFKA_SASL_USERNAME", "svc-dharma")
    monkeypatch.setenv("DHARMA_KAFKA_SASL_PASSWORD", "kafka-pw-1x9")
    monkeypatch.setenv("DHARMA_KAFKA_SSL_CAFILE", "/etc/ssl/ca.pem")
    assert Settings().kafka.confluent_config() == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc-dharma",
        "sasl.password": "kafka-pw-1x9",
        "ssl.ca.location": "/etc/ssl/ca.pem",
    }


def test_plaintext_confluent_config_has_no_auth() -> None:
    conf = KafkaSettings().confluent_config()
    assert conf["security.protocol"] == "PLAINTEXT"
    assert not {"sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location"} & set(conf)
    assert "basic.auth.user.info" not in RegistrySettings().client_config()


def test_unknown_security_protocol_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHARMA_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValidationError, match="security_protocol"):
        Settings()


@pytest.mark.parametrize("port", ["32768", "40000", "0"])
def test_bolt_port_out_of_range_is_rejected_clearly(
    monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    monkeypatch.setenv("DHARMA_STACK_BOLT_PORT", port)
    with pytest.raises(ValidationError) as info:
        Settings()
    text = str(info.value)
    assert "bolt_port" in text
    assert "32767" in text or "greater than 0" in text


def test_bolt_port_at_the_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHARMA_STACK_BOLT_PORT", "32767")
    assert Settings().stack.bolt_port == 32767


def test_every_field_documents_its_environment_variable() -> None:
    for name, model in Settings.model_fields.items():
        cls = model.annotation
        assert isinstance(cls, type) and issubclass(cls, BaseSettings)
        prefix = cls.model_config["env_prefix"]
        assert prefix == f"DHARMA_{name.upper()}_"
        for field_name, field in cls.model_fields.items():
            var = f"{prefix}{field_name.upper()}"
            assert field.description and var in field.description, (cls, field_name)
