"""`UrlGuard`: a URL is checked, resolved, and every address it resolves to checked, before a
delivery connects — at registration and at every try (the resolver is injected in tests)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from webhooks.domain.errors import UrlRefused
from webhooks.domain.urls import IpAddress, Target, address_fault, target_of

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""The addresses (text) a host name resolves to for a port."""

RESOLVE_TIMEOUT_S = 5.0


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The system's resolver (getaddrinfo), TCP addresses only."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Checked:
    """A URL that passed, and the address a try connects to (the one that was checked)."""

    target: Target
    address: IpAddress


class UrlGuard:
    """Refuses URLs that are not `https` or lead to loopback, private, link-local or multicast
    addresses (unless private addresses are allowed: local and test only)."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self._resolve = resolver

    def shape(self, url: str) -> Target:
        """The URL's target, checked without DNS; `UrlRefused` otherwise."""
        target = target_of(url, allow_private=self.allow_private)
        if isinstance(target, str):
            raise UrlRefused(f"the URL {target}")
        try:
            httpx.URL(url)  # what the try will send to must parse the same way
        except (httpx.InvalidURL, ValueError) as e:
            raise UrlRefused(f"the URL is not valid ({e})") from None
        return target

    async def check(self, url: str) -> Checked:
        """Resolve the URL's host and check every address; the first one is where to connect."""
        target = self.shape(url)
        if target.literal is not None:
            addresses: list[IpAddress] = [target.literal]
        else:
            try:
                found = await asyncio.wait_for(
                    self._resolve(target.host, target.port), RESOLVE_TIMEOUT_S
                )
            except (OSError, TimeoutError, ValueError) as e:  # ValueError: an IDNA failure
                raise UrlRefused(f"the host {target.host!r} does not resolve ({e})") from None
            addresses = []
            for text in found:
                try:
                    addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
                except ValueError:
                    raise UrlRefused(f"the host resolves to {text!r}, not an address") from None
            if not addresses:
                raise UrlRefused(f"the host {target.host!r} does not resolve")
        for address in addresses:
            fault = address_fault(address, allow_private=self.allow_private)
            if fault is not None:
                raise UrlRefused(f"the host {target.host!r} resolves to {fault}")
        return Checked(target, addresses[0])
