"""The URL policy for deployments: http(s) to a public host unless the operator lists it.

Every address a host resolves to is checked (IP literals and DNS names alike), at
registration and again at every scrape, so a name that later resolves to a private
address (DNS rebinding) is refused then. Requests never follow redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from modelport.core.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_deployment_url(url: str, allowed_hosts: Iterable[str] | None = None) -> str:
    """The normalized base URL of a deployment, or ValidationFailed saying why it is refused."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("url must be a non-empty http(s) URL", {"field": "url"})
    url = url.strip()
    if any(ch in url for ch in "\\ \t\r\n") or not url.isprintable():
        raise ValidationFailed("url contains spaces, backslashes or control characters", _d(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationFailed("url must start with http:// or https://", _d(url))
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ValidationFailed("url must not contain credentials (user@host)", _d(url))
    if parts.query or parts.fragment:
        raise ValidationFailed("url must not have a query or fragment", _d(url))
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValidationFailed("url has no host", _d(url))
    try:
        port = parts.port
    except ValueError:
        raise ValidationFailed("url has an invalid port", _d(url)) from None
    allowed = [a.strip().lower().strip("[]").rstrip(".") for a in allowed_hosts or () if a]
    for address in resolve(host, port or (443 if scheme == "https" else 80)):
        if not _public(address) and not _listed(host, address, allowed):
            raise ValidationFailed(
                f"url host {host} resolves to {address}, a loopback, private, link-local or "
                "reserved address; list the host in DEPLOYMENT_ALLOWED_HOSTS to allow it",
                {"url": url, "address": str(address)},
            )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


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


def _public(address: IPAddress) -> bool:
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
