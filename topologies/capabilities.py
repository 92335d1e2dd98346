"""Each capability as a topology runs it, built from settings: its sinks (made here and
passed in, never chosen by the agent), the topics it consumes and emits, and whether
it dead-letters its input."""

from __future__ import annotations

from functools import partial

from dharma.agents.anomaly import agent as anomaly_agent
from dharma.agents.cmdb import agent as cmdb_agent
from dharma.agents.cost import agent as cost_agent
from dharma.agents.cost import bills as bills_agent
from dharma.agents.cost.catalogue import load_catalogue
from dharma.agents.executor import agent as executor_agent
from dharma.agents.healing import agent as healing_agent
from dharma.agents.healing.playbooks import load_playbooks
from dharma.agents.trust import agent as trust_agent
from dharma.agents.trust.config import TrustConfig
from dharma.agents.trust.session import Session
from dharma.agents.validation import agent as validation_agent
from dharma.sinks.asset_changes import AssetChangeSink
from dharma.sinks.audit import AuditSink
from dharma.sinks.bills import BillStore
from dharma.sinks.budgets import BudgetStore
from dharma.sinks.cmdb import Cmdb
from dharma.sinks.costs import CostStore
from dharma.sinks.executions import ExecutionStore
from dharma.sinks.graph import Graph, GraphSink, connect
from dharma.sinks.incidents import IncidentStore
from dharma.sinks.postgres import PostgresMetricsSink
from dharma.sinks.sessions import SessionStore
from dharma.sinks.silences import SilenceReader
from dharma.sinks.webhook import Webhook
from dharma.streams.settings import Settings
from dharma.streams.topics import (
    ALERTS,
    AUDIT_LOGS,
    BILLING_FOCUS,
    INFRASTRUCTURE_EVENTS,
    METRICS_RAW,
    PREDICTIONS,
)
from dharma.topologies.topology import Capability

__all__ = ["anomaly", "billing", "cmdb", "cost", "executor", "graph", "healing", "trust",
           "usage", "validation"]


def validation(settings: Settings) -> Capability:
    """Validation of ``metrics.raw`` (it dead-letters what it rejects), samples to
    PostgreSQL."""
    sink = PostgresMetricsSink(settings.postgres.dsn.get_secret_value())
    return Capability(
        "validation", consumes=(METRICS_RAW,), emits=(METRICS_RAW.dlq,),
        dead_letters=(METRICS_RAW,), sinks=(sink,),
        register=partial(validation_agent.register, sink=sink))


def anomaly(settings: Settings, dead_letters: bool) -> Capability:
    """Anomaly scoring of ``metrics.raw``, its alerts muted by the silences in
    PostgreSQL; ``dead_letters``: whether it answers for the
    input it rejects (when no other capability of its topology does)."""
    dlq = (METRICS_RAW.dlq,) if dead_letters else ()
    silences = SilenceReader(settings.postgres.dsn.get_secret_value())
    return Capability(
        "anomaly", consumes=(METRICS_RAW,), emits=(PREDICTIONS, ALERTS, *dlq),
        dead_letters=(METRICS_RAW,) if dead_letters else (), sinks=(silences,),
        register=partial(anomaly_agent.register, silences=silences,
                         dead_letters=dead_letters))


def trust(settings: Settings) -> Capability:
    """Zero-trust decisions on ``audit.logs``: the audit trail in PostgreSQL, live
    sessions in Redis (living and remembered as long as the trust settings say)."""
    config = TrustConfig.from_settings(settings.trust)
    audit = AuditSink(settings.postgres.dsn.get_secret_value())
    sessions = SessionStore(settings.redis.url.get_secret_value(), Session.from_dict,
                            ttl_s=config.allow_ttl_seconds, guard_s=config.replay_guard_s)
    return Capability(
        "trust", consumes=(AUDIT_LOGS,), emits=(PREDICTIONS, ALERTS, AUDIT_LOGS.dlq),
        dead_letters=(AUDIT_LOGS,), sinks=(audit, sessions),
        register=partial(trust_agent.register, audit=audit, sessions=sessions))


def graph(settings: Settings) -> Graph:
    """The CMDB graph of ``settings`` (FalkorDB's protocol, or Bolt for Neo4j)."""
    g = settings.graph
    auth = (g.user, g.password.get_secret_value()) if g.user and g.password else None
    return connect(g.uri, auth)


