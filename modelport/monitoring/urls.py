"""The URL policy for deployments: http(s) to a public host unless the operator lists it.

Every address a host resolves to is checked (IP literals and DNS names alike), at
registration and again at every scrape, and the scrape connects to exactly the addresses it
checked (`Target.addresses`; scrape.py pins its connections to them, keeping the Host header
and the TLS server name), so a name that resolves to a public address for the check and to a
private one for the connection (DNS rebinding) cannot slip between the two. IPv6 forms that
embed an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are judged by the
IPv4 address they carry. Requests never follow redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from modelport.core.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the low 32 bits
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a network's own translator
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


@dataclass(frozen=True)
class Target:
    """A checked deployment URL and the addresses its host resolved to when checked."""

    base: str  # the normalized base URL
    host: str  # as a connection names it: lower case, no brackets, no trailing dot
    addresses: tuple[IPAddress, ...]


def check_deployment_url(url: str, allowed_hosts: Iterable[str] | None = None) -> str:
    """The normalized base URL of a deployment, or ValidationFailed saying why it is refused."""
    return check_target(url, allowed_hosts).base


def check_target(url: str, allowed_hosts: Iterable[str] | None = None) -> Target:
    """The deployment URL checked, with the addresses to connect to (resolved once)."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("url must be a non-empty http(s) URL", {"field": "url"})
    url = url.strip()
    if any(ch in url for ch in "\\ \t\r\n") or not url.isprintable():
        raise ValidationFailed("url contains spaces, backslashes or control characters", _d(url))
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # unbalanced brackets, an IPv4 address in brackets
        raise ValidationFailed(f"url is malformed: {exc}", _d(url)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationFailed("url must start with http:// or https://", _d(url))
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ValidationFailed("url must not contain credentials (user@host)", _d(url))
    if parts.query or parts.fragment:
        raise ValidationFailed("url must not have a query or fragment", _d(url))
    host = (hostname or "").rstrip(".").lower()
    if not host:
        raise ValidationFailed("url has no host", _d(url))
    try:
        port = parts.port
    except ValueError:
        raise ValidationFailed("url has an invalid port", _d(url)) from None
    allowed = [a.strip().lower().strip("[]").rstrip(".") for a in allowed_hosts or () if a]
    addresses = resolve(host, port or (443 if scheme == "https" else 80))
    for address in addresses:
        if not _public(address) and not _listed(host, address, allowed):
            raise ValidationFailed(
                f"url host {host} resolves to {address}, a loopback, private, link-local or "
                "reserved address; list the host in DEPLOYMENT_ALLOWED_HOSTS to allow it",
                {"url": url, "address": str(address)},
            )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    base = urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))
    return Target(base, host, tuple(dict.fromkeys(addresses)))


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ValidationFailed(f"cannot resolve host {host}: {exc}", {"host": host}) from None
    addresses = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope id
        address = ipaddress.ip_address(raw)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.append(address)
    if not addresses:
        raise ValidationFailed(f"host {host} has no address", {"host": host})
    return addresses


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, where a translator or tunnel would deliver
    it: IPv4-mapped, 6to4, Teredo (the client's), NAT64 and IPv4-compatible forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64 or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL:
            return False
        inner = embedded_ipv4(address)
        if inner is not None and not _public(inner):
            return False
    return address.is_global and not address.is_multicast


def _listed(host: str, address: IPAddress, allowed: list[str]) -> bool:
    for entry in allowed:
        if entry == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _d(url: str) -> dict[str, str]:
    return {"url": url[:500]}
