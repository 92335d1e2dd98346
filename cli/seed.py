"""Operator tools that write a capability's tables while its workers are stopped."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson

from dharma.agents.trust.behaviour import UserBehaviour
from dharma.agents.trust.state import audit_partition, behaviour_changelog
from dharma.streams.checkpoint import table_key
from dharma.streams.settings import Settings
from dharma.streams.topics import AUDIT_LOGS

__all__ = ["seed_behaviour"]


def seed_behaviour(settings: Settings, group: str, behaviours: Mapping[str, UserBehaviour],
                   key_of: Callable[[str], bytes] | None = None) -> str:
    """Write historical behaviours into the trust behaviour table's changelog (worker
    stopped: a running worker owns the changelog).

    ``group`` is the worker's ``DHARMA_WORKER_APP_ID``; ``key_of(user)`` gives
    the serialised ``audit.logs`` key bytes of a user (to place the record on
    its partition; default: the user id in Confluent Avro string format is not
    known here, so partition 0 unless given).  Returns the changelog topic.
    """
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = behaviour_changelog(group)
    conf = settings.kafka.confluent_config()
    admin = AdminClient(conf)
    if topic not in admin.list_topics(timeout=10).topics:
        new = NewTopic(topic, AUDIT_LOGS.partitions, 1, config={"cleanup.policy": "compact"})
        for future in admin.create_topics([new], request_timeout=10).values():
            future.result()
    producer = Producer(conf)
    for user, behaviour in behaviours.items():
        partition = audit_partition(key_of(user)) if key_of else 0
        producer.produce(topic, key=table_key(user), value=orjson.dumps(behaviour.to_dict()),
                         partition=partition)
    producer.flush(10)
    return topic
