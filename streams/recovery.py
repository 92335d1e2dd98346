"""Faust's table recovery, with stream partitions seeked before they are resumed.

Faust's ``Recovery`` resumes the stream partitions and only then awaits the seek
to their committed offsets.  Records fetched in that window were delivered to
the streams and counted as read while the seek was still running; the seek then
set the read offsets back, so the rest of the fetched batch looked like a gap
and its refetched copies like records already read: input lost after a restart
(the SIGKILL recovery test lost 15-50 consecutive samples in about 1 run in 4).
Here both of its paths (with and without tables) seek first and resume the
stream partitions after, as faust-streaming#217 did elsewhere.

While tables recover, the consumer fetches with the app's recovery fetch wait
(longer than the streams' on the embedded broker, whose lookups grow with what
a changelog holds and are cut off at the wait); streams resume with their own.

Installed with the app setting ``TableManager="dharma.streams.recovery:TableManager"``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.tables import recovery as faust_recovery
from faust.tables.manager import TableManager as FaustTableManager

from dharma.streams.transport import Consumer


class Recovery(faust_recovery.Recovery):
    """Seeks the stream partitions to their committed offsets before resuming them."""

    async def _build_highwaters(self, consumer: Any, tps: Any, destination: Any,
                                title: str) -> None:
        # the first step of each recovery of tables: read changelogs with the long wait
        _use_fetch_wait(self.app.consumer, recovering=True)
        await super()._build_highwaters(consumer, tps, destination, title)

    async def _resume_streams(self, generation_id: int = 0) -> None:
        app = self.app
        await app.on_rebalance_complete.send()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._seek_then_resume_streams()
        await self._ready_for_streams()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        results = await asyncio.gather(*(
            table.on_recovery_completed(self.actives_for_table[table],
                                        self.standbys_for_table[table])
            for table in self.tables.values()), return_exceptions=True)
        for result in results:  # Faust logs nothing here; we do, and go on as it does
            if isinstance(result, BaseException):
                self.log.error("table recovery callback failed: %r", result)
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again app id %s param %s",
                             self.app.consumer_generation_id, generation_id)
            return
        await self._seek_then_resume_streams()
        await self._ready_for_streams()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _seek_then_resume_streams(self) -> None:
        consumer = self.app.consumer
        _use_fetch_wait(consumer, recovering=False)
        assignment = consumer.assignment()
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(),
                             timeout=self.app.conf.broker_request_timeout)
            consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        else:
            self.log.info("Resuming streams with empty assignment")

    async def _ready_for_streams(self) -> None:
        self.completed.set()
        self.app.flow_control.resume()
        self.app.consumer.resume_flow()
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()


def _use_fetch_wait(consumer: Any, recovering: bool) -> None:
    if isinstance(consumer, Consumer):  # our transport (dharma://); others keep their own
        consumer.use_fetch_wait(recovering)


class TableManager(FaustTableManager):
    """Faust's table manager with the :class:`Recovery` above."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return cast(Recovery, self._recovery)
