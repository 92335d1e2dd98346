"""Tables of the trust agent (the batch step that folds events through them:
:mod:`~dharma.agents.trust.logic`).

Two tables, both keyed by user id and co-partitioned with ``audit.logs``
(5 partitions, keyed by user id); their changelog records are these JSON
objects under the user id as a JSON string, the local store holds the
dataclasses (:class:`~dharma.streams.checkpoint.TypedTable`):

* ``trust-user-behaviour``: :meth:`UserBehaviour.to_dict`;
* ``trust-alert-state``: :meth:`AlertMemory.to_dict` (alert deduplication).

**A record that cannot be read** (not JSON, wrong types, out-of-range values,
a pickle...) is refused when its user is first read, logged and counted in
``dharma_checkpoints_rejected_total{table,reason}``.  An alert state refused
starts afresh (it only deduplicates alerts).  A behaviour refused cannot: it
also carries what lowers trust (risk signals, denials, the devices and places
seen), so a fresh one could raise the user's trust.  That user's access
requests are decided DENY ``state_unavailable`` (audited like any decision),
a critical ``state_unavailable`` alert is raised once (until the record is
readable again), and the user's posture updates, risk signals and requests
reporting a worse posture still re-evaluate their live sessions, against the
least trusted history (:data:`UNTRUSTED`, score 0); they are not folded into
the record, which stays as it is until an operator repairs it (a good record
or a tombstone, written while no worker of the group runs: ``docs/trust.md``).

**Seeding historical behaviour.**  A table is the replay of its changelog
topic ``<app id>-trust-user-behaviour-changelog`` (``<app id>`` is
``<DHARMA_WORKER_APP_ID>-trust``).  To import a user's historical score (say
85, from an earlier system), write the JSON record ``"user" -> {...}`` to that
topic on the partition of the user's ``audit.logs`` records *before* the
worker starts; ``dharma.cli.seed.seed_behaviour`` does exactly that.  A running worker owns
the changelog: seed only while no worker of that group runs.
"""

from __future__ import annotations

import zlib

import faust
from faust.types import EventT

from dharma.agents.trust.alerts import AlertMemory
from dharma.agents.trust.behaviour import UserBehaviour
from dharma.streams.changelog import TableWriter
from dharma.streams.checkpoint import TypedTable, checkpoint_table
from dharma.streams.emitter import SupportsEmit
from dharma.streams.metrics import PipelineMetrics
from dharma.streams.topics import AUDIT_LOGS

__all__ = ["ALERT_TABLE", "BEHAVIOUR_TABLE", "TrustTables", "audit_partition",
           "behaviour_changelog"]

BEHAVIOUR_TABLE = "trust-user-behaviour"
ALERT_TABLE = "trust-alert-state"


class TrustTables:
    """The two per-user tables, changelog-backed (:class:`~.logic.UserTables`)."""

    def __init__(self, app: faust.App, emitter: SupportsEmit,
                 metrics: PipelineMetrics | None = None) -> None:
        self.behaviour_table = TypedTable(TableWriter(checkpoint_table(
            app, BEHAVIOUR_TABLE, AUDIT_LOGS.partitions,
            help="Per-user historical behaviour (UserBehaviour.to_dict())."), emitter),
            UserBehaviour, UserBehaviour.to_dict, UserBehaviour, metrics)
        self.alert_table = TypedTable(TableWriter(checkpoint_table(
            app, ALERT_TABLE, AUDIT_LOGS.partitions,
            help="Per-user alert deduplication state (AlertMemory.to_dict())."), emitter),
            AlertMemory, AlertMemory.to_dict, AlertMemory, metrics)

    def behaviour(self, user_id: str) -> UserBehaviour:
        return self.behaviour_table.get(user_id)

    def alerts(self, user_id: str) -> AlertMemory:
        return self.alert_table.get(user_id)

    def write(self, user_id: str, behaviour: UserBehaviour | None, alerts: AlertMemory | None,
              last: EventT) -> None:
        """Queue the changed records (they go out with the batch's other outputs)."""
        if behaviour is not None:
            self.behaviour_table.set(user_id, behaviour, last)
        if alerts is not None:
            self.alert_table.set(user_id, alerts, last)


def behaviour_changelog(group: str) -> str:
    """The behaviour table's changelog topic for the worker group ``group``
    (``DHARMA_WORKER_APP_ID``)."""
    return f"{group}-trust-{BEHAVIOUR_TABLE}-changelog"


def audit_partition(key: bytes, partitions: int = AUDIT_LOGS.partitions) -> int:
    """Partition librdkafka's default partitioner (``consistent_random``: CRC-32) picks."""
    return zlib.crc32(key) % partitions