def cmdb(settings: Settings) -> Capability:
    """The CMDB on ``infrastructure.events``: the change history in PostgreSQL, the graph
    in FalkorDB (embedded) or Neo4j (production)."""
    changes = AssetChangeSink(settings.postgres.dsn.get_secret_value())
    bolt = graph(settings)
    sink = GraphSink(bolt)
    return Capability(
        "cmdb", consumes=(INFRASTRUCTURE_EVENTS,), emits=(INFRASTRUCTURE_EVENTS.dlq,),
        dead_letters=(INFRASTRUCTURE_EVENTS,), sinks=(changes, sink),
        register=partial(cmdb_agent.register, changes=changes, graph=sink, cmdb=Cmdb(bolt)))


def executor(settings: Settings) -> Capability:
    """Remediation requests on ``infrastructure.events`` run through the webhook of
    ``DHARMA_EXECUTOR_*``, each claimed once in PostgreSQL before it is called."""
    conf = settings.executor
    executions = ExecutionStore(settings.postgres.dsn.get_secret_value())
    webhook = Webhook(conf.url, conf.token, conf.token_header, conf.timeout_s, conf.attempts)
    return Capability(
        "executor", consumes=(INFRASTRUCTURE_EVENTS,),
        emits=(INFRASTRUCTURE_EVENTS, INFRASTRUCTURE_EVENTS.dlq),
        dead_letters=(INFRASTRUCTURE_EVENTS,), sinks=(executions, webhook),
        register=partial(executor_agent.register, executions=executions, webhook=webhook))


def healing(settings: Settings) -> Capability:
    """Self-healing on ``alerts.notifications`` and ``infrastructure.events``: incidents
    and remediations in PostgreSQL, topology from the CMDB graph, the playbook set of
    the healing settings (loaded now, so a bad set stops the worker before it starts)."""
    dsn = settings.postgres.dsn.get_secret_value()
    store, history = IncidentStore(dsn), AssetChangeSink(dsn)
    playbooks = load_playbooks(settings.healing.playbook_dir)
    topics = (ALERTS, INFRASTRUCTURE_EVENTS)
    return Capability(
        "healing", consumes=topics,
        emits=(INFRASTRUCTURE_EVENTS, ALERTS, ALERTS.dlq, INFRASTRUCTURE_EVENTS.dlq),
        dead_letters=topics, sinks=(store, history),
        register=partial(healing_agent.register, store=store, cmdb=Cmdb(graph(settings)),
                         history=history, playbooks=playbooks))


def cost(settings: Settings) -> Capability:
    """Cost accrual on ``infrastructure.events`` (asset lifecycles): cost rows per asset
    and window in PostgreSQL; on a schedule, forecasts and recommendations on
    ``ml.predictions`` and budget and cost-anomaly alerts.  The instance catalogue is
    loaded now, so a bad one stops the worker before it starts."""
    dsn = settings.postgres.dsn.get_secret_value()
    store, budgets = CostStore(dsn), BudgetStore(dsn)
    catalogue = load_catalogue(settings.cost.catalogue)
    return Capability(
        "cost", consumes=(INFRASTRUCTURE_EVENTS,),
        emits=(PREDICTIONS, ALERTS, INFRASTRUCTURE_EVENTS.dlq),
        dead_letters=(INFRASTRUCTURE_EVENTS,), sinks=(store, budgets),
        register=partial(cost_agent.register, store=store, planned=CostStore(dsn),
                         budgets=budgets, catalogue=catalogue))


def usage(settings: Settings) -> Capability:
    """Hourly utilisation per asset from ``metrics.raw``, for cost recommendations (the
    only reader of that topic in its topology, it dead-letters what it rejects)."""
    store = CostStore(settings.postgres.dsn.get_secret_value())
    return Capability(
        "usage", consumes=(METRICS_RAW,), emits=(METRICS_RAW.dlq,),
        dead_letters=(METRICS_RAW,), sinks=(store,),
        register=partial(cost_agent.register_usage, store=store))


def billing(settings: Settings) -> Capability:
    """Providers' bills on ``billing.focus`` (FOCUS lines, ``dharma cost import``) stored
    in PostgreSQL beside the estimated cost (``dharma cost reconcile``)."""
    bills = BillStore(settings.postgres.dsn.get_secret_value())
    return Capability(
        "billing", consumes=(BILLING_FOCUS,), emits=(BILLING_FOCUS.dlq,),
        dead_letters=(BILLING_FOCUS,), sinks=(bills,),
        register=partial(bills_agent.register, bills=bills))
