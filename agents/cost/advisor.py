"""The recommendations at a time, from the cost store: what the rules of
:mod:`~dharma.agents.cost.recommend` read, gathered through :class:`CostStore`.

Shared by ``dharma cost recommend`` and whatever publishes the recommendations on
``ml.predictions`` on the cost schedule, so both read the same windows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dharma.agents.cost.catalogue import Catalogue
from dharma.agents.cost.recommend import (
    COMMITMENT_DAYS,
    DAY_MS,
    Asset,
    DailySpend,
    Recommendations,
    Usage,
    hourly_usage,
    recommend,
)

if TYPE_CHECKING:
    from dharma.sinks.costs import CostStore
    from dharma.streams.settings import CostSettings

__all__ = ["recommendations", "store_inputs"]


async def store_inputs(store: CostStore, settings: CostSettings, now: int
                       ) -> tuple[list[Asset], Usage, DailySpend]:
    """What the rules read at ``now``: the assets alive in the hour before, their hourly
    utilisation over the lookback, and the daily spend of each team and of the estate
    over the complete days a commitment rests on."""
    since = now - settings.lookback_days * DAY_MS
    today = now // DAY_MS * DAY_MS
    first = today - COMMITMENT_DAYS * DAY_MS
    assets = [Asset(**row) for row in await store.assets(now)]
    usage = hourly_usage(await store.usage(since, now))
    daily = {"all": dict(await store.daily(None, first, today))}
    for team in await store.teams(first, today):
        daily[f"team:{team}"] = dict(await store.daily(team, first, today))
    return assets, usage, daily


async def recommendations(store: CostStore, settings: CostSettings, catalogue: Catalogue,
                          now: int) -> Recommendations:
    """Every recommendation at ``now`` (``recommend`` over :func:`store_inputs`)."""
    return recommend(*await store_inputs(store, settings, now), settings, catalogue, now)
