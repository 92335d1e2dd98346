"""``/api/v1/decisions``: the zero-trust engine's decisions as its audit trail holds
them (:mod:`dharma.sinks.audit`), and a summary for charts.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from dharma.api.queries import Name, Page, Stores, StoresDep, Time, answer_503, epoch_ms, paged
from dharma.sinks.audit import create_audit_table, decision_page, decision_summary

__all__ = ["router"]

router = APIRouter(tags=["decisions"], dependencies=[Depends(answer_503)])

Decision = Literal["ALLOW", "DENY", "CHALLENGE", "REVOKE"]
#: What a summary's buckets count.
CHARTED = ("ALLOW", "DENY", "CHALLENGE")
#: Most buckets a summary answers with, and its longest window.
MAX_BUCKETS = 1440
MAX_WINDOW_MS = 31 * 86_400_000
DEFAULT_WINDOW_MS = 3_600_000
#: How long a summary answers the same query (a summary of 100,000 decisions reads them
#: all; a page polling it needs no fresher figures).
SUMMARY_TTL_S = 5.0


async def _prepare(conn: Any) -> None:
    await create_audit_table(conn, "access_audit")


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "ts_us"}


@router.get("/decisions")
async def decisions(
    page: Annotated[Page, Depends(paged(int, str))], store: StoresDep,
    user: Name = None, resource: Name = None, decision: Decision | None = None,
    since: Time = None, until: Time = None,
) -> dict[str, Any]:
    """Audit rows (one per decision, and one per revocation), newest first, decided in
    ``[since, until)``; ``inputs`` is the request as decided, masked."""
    after = (page.after[0], page.after[1]) if page.after else None
    async with store.postgres("access_audit", _prepare) as conn:
        rows = await decision_page(
            conn, user=user, resource=resource, decision=decision,
            since=epoch_ms(since, "since"), until=epoch_ms(until, "until"), after=after,
            limit=page.limit + 1)
    return page.result(rows, lambda r: (r["ts_us"], r["decision_id"]), _row)


def _window(since: int | None, until: int | None, bucket_ms: int) -> tuple[int, int]:
    """``[since, until)`` aligned to whole buckets; a 422 when it is not a bounded window."""
    hi = until if until is not None else int(time.time() * 1000)
    lo = since if since is not None else hi - DEFAULT_WINDOW_MS
    lo -= lo % bucket_ms
    if hi <= lo:
        raise HTTPException(422, "until must be after since")
    if hi - lo > MAX_WINDOW_MS or -(-(hi - lo) // bucket_ms) > MAX_BUCKETS:
        raise HTTPException(422, f"a summary covers at most {MAX_WINDOW_MS // 86_400_000} "
                                 f"days in at most {MAX_BUCKETS} buckets: raise bucket_s or "
                                 "narrow the window")
    return lo, hi


@router.get("/decisions/summary")
async def summary(
    store: StoresDep, since: Time = None, until: Time = None,
    bucket_s: Annotated[int, Query(ge=1, le=86_400, description="Bucket width.")] = 60,
) -> dict[str, Any]:
    """Decisions over ``[since, until)`` (the last hour by default): ALLOW, DENY and
    CHALLENGE per bucket (every bucket, oldest first), the 20 most frequent DENY reasons,
    the number of revocations.  The same query is answered from a summary at most 5 s
    old."""
    kept = store.cache("decisions.summary", SUMMARY_TTL_S)
    if (since, until, bucket_s) not in kept:
        kept[since, until, bucket_s] = await _summary(store, since, until, bucket_s)
    answer: dict[str, Any] = kept[since, until, bucket_s]
    return answer


async def _summary(store: Stores, since: str | None, until: str | None,
                   bucket_s: int) -> dict[str, Any]:
    bucket_ms = bucket_s * 1000
    lo, hi = _window(epoch_ms(since, "since"), epoch_ms(until, "until"), bucket_ms)
    async with store.postgres("access_audit", _prepare) as conn:
        found = await decision_summary(conn, lo, hi, bucket_ms)
    counts = found["buckets"]
    buckets = [{"ts": ts, **{d: counts.get(ts, {}).get(d, 0) for d in CHARTED}}
               for ts in range(lo, hi, bucket_ms)]
    return {"since": lo, "until": hi, "bucket_s": bucket_s, "buckets": buckets,
            "deny_reasons": found["deny_reasons"],
            "revocations": sum(b["REVOKE"] for b in counts.values())}
