"""Users, devices and places of the access-request simulation."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

OFFICE: dict[str, Any] = {"name": "Office", "country": "US", "lat": 40.7128, "lon": -74.006}
HOME: dict[str, Any] = {"name": "Home", "country": "US", "lat": 40.73, "lon": -73.93}
FAR_CITIES: tuple[dict[str, Any], ...] = (
    {"name": "Singapore", "country": "SG", "lat": 1.3521, "lon": 103.8198},
    {"name": "Sao Paulo", "country": "BR", "lat": -23.5505, "lon": -46.6333},
    {"name": "Lagos", "country": "NG", "lat": 6.5244, "lon": 3.3792},
    {"name": "Moscow", "country": "RU", "lat": 55.7558, "lon": 37.6173},
    {"name": "Sydney", "country": "AU", "lat": -33.8688, "lon": 151.2093},
)
OS_CHOICES = ("Ubuntu 22.04", "macOS 14.4", "Windows 11 23H2", "Fedora 39")

ROLE_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dev", ("developer",)),
    ("dev", ("developer",)),
    ("analyst", ("analyst",)),
    ("ops", ("ops", "developer")),
    ("dba", ("dba", "developer")),
)
#: resources a role normally touches
ROLE_RESOURCES: dict[str, tuple[str, ...]] = {
    "developer": (
        "repo/dharma-streams",
        "app/payments/config",
        "logs/app-server-01",
        "database/staging/orders",
        "metrics/dashboards/latency",
    ),
    "analyst": ("reports/finance/q3", "database/analytics/warehouse", "metrics/dashboards/cost"),
    "ops": (
        "infra/web-server-01",
        "infra/app-server-01",
        "logs/web-server-02",
        "metrics/dashboards/latency",
    ),
    "dba": (
        "database/production/customer_db",
        "database/production/orders",
        "database/staging/orders",
    ),
    "admin": (
        "database/production/customer_db",
        "secrets/prod/api_keys",
        "infra/db-primary-01",
        "repo/dharma-streams",
    ),
}
FORBIDDEN = (
    "secrets/prod/api_keys",
    "secrets/prod/db_password",
    "database/production/customer_db",
    "database/production/payments",
)


@dataclass
class User:
    """A user, their usual device, address and place."""

    user_id: str
    roles: list[str]
    device: dict[str, Any]
    ip: str
    location: dict[str, Any]
    last_ts: int | None = None
    last_location: dict[str, Any] | None = None
    degraded_until: int = -1  # tick until which the device posture is degraded
    healthy_device: dict[str, Any] = field(default_factory=dict)

    def resources(self) -> tuple[str, ...]:
        """Resources this user normally requests."""
        return tuple(r for role in self.roles for r in ROLE_RESOURCES.get(role, ()))

    def may_access_forbidden(self) -> bool:
        """Admins (and DBAs for databases) legitimately reach production paths."""
        return "admin" in self.roles


def persona() -> User:
    """The seed's example persona: admin_user_001 on device_12345 at the Office."""
    device = {
        "device_id": "device_12345",
        "os": "Ubuntu 22.04",
        "encrypted": True,
        "firewall": True,
        "antivirus": True,
        "compliance_score": 95.0,
        "patch_level": "latest",
    }
    return User(
        "admin_user_001",
        ["admin", "developer"],
        device,
        "10.0.1.50",
        dict(OFFICE),
        healthy_device=dict(device),
    )


def make_users(rng: random.Random, count: int) -> list[User]:
    """``count`` users: the seed persona first, then a mix of developers, analysts, ops, DBAs."""
    users = [persona()]
    for i in range(2, count + 1):
        prefix, roles = rng.choice(ROLE_SETS)
        device = {
            "device_id": f"device_{rng.randint(10000, 99999)}",
            "os": rng.choice(OS_CHOICES),
            "encrypted": True,
            "firewall": True,
            "antivirus": rng.random() < 0.9,
            "compliance_score": float(rng.randint(85, 100)),
            "patch_level": rng.choice(("latest", "latest", "recent")),
        }
        remote = rng.random() < 0.2
        ip = (
            f"10.8.{rng.randint(0, 3)}.{rng.randint(2, 250)}"
            if remote
            else f"10.0.{rng.randint(1, 9)}.{rng.randint(2, 250)}"
        )
        users.append(
            User(
                f"{prefix}_user_{i:03d}",
                list(roles),
                device,
                ip,
                dict(HOME if remote else OFFICE),
                healthy_device=dict(device),
            )
        )
    return users


def external_ip(rng: random.Random) -> str:
    """A public-looking address from the documentation ranges (TEST-NET-2/3)."""
    return f"{rng.choice(('198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"
