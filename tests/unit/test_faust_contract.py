"""The Faust, aiokafka and mode internals that :mod:`dharma.streams.faust_fork` relies on.

Every test fails with a message naming the override when an upgrade of the pinned
versions (``constraints.txt``) removes or changes what it relies on: a private
attribute or method, its signature, the behaviour we use where it is cheap to
check, and, for each upstream method we replace or extend, its source (a
fingerprint: re-read the method, port the change to the fork, then update it).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import logging
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import faust
import faust.transport
import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.consumer import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition
from faust.stores.memory import Store
from faust.tables.recovery import Recovery as FaustRecovery
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types.tuples import Message

from dharma.streams.faust_fork import offsets, recovery, store, transport, worker

RECOVERY = "dharma.streams.faust_fork.recovery:TableManager"
T = TypeVar("T")

#: Upstream code each override replaces, extends or depends on, with its fingerprint
#: (sha256 of the dedented source, 16 hex digits) in the pinned versions.
UPSTREAM: dict[str, tuple[str, str]] = {
    "faust.tables.recovery:Recovery._resume_streams": ("seek before resume", "fbe0f747b84c0b27"),
    "faust.tables.recovery:Recovery.on_recovery_completed": (
        "seek before resume, table callback errors", "895e7c415a4d1379"),
    "faust.tables.recovery:Recovery._build_highwaters": ("recovery fetch wait", "32d70220d2a8a96f"),
    "faust.tables.recovery:Recovery._restart_recovery": ("seek before resume", "f93138b040ef1bc2"),
    "faust.tables.manager:TableManager.recovery": ("TableManager", "9e5e10447444e1df"),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": (
        "fetch wait, prefetch backoff", "c179c0bdb9755c3a"),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.on_thread_stop": (
        "shutdown without a broker", "cdbbe53230d20fb6"),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._highwaters": (
        "exact changelog ends", "829699ec62b7ec5b"),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.getmany": (
        "active-partitions snapshot", "1b1c58046a9b2bb7"),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records": (
        "active-partitions snapshot", "9e7369fc572de4d0"),
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": (
        "transport", "8fd0d41b15145615"),
    "faust.transport.consumer:Consumer._add_gap": ("gap warning", "f1cc1db634f5ea09"),
    "faust.stores.memory:Store.apply_changelog_batch": (
        "recovered key's partition", "434520d949dcdb41"),
    "faust.stores.memory:Store.on_recovery_completed": (
        "recovered key's partition", "92833ba38c9e53cb"),
    "faust.worker:Worker._setup_spinner_handler": ("quiet worker", "f3c8eed262a5565d"),
    "aiokafka.consumer.consumer:AIOKafkaConsumer.stop": (
        "shutdown without a broker", "bf02b37ed4aa2eab"),
    "aiokafka.consumer.fetcher:Fetcher.__init__": (
        "fetch wait, prefetch backoff", "15b78b16e0ee3c19"),
}


def broken(override: str, detail: str) -> str:
    """The failure message: which override an upgrade broke, and what to do."""
    return (f"an upgrade broke the fork's '{override}' override: {detail}. Re-read the "
            "upstream code, port dharma.streams.faust_fork (its __init__ lists every "
            "override), then update tests/unit/test_faust_contract.py")


def upstream_object(path: str) -> Any:
    module_name, qualname = path.split(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = qualname.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    found = inspect.getattr_static(owner, name)
    if isinstance(found, property):
        return found.fget
    return getattr(found, "fun", found)  # mode's @Service.task wraps the function


def fingerprint(obj: Any) -> str:
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(obj)))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@pytest.mark.parametrize("path", sorted(UPSTREAM))
def test_upstream_code_the_fork_relies_on_is_unchanged(path: str) -> None:
    override, expected = UPSTREAM[path]
    try:
        obj = upstream_object(path)
    except AttributeError as gone:
        pytest.fail(broken(override, f"{path} no longer exists ({gone})"))
    found = fingerprint(obj)
    assert found == expected, broken(override, f"{path} changed (fingerprint {found})")


def test_the_dharma_scheme_loads_the_fork_transport() -> None:
    loaded = faust.transport.by_url("dharma://127.0.0.1:1")
    assert loaded is transport.Transport, broken(
        "transport", "the faust.transports entry point 'dharma' is not our Transport "
        "(reinstall: make install)")


@pytest.fixture
def app() -> Iterator[faust.App]:
    """An app on our transport and recovery, on a loop of its own; nothing connects."""
    loop = asyncio.new_event_loop()
    yield faust.App("t-contract", broker="dharma://127.0.0.1:1", store="memory://",
                    web_enabled=False, TableManager=RECOVERY, loop=loop)
    loop.close()


def inside(app: faust.App, get: Callable[[], T]) -> T:
    """``get()`` called on ``app``'s loop: Faust's services bind to the running loop."""

    async def call() -> T:
        return get()

    return app.loop.run_until_complete(call())


def test_the_consumer_runs_our_thread_and_it_creates_aiokafka_with_our_fetch_wait(
        app: faust.App) -> None:
    transport.set_fetch_wait(app, 7, 900)

    async def create() -> Any:
        consumer = app.consumer
        assert isinstance(consumer, transport.Consumer), broken("transport", "consumer class")
        assert isinstance(consumer._thread, transport.ConsumerThread), broken(
            "transport", "Consumer._new_consumer_thread is no longer used")
        created = consumer._thread._create_worker_consumer(app.transport)
        await created.stop()
        return created

    created = app.loop.run_until_complete(create())
    assert isinstance(created, AIOKafkaConsumer)
    assert created._fetch_max_wait_ms == 7, broken("fetch wait", "AIOKafkaConsumer attribute")
    assert isinstance(created._client, AIOKafkaClient), broken(
        "exact changelog ends", "AIOKafkaConsumer._client")
    start = inspect.getsource(AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start, broken(
        "fetch wait", "AIOKafkaConsumer.start no longer hands _fetch_max_wait_ms to its Fetcher")


def reads_outside_init(cls: type, attribute: str) -> list[str]:
    """Methods of ``cls`` other than ``__init__`` that read ``self.<attribute>``."""
    return [name for name, member in vars(cls).items()
            if inspect.isfunction(member) and name != "__init__"
            and f"self.{attribute}" in inspect.getsource(member)]


@pytest.mark.parametrize(("attribute", "override"), [
    ("_fetch_max_wait_ms", "fetch wait"), ("_prefetch_backoff", "prefetch backoff")])
def test_aiokafka_fetcher_reads_the_attributes_we_set_at_fetch_time(attribute: str,
                                                                    override: str) -> None:
    async def build() -> Fetcher:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1")
        fetcher = Fetcher(client, SubscriptionState(), fetch_max_wait_ms=3,
                          prefetch_backoff=0.5)
        await fetcher.close()
        await client.close()
        return fetcher

    fetcher = asyncio.run(build())
    assert (fetcher._fetch_max_wait_ms, fetcher._prefetch_backoff) == (3, 0.5), broken(
        override, "Fetcher no longer keeps its constructor arguments in these attributes")
    assert reads_outside_init(Fetcher, attribute), broken(
        override, f"Fetcher no longer reads {attribute} when it fetches")


def test_recovery_switches_the_fetch_wait_of_our_consumer(app: faust.App) -> None:
    transport.set_fetch_wait(app, 7, 900)

    async def switch() -> list[int]:
        consumer: Any = app.consumer
        aiokafka_consumer = consumer._thread._create_worker_consumer(app.transport)
        client = aiokafka_consumer._client
        fetcher = Fetcher(client, SubscriptionState(), fetch_max_wait_ms=7)
        consumer._thread._consumer = aiokafka_consumer
        aiokafka_consumer._fetcher = fetcher
        seen = []
        for recovering in (True, False):
            recovery._use_fetch_wait(consumer, recovering)
            seen.append(fetcher._fetch_max_wait_ms)
        await fetcher.close()
        await aiokafka_consumer.stop()
        return seen

    assert app.loop.run_until_complete(switch()) == [900, 7], broken(
        "fetch wait", "Consumer._thread._consumer._fetcher is not where the fetcher lives")


@pytest.mark.parametrize(("method", "parameters", "override"), [
    ("_create_worker_consumer", ["self", "transport"], "fetch wait"),
    ("_highwaters", ["self", "partitions"], "exact changelog ends"),
    ("getmany", ["self", "active_partitions", "timeout"], "active-partitions snapshot"),
    ("on_thread_stop", ["self"], "shutdown without a broker"),
    ("_ensure_consumer", ["self"], "exact changelog ends"),
])
def test_consumer_thread_methods_we_override_keep_their_signature(
        method: str, parameters: list[str], override: str) -> None:
    found = list(inspect.signature(getattr(AIOKafkaConsumerThread, method)).parameters)
    assert found == parameters, broken(override, f"AIOKafkaConsumerThread.{method}{found}")


def test_faust_still_reads_highwaters_and_gaps_through_the_methods_we_override(
        app: faust.App) -> None:
    assert "self._highwaters" in inspect.getsource(AIOKafkaConsumerThread.highwaters), broken(
        "exact changelog ends", "highwaters() no longer calls _highwaters()")
    assert "self._add_gap(" in inspect.getsource(FaustConsumer), broken(
        "gap warning", "Faust's consumer no longer records gaps with _add_gap()")
    assert isinstance(inside(app, lambda: app.consumer.in_transaction), bool), broken(
        "exact changelog ends", "Consumer.in_transaction")


def test_a_gap_is_logged_and_still_recorded_as_faust_does(
        app: faust.App, caplog: pytest.LogCaptureFixture) -> None:
    tp = TopicPartition("t", 3)

    async def gap() -> Any:
        consumer: Any = app.consumer
        await consumer._add_gap(tp, 4, 6)
        return consumer._gap[tp]

    with caplog.at_level(logging.WARNING, logger=transport.__name__):
        recorded = app.loop.run_until_complete(gap())
    assert "offsets 4-6 of t[3] never arrived" in caplog.text
    assert sorted((i.begin, i.end) for i in recorded) == [(4, 7)], broken(
        "gap warning", "Consumer._gap no longer holds an interval tree per partition")


def test_the_app_setting_installs_our_table_manager_and_recovery(app: faust.App) -> None:
    manager = inside(app, lambda: app.tables)
    assert isinstance(manager, recovery.TableManager), broken("TableManager", "app setting")
    recovered = inside(app, lambda: manager.recovery)
    assert isinstance(recovered, recovery.Recovery), broken("TableManager", "recovery slot")
    assert manager.recovery is recovered, broken("TableManager", "_recovery is not kept")
    for name in ("actives_for_table", "standbys_for_table", "completed", "tables"):
        assert hasattr(recovered, name), broken("seek before resume", f"Recovery.{name}")
    assert hasattr(inside(app, lambda: app._fetcher), "maybe_start"), broken(
        "seek before resume", "App._fetcher")


@pytest.mark.parametrize(("owner", "names"), [
    (FaustRecovery, ["_set_recovery_ended", "_is_changelog_tp", "_wait", "_resume_streams",
                     "on_recovery_completed", "_build_highwaters"]),
    (FaustConsumer, ["perform_seek", "resume_partitions", "resume_flow", "assignment"]),
    (faust.App, ["on_rebalance_end", "on_rebalance_complete", "flow_control", "assignor"]),
])
def test_recovery_internals_we_call_exist(owner: type, names: list[str]) -> None:
    missing = [name for name in names if not hasattr(owner, name)]
    assert not missing, broken("seek before resume", f"{owner.__qualname__} lost {missing}")


def test_faust_recovery_still_calls_the_methods_we_replace() -> None:
    restart = inspect.getsource(upstream_object(
        "faust.tables.recovery:Recovery._restart_recovery"))
    for called in ("self._resume_streams", "self.on_recovery_completed"):
        assert called in restart, broken("seek before resume", f"_restart_recovery: {called}")


def test_the_memory_store_remembers_the_changelog_partition_of_a_recovered_key() -> None:
    """The tombstone of a dormant checkpoint must go to the partition its key was
    recovered from: ``Store._key_partition``, read by :mod:`.faust_fork.store`."""
    app = faust.App("t-contract-store", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    table = app.Table("t", default=None, key_type=bytes, value_type=bytes)

    async def recover() -> None:
        message = Message(table.changelog_topic.get_topic_name(), 7, 0, 0.0, 0, None,
                          b'"k"', b"v", None)
        table.apply_changelog_batch([await table.changelog_topic.decode(message)])

    asyncio.run(recover())
    assert isinstance(table.data, Store)
    assert table.data[b'"k"'] == b"v", broken("recovered key's partition", "raw bytes")
    assert store.recovered_partition(table, b'"k"') == 7, broken(
        "recovered key's partition", "Store._key_partition")
    assert store.recovered_partition(table, b'"other"') is None


def test_our_worker_never_sets_the_root_logger_to_debug(app: faust.App) -> None:
    quiet = worker.Worker(app, loglevel=logging.WARNING, quiet=True, redirect_stdouts=False)
    logger = logging.getLogger("dharma.test.spinner")
    logger.addHandler(logging.NullHandler())
    quiet.on_setup_root_logger(logger, logging.WARNING)
    assert quiet.spinner is None
    assert logger.level != logging.DEBUG, broken("quiet worker", "the spinner's DEBUG level")


def test_fetch_requests_build_and_responses_start_with_the_high_watermark() -> None:
    request = offsets._fetch_request({TopicPartition("t", 0): 5})
    assert isinstance(request, FetchRequest)
    for struct in FetchRequest._CLASSES:
        request.build(struct)  # raises if a version no longer takes our arguments
        response = struct.RESPONSE_TYPE.SCHEMA
        topics = response.fields[response.names.index("topics")].array_of
        partitions = topics.fields[topics.names.index("partitions")].array_of
        assert list(partitions.names[:3]) == ["partition", "error_code", "highwater_offset"], \
            broken("exact changelog ends", f"{struct.RESPONSE_TYPE.__name__} layout")

    async def client_api() -> bool:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1")
        found = callable(client.send) and callable(client.cluster.leader_for_partition)
        await client.close()
        return found

    assert asyncio.run(client_api()), broken("exact changelog ends", "AIOKafkaClient API")


def test_agents_and_the_sensor_find_the_faust_api_they_use() -> None:
    """Public but untyped or easily renamed: ``take_events``, sensor hooks, ``time_in``."""
    take = list(inspect.signature(faust.Stream.take_events).parameters)
    assert take[:3] == ["self", "max_", "within"], take
    hooks = ("on_message_in", "on_stream_event_in", "on_stream_event_out",
             "on_send_initiated", "on_send_completed")
    assert all(hasattr(faust.Sensor, hook) for hook in hooks)
    assert "time_in" in Message.__slots__


def test_the_lag_gauge_finds_the_committed_offsets_and_the_acking_topics(app: faust.App) -> None:
    """``dharma.streams.metrics.consumer_lag`` reads the group's committed offsets from
    ``Consumer._committed_offset`` (set at assignment and at each commit) and counts only
    partitions of topics whose offsets the conductor commits."""
    init = inspect.getsource(FaustConsumer.__init__)
    assert "self._committed_offset = defaultdict(lambda: None)" in init
    commit = inspect.getsource(FaustConsumer._commit_offsets)
    assert "self._committed_offset.update(committable_offsets)" in commit
    for name in ("highwaters", "earliest_offsets", "assignment"):
        assert hasattr(FaustConsumer, name), name
    conductor = inside(app, lambda: app.topics)  # where acks are enabled per topic
    assert callable(conductor.acks_enabled_for)


def test_writes_to_the_table_store_send_no_changelog_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """:class:`~dharma.streams.changelog.TableWriter` writes ``table.data`` and emits the
    changelog record itself: the store must not send one of its own."""
    app = faust.App("t-contract-data", broker="kafka://127.0.0.1:1", store="memory://",
                    web_enabled=False)
    table = app.Table("t", default=None, key_type=bytes, value_type=bytes)
    sent: list[Any] = []
    assert hasattr(table, "_send_changelog"), broken("TableWriter", "Table._send_changelog")
    monkeypatch.setattr(table, "_send_changelog", lambda *args, **kw: sent.append(args))
    table.data[b"k"] = b"v"
    assert table.data.pop(b"k", None) == b"v"
    assert not sent, broken("TableWriter", "writing table.data now sends changelog records")
