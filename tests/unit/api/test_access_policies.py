"""The packaged API policies (``40-api.yaml``) decide the contract's roles as it says,
for requests as the API builds them (unknown device, facts from the token), at any
hour, from inside or outside the internal networks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dharma.agents.trust import TrustConfig, UserBehaviour, Verdict, default_engine
from dharma.agents.trust.models import to_epoch_ms
from dharma.api.verdict import access_event
from dharma.sinks.api_tokens import TokenRow

ENGINE = default_engine(TrustConfig())
VIEWS = ["api/v1/alerts", "api/v1/incidents/inc-1", "api/v1/series/s-1/points",
         "api/v1/cmdb/assets/db-1/blast-radius", "api/v1/pipeline/health", "api/v1/live",
         "api/v1/live/alert", "api/v1/live/prediction", "api/v1/access/me"]
DECISIONS = ["api/v1/decisions", "api/v1/decisions/summary", "api/v1/live/decision"]
COST = ["api/v1/cost/teams", "api/v1/cost/forecasts", "api/v1/cost/budgets"]
# 2026-11-30 is a Monday: every minute of that week, in business hours or not.
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
WHEN = st.integers(0, 7 * 24 * 60 - 1).map(lambda m: MONDAY + timedelta(minutes=m))
PEER = st.sampled_from(["127.0.0.1", "10.1.2.3", "198.51.100.7", "0.0.0.0", "::1"])
AGE = st.integers(0, 90 * 86_400).map(lambda s: timedelta(seconds=s))


def decide(roles: tuple[str, ...], mfa: bool, resource: str, now: datetime, peer: str,
           age: timedelta) -> tuple[Verdict, str | None]:
    token = TokenRow("0123456789abcdef", "0" * 64, "alice", roles, mfa, now - age,
                     now + timedelta(days=1), None)
    decision = ENGINE.decide(access_event(token, resource, peer, now), UserBehaviour(),
                             now_ms=to_epoch_ms(now))
    return decision.decision, decision.policy_id


@given(WHEN, PEER, AGE, st.sampled_from(VIEWS + DECISIONS + COST))
def test_an_admin_token_with_mfa_reads_everything(
        now: datetime, peer: str, age: timedelta, resource: str) -> None:
    assert decide(("admin",), True, resource, now, peer, age)[0] is Verdict.ALLOW


@given(WHEN, PEER, AGE, st.sampled_from(VIEWS), st.sampled_from(["viewer", "security",
                                                                   "finance"]))
def test_every_api_role_with_mfa_reads_the_operations_views(
        now: datetime, peer: str, age: timedelta, resource: str, role: str) -> None:
    assert decide((role,), True, resource, now, peer, age) == (Verdict.ALLOW, "pol_040")


@given(WHEN, PEER, AGE, st.booleans(), st.sampled_from(DECISIONS),
       st.sampled_from(["viewer", "finance", "developer", "sre"]))
def test_decisions_are_denied_to_roles_other_than_security_and_admin(
        now: datetime, peer: str, age: timedelta, mfa: bool, resource: str, role: str) -> None:
    verdict, policy = decide((role,), mfa, resource, now, peer, age)
    assert verdict is Verdict.DENY and policy == "pol_041"


@given(WHEN, PEER, AGE, st.sampled_from(DECISIONS), st.sampled_from(["security", "admin"]))
def test_decisions_without_mfa_are_challenged(
        now: datetime, peer: str, age: timedelta, resource: str, role: str) -> None:
    assert decide((role,), False, resource, now, peer, age)[0] is Verdict.CHALLENGE


@given(WHEN, PEER, AGE, st.booleans(), st.sampled_from(COST),
       st.sampled_from(["viewer", "security"]))
def test_cost_is_denied_to_roles_other_than_finance_and_admin(
        now: datetime, peer: str, age: timedelta, mfa: bool, resource: str, role: str) -> None:
    assert decide((role,), mfa, resource, now, peer, age)[0] is Verdict.DENY


@given(WHEN, PEER, AGE, st.booleans(), st.sampled_from(VIEWS + DECISIONS + COST))
def test_a_token_without_an_api_role_reads_nothing(
        now: datetime, peer: str, age: timedelta, mfa: bool, resource: str) -> None:
    assert decide(("developer", "dba"), mfa, resource, now, peer, age)[0] is Verdict.DENY


def test_a_token_without_mfa_is_challenged_only_when_its_trust_is_too_low() -> None:
    night = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)
    day = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    old = timedelta(hours=2)
    assert decide(("viewer",), False, "api/v1/alerts", night, "198.51.100.7", old)[0] \
        is Verdict.CHALLENGE
    assert decide(("viewer",), False, "api/v1/alerts", day, "198.51.100.7", old)[0] \
        is Verdict.ALLOW
