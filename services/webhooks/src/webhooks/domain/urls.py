"""Which URLs and addresses a delivery may go to (SSRF rules, SPEC §8). Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from webhooks.domain.model import MAX_URL_LENGTH

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart: what to resolve and where to connect."""

    url: str
    scheme: str
    host: str
    port: int
    literal: IpAddress | None
    """The host when it is an IP address already (nothing to resolve)."""


def target_of(url: str, *, allow_private: bool) -> Target | str:
    """The URL's target, or why it is refused: `https` (also `http` when private addresses are
    allowed), a host, no credentials, no fragment."""
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"is not a URL ({e})"
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        return f"must be an {' or '.join(allowed)} URL"
    host = parts.hostname
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if parts.fragment:
        return "must not have a fragment"
    literal: IpAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if any(c.isspace() for c in host):
            return "has an invalid host"
    default_port = 443 if parts.scheme == "https" else 80
    return Target(url, parts.scheme, host, port or default_port, literal)


def address_fault(address: IpAddress, *, allow_private: bool) -> str | None:
    """Why deliveries may not connect to this address, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_fault(address.ipv4_mapped, allow_private=allow_private)
    if address.is_unspecified or address.is_reserved:
        return f"{address} is not a routable address"
    if allow_private:
        return None
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_private or not address.is_global:
        return f"{address} is a private address"
    return None
