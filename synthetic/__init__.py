"""Deterministic synthetic telemetry, infrastructure events and access logs.

Pure: no Kafka I/O. :class:`SyntheticSource` yields :class:`Emission` values
(topic, key, Avro-ready dict) tick by tick; :meth:`SyntheticSource.ground_truth`
returns the injected incidents as :class:`Label` records. See ``docs/synthetic.md``.
"""

from __future__ import annotations

from dharma.synthetic.access import AccessConfig, AccessTruth
from dharma.synthetic.bad import BAD_KINDS, bad_events
from dharma.synthetic.clock import RunPlan, plan_run, plan_source
from dharma.synthetic.estate import EstateConfig, Resource, build_estate
from dharma.synthetic.incidents import CATALOGUE, CHAOS_FAULTS
from dharma.synthetic.labels import read_labels, write_labels
from dharma.synthetic.metrics import METRICS_BY_TYPE, UNITS
from dharma.synthetic.model import (
    AUDIT_TOPIC,
    DAY_MS,
    INFRA_TOPIC,
    METRICS_TOPIC,
    Emission,
    Label,
)
from dharma.synthetic.schedule import IncidentConfig, ScriptedIncident
from dharma.synthetic.source import SyntheticSource

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
