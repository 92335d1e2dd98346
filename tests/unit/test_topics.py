"""The topics of the design: names, partition counts, dead-letter twins."""

from __future__ import annotations

import pytest

from dharma.schemas import DLQ_SUFFIX
from dharma.streams.topics import (
    CONSUMED,
    DEAD_LETTER_TOPICS,
    TOPICS,
    TopicSpec,
    all_topics,
    by_name,
)

PARTITIONS = {
    "infrastructure.events": 3,
    "audit.logs": 5,
    "metrics.raw": 10,
    "alerts.notifications": 2,
    "ml.predictions": 3,
    "billing.focus": 3,
}


def test_partition_counts_are_exactly_the_design() -> None:
    assert {t.name: t.partitions for t in TOPICS} == PARTITIONS


def test_every_consumed_topic_has_a_dead_letter_topic() -> None:
    consumed = [t for t in TOPICS if t.consumed]
    assert consumed == list(CONSUMED)
    assert {t.name for t in DEAD_LETTER_TOPICS} == {f"{t.name}{DLQ_SUFFIX}" for t in consumed}
    for topic in consumed:
        dlq = by_name(f"{topic.name}.dlq")
        assert dlq == topic.dlq
        assert not dlq.consumed and dlq.partitions >= 1


def test_all_topics_are_unique_and_complete() -> None:
    names = [t.name for t in all_topics()]
    assert len(names) == len(set(names))
    assert set(names) == set(PARTITIONS) | {t.name for t in DEAD_LETTER_TOPICS}


def test_subjects_follow_the_topic_name_strategy() -> None:
    spec = TopicSpec("metrics.raw", 10)
    assert spec.value_subject == "metrics.raw-value"
    assert spec.key_subject == "metrics.raw-key"
    assert spec.dlq.value_subject == "metrics.raw.dlq-value"


def test_by_name_unknown_topic_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown topic 'metrics\.rw'.*metrics\.raw"):
        by_name("metrics.rw")
