"""Who may talk to the webhooks: the peer allow-list and the trusted-proxy rule.

Pure: networks are parsed when settings load (a malformed entry is a ConfigError there), so
this class only answers membership. X-Forwarded-For is honoured only when the TCP peer is a
trusted proxy, and then read from the right, skipping trusted hops (uvicorn's `_TrustedHosts`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from zenwatcher.settings import IpNetwork


class PeerPolicy:
    """Decides the client address of a request and whether it is allowed."""

    __slots__ = ("_allowed", "_proxies")

    def __init__(
        self, *, allowed: Sequence[IpNetwork], trusted_proxies: Sequence[IpNetwork]
    ) -> None:
        self._allowed = tuple(allowed)
        self._proxies = tuple(trusted_proxies)

    @property
    def enforcing(self) -> bool:
        return bool(self._allowed)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The real client: the peer, or the right-most untrusted X-Forwarded-For hop."""
        if peer is None or not forwarded_for or not _within(peer, self._proxies):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _within(hop, self._proxies):
                return hop
        return hops[0] if hops else peer

    def allows(self, address: str | None) -> bool:
        """True when no allow-list is set, or the address is inside it."""
        if not self._allowed:
            return True
        return address is not None and _within(address, self._allowed)


def _within(address: str, networks: Sequence[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
