"""IP networks: CIDR lists checked, parsed once, and the one membership test (the
engine's internal networks and a policy's networks alike).

>>> nets = parse_networks(("10.0.0.0/8", "fd00::/8"))
>>> in_networks(ipaddress.ip_address("10.1.2.3"), nets), in_networks(
...     ipaddress.ip_address("192.168.0.1"), nets)
(True, False)
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = ["IPAddress", "IPNetwork", "check_cidrs", "in_networks", "parse_networks"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_cidrs(value: tuple[str, ...]) -> tuple[str, ...]:
    """``value`` when every item is a CIDR (a pydantic validator); ``ValueError`` if not."""
    for cidr in value:
        ipaddress.ip_network(cidr, strict=False)
    return value


@lru_cache(maxsize=64)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """The networks of ``cidrs`` (host bits allowed), parsed once per list."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def in_networks(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether ``ip`` lies in one of ``networks`` (of its own IP version)."""
    return any(ip in net for net in networks if net.version == ip.version)
