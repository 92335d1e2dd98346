"""Every place where we override or reach into Faust, aiokafka or mode internals.

Faust (``faust-streaming``), aiokafka and mode are pinned to exact versions in
``constraints.txt``; ``tests/unit/test_faust_contract.py`` fails, naming the
override, when an upgrade removes or changes anything listed here.  To
upgrade: change the pin, run that test, re-read each upstream method it
names, port the override, then update the test's fingerprint.

Each override, its upstream bug or limitation, and the test that covers it
(under ``tests/``; "contract" is ``unit/test_faust_contract.py``):

* **fetch wait** (:mod:`.transport`, :mod:`.recovery`): Faust hard-codes
  aiokafka's ``fetch_max_wait_ms=1500``, no setting (no upstream issue found);
  ours are ``DHARMA_WORKER_FETCH_MAX_WAIT_MS`` and, while tables recover,
  ``DHARMA_WORKER_RECOVERY_FETCH_MAX_WAIT_MS``.
  ``integration/streams/test_recovery_fetch_wait.py``, contract.
* **prefetch backoff** (:mod:`.transport`): aiokafka's fetcher waits up to
  ``prefetch_backoff`` (0.1 s, aio-libs/aiokafka#534), not a consumer setting.
  Contract.
* **active-partitions snapshot** (:mod:`.transport`): Faust hands aiokafka its
  live set of active partitions, which recovery empties; aiokafka reads an
  empty set as "every partition" (the race robinhood/faust#69 fixed, present
  again in faust-streaming 0.15).  ``integration/anomaly/test_anomaly_recovery.py``.
* **shutdown without a broker** (:mod:`.transport`): aiokafka's ``stop()``
  raises ``CancelledError`` (aio-libs/aiokafka#647).
  ``integration/test_worker_shutdown.py``.
* **exact changelog ends** (:mod:`.transport`, :mod:`.offsets`): Tansu answers
  ``ListOffsets`` short of the last record batch (broker side; no upstream
  issue found).  ``integration/streams/test_changelog_recovery.py``, contract.
* **gap warning** (:mod:`.transport`): Faust counts offsets that never arrive
  as consumed (faust-streaming#282, #606).  Contract.
* **seek before resume** (:mod:`.recovery`): Faust resumes stream partitions
  before seeking them (faust-streaming#216 is the same race with the flow; its
  fix #217 left the partitions).  ``integration/anomaly/test_anomaly_recovery.py``.
* **table callback errors** (:mod:`.recovery`): Faust never retrieves the
  exceptions of tables' ``on_recovery_completed`` (no upstream issue found).
  Contract.
* **recovered key's partition** (:mod:`.store`): the memory store keeps it
  private, ``Store._key_partition`` (no upstream issue found).  Contract,
  ``integration/anomaly/test_anomaly_eviction.py``.
* **table writes** (relied on by :class:`~dharma.streams.changelog.TableWriter`,
  which writes ``table.data`` and emits each changelog record itself, through
  librdkafka): writing the memory store sends no changelog record of its own
  (Faust's ``table[key] = value`` costs tens of microseconds of Python per
  write; not a bug, no upstream issue).  Contract.
* **quiet worker** (:mod:`.worker`): Faust's spinner sets the root logger to
  DEBUG (no upstream issue found).  Contract.

The transport is installed by the broker URL scheme ``dharma://`` (entry point
``faust.transports`` in ``pyproject.toml``), the recovery by the app setting
``TableManager="dharma.streams.faust_fork.recovery:TableManager"``
(:func:`dharma.streams.app.make_app`).  Nothing else of ours touches these
internals: domain code goes through this package.
"""
