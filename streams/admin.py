"""Idempotent set-up against whatever the settings point at: topics and schemas."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from dharma.schemas import DEAD_LETTER, contract_file, contract_subjects, schema_text
from dharma.streams.settings import Settings
from dharma.streams.topics import DEAD_LETTER_TOPICS, TopicSpec, all_topics

logger = logging.getLogger(__name__)


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] | None = None,
                  timeout: float = 15.0) -> dict[str, str]:
    """Create missing topics, grow short ones; ``{topic: created|exists|grown}``."""
    specs = specs or all_topics()
    admin = AdminClient(settings.kafka.confluent_config())
    existing = admin.list_topics(timeout=timeout).topics
    outcome: dict[str, str] = {}
    missing = [s for s in specs if s.name not in existing]
    if missing:
        new = [
            NewTopic(s.name, s.partitions, 1,
                     config={"cleanup.policy": "compact"} if s.compacted else {})
            for s in missing
        ]
        for name, future in admin.create_topics(new, request_timeout=timeout).items():
            try:
                future.result()
                outcome[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                outcome[name] = "exists"
    for spec in specs:
        have = existing.get(spec.name)
        if have is None:
            continue
        if len(have.partitions) < spec.partitions:
            admin.create_partitions([NewPartitions(spec.name, spec.partitions)])[spec.name].result()
            outcome[spec.name] = "grown"
        else:
            outcome[spec.name] = "exists"
    return outcome


def registry_client(settings: Settings) -> SchemaRegistryClient:
    """A schema registry client for the configured registry."""
    return SchemaRegistryClient(settings.registry.client_config())


def all_subjects() -> list[str]:
    """Every subject we own: each contract, and the dead-letter contract per DLQ topic."""
    return contract_subjects() + [t.value_subject for t in DEAD_LETTER_TOPICS]


def contract_text(subject: str, schemas_dir: Path | None = None) -> str:
    """The contract of ``subject``: the packaged one, or the file in ``schemas_dir``."""
    if schemas_dir is None:
        return schema_text(subject)
    path = schemas_dir / contract_file(subject)
    if not path.is_file():
        raise KeyError(f"no contract for subject {subject!r} in {schemas_dir}")
    return path.read_text(encoding="utf-8")


def register_schemas(settings: Settings, schemas_dir: Path | None = None,
                     subjects: Sequence[str] | None = None) -> dict[str, int]:
    """Register every contract under its subject; subject → schema id.

    ``schemas_dir`` reads the contracts from another folder (e.g. a proposed
    change); ``subjects`` limits the subjects (default: all of ours).
    """
    client = registry_client(settings)
    ids = {}
    for subject in subjects or all_subjects():
        schema = Schema(contract_text(subject, schemas_dir), "AVRO")
        ids[subject] = client.register_schema(subject, schema)
        logger.info("registered subject=%s id=%s", subject, ids[subject])
    return ids


@dataclass(frozen=True)
class CompatibilityReport:
    """Whether the local contract of a subject may be registered."""

    subject: str
    compatible: bool
    registered: bool


def check_schemas(settings: Settings, schemas_dir: Path | None = None,
                  subjects: Sequence[str] | None = None) -> list[CompatibilityReport]:
    """Test every local contract against the registry's compatibility rules.

    ``schemas_dir`` and ``subjects`` as for :func:`register_schemas`.
    """
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = registry_client(settings)
    reports = []
    for subject in subjects or all_subjects():
        schema = Schema(contract_text(subject, schemas_dir), "AVRO")
        try:
            ok = client.test_compatibility(subject, schema)
            registered = True
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise
            ok, registered = True, False
        reports.append(CompatibilityReport(subject, bool(ok), registered))
    return reports


__all__ = ["DEAD_LETTER", "all_subjects", "check_schemas", "create_topics", "register_schemas"]
