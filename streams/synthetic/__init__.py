"""Deterministic synthetic telemetry, infrastructure events and access logs.

Pure: no Kafka I/O. :class:`SyntheticSource` yields :class:`Emission` values
(topic, key, Avro-ready dict) tick by tick; :meth:`SyntheticSource.ground_truth`
returns the injected incidents as :class:`Label` records. See ``docs/synthetic.md``.
"""

from __future__ import annotations

from dharma.streams.synthetic.access import AccessConfig, AccessTruth
from dharma.streams.synthetic.bad import BAD_KINDS, bad_events
from dharma.streams.synthetic.clock import RunPlan, plan_run, plan_source
from dharma.streams.synthetic.estate import EstateConfig, Resource, build_estate
from dharma.streams.synthetic.incidents import CATALOGUE, CHAOS_FAULTS
from dharma.streams.synthetic.labels import read_labels, write_labels
from dharma.streams.synthetic.metrics import METRICS_BY_TYPE, UNITS
from dharma.streams.synthetic.model import (
    AUDIT_TOPIC,
    DAY_MS,
    INFRA_TOPIC,
    METRICS_TOPIC,
    Emission,
    Label,
)
from dharma.streams.synthetic.schedule import IncidentConfig, ScriptedIncident
from dharma.streams.synthetic.source import SyntheticSource

__all__ = [
    "AUDIT_TOPIC",
    "BAD_KINDS",
    "CATALOGUE",
    "CHAOS_FAULTS",
    "DAY_MS",
    "INFRA_TOPIC",
    "METRICS_BY_TYPE",
    "METRICS_TOPIC",
    "UNITS",
    "AccessConfig",
    "AccessTruth",
    "Emission",
    "EstateConfig",
    "IncidentConfig",
    "Label",
    "Resource",
    "RunPlan",
    "ScriptedIncident",
    "SyntheticSource",
    "bad_events",
    "build_estate",
    "plan_run",
    "plan_source",
    "read_labels",
    "write_labels",
]
