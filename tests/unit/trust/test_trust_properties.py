"""Property-based tests: monotonicity in trust and roles, fail-closed parsing."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dharma.agents.trust import (
    AccessEvent,
    InvalidAccessEvent,
    Policy,
    PolicySet,
    TrustConfig,
    TrustEngine,
    TrustScores,
    UserBehaviour,
    Verdict,
    default_engine,
    parse_access_event,
    score_event,
)
from dharma.agents.trust.engine import RANK
from dharma.agents.trust.policy import compile_policy, forbid_applies, permit_failures

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(SETTINGS, max_examples=400)
ROLES = ["admin", "dba", "developer", "sre", "breakglass"]
PATCH = ["unknown", "outdated", "recent", "latest"]  # increasing bonus
RESOURCES = [
    "database/production/customer_db",
    "database/staging/app/orders",
    "secrets/production/api_key",
    "k8s/production/ns/web",
    "dashboards/team/latency",
    "hr/payroll/2025",
]
ACTIONS = ["read", "write", "delete", "deploy"]
LEVELS = ["NONE", "LOW", "MEDIUM", "HIGH", "FULL"]
PERMIT_LEVELS = LEVELS[1:]  # a permit needs a band above NONE
WORKDAY = datetime(2025, 12, 8, 14, 30, tzinfo=UTC)
SUNDAY_NIGHT = datetime(2025, 12, 7, 3, 0, tzinfo=UTC)
DEFAULT = default_engine(TrustConfig())

likely = st.sampled_from([True, True, True, False])  # bias towards high trust
inputs = st.fixed_dictionaries(
    {
        "compliance": st.one_of(st.floats(0, 100, allow_nan=False), st.floats(85, 100)),
        "encrypted": likely,
        "firewall": likely,
        "antivirus": likely,
        "patch": st.integers(0, 3),
        "mfa": likely,
        "auth_age": st.one_of(st.integers(0, 299), st.integers(0, 7200)),
        "history": st.floats(0, 100, allow_nan=False),
        "business": likely,
        "internal": likely,
        "roles": st.sets(st.sampled_from(ROLES)),
        "resource": st.sampled_from(RESOURCES),
        "action": st.sampled_from(ACTIONS),
    }
)

high_inputs = st.fixed_dictionaries(
    {
        "compliance": st.floats(80, 100),
        "encrypted": st.just(True),
        "firewall": st.just(True),
        "antivirus": st.just(True),
        "patch": st.integers(2, 3),
        "mfa": st.just(True),
        "auth_age": st.integers(0, 299),
        "history": st.floats(40, 100),
        "business": st.just(True),
        "internal": st.just(True),
        "roles": st.sets(st.sampled_from(ROLES), min_size=1).map(lambda r: r | {"admin"}),
        "resource": st.sampled_from(RESOURCES[:5]),
        "action": st.sampled_from(["read", "read", "write", "delete"]),
    }
)
trust_inputs = st.one_of(inputs, high_inputs)

conditions = st.fixed_dictionaries(
    {},
    optional={
        "mfa_required": st.booleans(),
        "recent_auth_required": st.booleans(),
        "min_device_compliance": st.integers(0, 100),
        "business_hours_only": st.booleans(),
        "internal_network_required": st.booleans(),
        # allow-lists contain the internal networks (see docs/trust.md, monotonicity)
        "allowed_networks": st.sampled_from([["10.0.0.0/8"], ["10.0.0.0/8", "203.0.113.0/24"]]),
    },
)
WHEN: dict[str, st.SearchStrategy[Any]] = {
    "trust_below": st.sampled_from(LEVELS),
    "device_compliance_below": st.integers(0, 100),
    "mfa_missing": st.just(True),
    "outside_business_hours": st.just(True),
    "outside_networks": st.just(["10.0.0.0/8"]),
    "outside_internal_networks": st.just(True),
    "production": st.just(True),
    "unless_roles_any": st.lists(st.sampled_from(ROLES), min_size=1, max_size=2),
    "unless_actions_any": st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=2),
}


@st.composite
def when(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(WHEN)), max_size=2, unique=True))
    return {k: draw(WHEN[k]) for k in keys}


GLOBS = ["database/production/*", "database/**", "*/production/**", "k8s/**", "**", "hr/*/2025"]


@st.composite
def policy_sets(draw: st.DrawFn) -> TrustEngine:
    docs = []
    for i in range(draw(st.integers(1, 6))):
        pol: dict[str, Any] = {
            "id": f"p{i}",
            "name": f"p{i}",
            "resource": draw(st.sampled_from(GLOBS)),
            "actions": draw(st.lists(st.sampled_from([*ACTIONS, "*"]), min_size=1, max_size=3)),
        }
        if i and draw(st.booleans()):
            pol.update(effect="forbid", when=draw(when()))
        else:
            pol.update(
                roles_any=draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=2)),
                min_trust_level=draw(st.sampled_from(PERMIT_LEVELS)),
                conditions=draw(conditions),
            )
        docs.append(pol)
    return TrustEngine(PolicySet.from_documents([{"policies": docs}]), TrustConfig())


engines = st.one_of(st.just(DEFAULT), policy_sets())


def build(x: dict[str, Any]) -> dict[str, Any]:
    ts = WORKDAY if x["business"] else SUNDAY_NIGHT
    return {
        "event_id": "prop-1",
        "ts": ts,
        "user_id": "u1",
        "roles": sorted(x["roles"]),
        "resource": x["resource"],
        "action": x["action"],
        "device": {
            "device_id": "d1",
            "os": "Ubuntu 22.04",
            "encrypted": x["encrypted"],
            "firewall": x["firewall"],
            "antivirus": x["antivirus"],
            "compliance_score": x["compliance"],
            "patch_level": PATCH[x["patch"]],
        },
        "mfa_enabled": x["mfa"],
        "last_auth_ts": ts - timedelta(seconds=x["auth_age"]),
        "source_ip": "10.0.1.50" if x["internal"] else "203.0.113.9",
    }


def rank(engine: TrustEngine, x: dict[str, Any]) -> int:
    return RANK[engine.decide(build(x), UserBehaviour(score=x["history"])).decision]


@st.composite
def lowered(draw: st.DrawFn, x: dict[str, Any]) -> dict[str, Any]:
    y = copy.deepcopy(x)
    if draw(st.booleans()):
        y["compliance"] = draw(st.floats(0, x["compliance"], allow_nan=False))
    if draw(st.booleans()):
        y["history"] = draw(st.floats(0, x["history"], allow_nan=False))
    if draw(st.booleans()):
        y["patch"] = draw(st.integers(0, x["patch"]))
    if draw(st.booleans()):
        y["auth_age"] = draw(st.integers(x["auth_age"], 10_000))
    for flag in ("encrypted", "firewall", "antivirus", "mfa", "business", "internal"):
        if draw(st.booleans()):
            y[flag] = False
    return y


@SETTINGS
@given(engine=engines, x=trust_inputs, data=st.data())
def test_lowering_trust_never_raises_decision(
    engine: TrustEngine, x: dict[str, Any], data: st.DataObject
) -> None:
    y = data.draw(lowered(x))
    assert rank(engine, y) <= rank(engine, x)


@SETTINGS
@given(engine=engines, x=trust_inputs, data=st.data())
def test_removing_a_role_never_raises_decision(
    engine: TrustEngine, x: dict[str, Any], data: st.DataObject
) -> None:
    if not x["roles"]:
        return
    y = dict(x, roles=x["roles"] - {data.draw(st.sampled_from(sorted(x["roles"])))})
    assert rank(engine, y) <= rank(engine, x)


# -- hostile and malformed input -------------------------------------------------

ALLOWED_X = {
    "compliance": 95.0, "encrypted": True, "firewall": True, "antivirus": True, "patch": 3,
    "mfa": True, "auth_age": 60, "history": 85.0, "business": True, "internal": True,
    "roles": {"admin"}, "resource": "database/production/customer_db", "action": "read",
}  # fmt: skip
REQUIRED = [
    ("event_id",), ("ts",), ("user_id",), ("device",), ("mfa_enabled",), ("last_auth_ts",),
    ("source_ip",), ("resource",), ("action",), ("device", "device_id"), ("device", "os"),
    ("device", "encrypted"), ("device", "firewall"), ("device", "antivirus"),
    ("device", "compliance_score"),
]  # fmt: skip
BAD_VALUES: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("ts",): st.one_of(st.text(), st.floats(), st.booleans(), st.integers(max_value=0)),
    ("mfa_enabled",): st.one_of(st.integers(), st.text(), st.none()),
    ("roles",): st.one_of(st.text(), st.integers(), st.lists(st.integers(), min_size=1)),
    ("source_ip",): st.one_of(st.integers(), st.text(max_size=3), st.none()),
    ("device", "compliance_score"): st.one_of(
        st.floats().filter(lambda f: not 0 <= f <= 100), st.text(), st.none(), st.booleans()
    ),
    ("device", "encrypted"): st.one_of(st.integers(), st.text(), st.none()),
    ("user_id",): st.one_of(st.just(""), st.text(min_size=129), st.integers(), st.none()),
    ("event_type",): st.text().filter(
        lambda t: t not in {"access_request", "posture_update", "risk_signal"}
    ),
}
hostile_resources = st.builds(
    lambda pre, bad, post: f"{pre}{bad}{post}",
    st.sampled_from(["", "database/production/", "database/"]),
    st.sampled_from(["../", "..", "\x00", "*", "'", '"', ";", "\\", " ", "//", "\n", "%00", "/"]),
    st.text(max_size=20),
)


def _allowed_raw() -> dict[str, Any]:
    raw = build(ALLOWED_X)
    assert DEFAULT.decide(raw, UserBehaviour(score=85)).decision is Verdict.ALLOW
    return raw


def _set(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@SETTINGS
@given(path=st.sampled_from(REQUIRED))
def test_missing_fields_never_allow(path: tuple[str, ...]) -> None:
    raw = _allowed_raw()
    node = raw
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    assert DEFAULT.decide(raw, UserBehaviour(score=85)).decision is Verdict.DENY


@SETTINGS
@given(data=st.data(), path=st.sampled_from(sorted(BAD_VALUES)))
def test_wrong_types_and_ranges_never_allow(data: st.DataObject, path: tuple[str, ...]) -> None:
    raw = _allowed_raw()
    _set(raw, path, data.draw(BAD_VALUES[path]))
    assert _rejected(raw)
    assert DEFAULT.decide(raw, UserBehaviour(score=85)).decision is Verdict.DENY


@SETTINGS
@given(resource=st.one_of(hostile_resources, st.text(min_size=1025)))
def test_hostile_resources_never_allow(resource: str) -> None:
    raw = dict(_allowed_raw(), resource=resource)
    assert DEFAULT.decide(raw, UserBehaviour(score=85)).decision is not Verdict.ALLOW
    assert _rejected(raw)


@SETTINGS
@given(
    field=st.sampled_from(["user_id", "event_id", "action"]),
    value=st.text(min_size=0, max_size=300),
)
def test_odd_strings_allow_only_when_valid(field: str, value: str) -> None:
    raw = dict(_allowed_raw(), **{field: value})
    decision = DEFAULT.decide(raw, UserBehaviour(score=85))
    if _rejected(raw):
        assert decision.decision is Verdict.DENY


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@SETTINGS
@given(
    raw=st.one_of(
        json_values, st.dictionaries(st.sampled_from(list(build(ALLOWED_X))), json_values)
    )
)
def test_arbitrary_input_never_raises_nor_allows(raw: Any) -> None:
    decision = DEFAULT.decide(raw)
    assert decision.decision is Verdict.DENY
    decision.to_record()


# -- component level: each forbid predicate is antitone, each permit check monotone --------


@st.composite
def permit_policy(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "roles_any": draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=2)),
        "min_trust_level": draw(st.sampled_from(PERMIT_LEVELS)),
        "conditions": draw(conditions),
    }


def _compiled(spec: dict[str, Any]) -> Any:
    pol = Policy.model_validate(
        {"id": "p", "name": "p", "resource": "**", "actions": ["*"], **spec}
    )
    return compile_policy(pol)


def _facts(x: dict[str, Any]) -> tuple[AccessEvent, TrustScores]:
    event = parse_access_event(build(x))
    assert isinstance(event, AccessEvent)
    return event, score_event(event, x["history"], TrustConfig())


@MANY
@given(spec=when(), x=trust_inputs, data=st.data())
def test_forbid_predicates_only_tighten(
    spec: dict[str, Any], x: dict[str, Any], data: st.DataObject
) -> None:
    cp = _compiled({"effect": "forbid", "when": spec})
    y = data.draw(lowered(x))
    if data.draw(st.booleans()):
        y["roles"] = y["roles"] - set(data.draw(st.lists(st.sampled_from(ROLES))))
    if forbid_applies(cp, *_facts(x)):
        assert forbid_applies(cp, *_facts(y))


@MANY
@given(spec=permit_policy(), x=trust_inputs, data=st.data())
def test_permit_checks_only_tighten(
    spec: dict[str, Any], x: dict[str, Any], data: st.DataObject
) -> None:
    cp = _compiled(spec)
    y = data.draw(lowered(x))
    if data.draw(st.booleans()):
        y["roles"] = y["roles"] - set(data.draw(st.lists(st.sampled_from(ROLES))))
    if not permit_failures(cp, *_facts(y)):
        assert not permit_failures(cp, *_facts(x))


def _rejected(raw: dict[str, Any]) -> bool:
    try:
        parse_access_event(raw)
    except InvalidAccessEvent:
        return True
    return False
