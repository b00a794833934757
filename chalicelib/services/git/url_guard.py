"""SSRF guard for git imports: which URLs may be fetched, and connections only to checked addresses.

A URL is refused when any address its host resolves to is not a global unicast address
(loopback, private, link-local incl. the cloud metadata addresses, unique-local, unspecified,
multicast, reserved, shared, documentation, IPv4 embedded in IPv6 that is one of these), unless
A6HUB_IMPORT_ALLOW_PRIVATE=1 (local development and tests). Checking the name is not enough:
DNS may answer differently when the fetch connects (rebinding), so the fetch resolves once,
checks every address, connects to a checked address itself and verifies the socket's peer.
HTTP redirects go through the same connection classes, so a redirect to an internal address
is refused the same way.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chalicelib.config import get_settings
from chalicelib.errors import Unprocessable

SCHEMES = {"https": 443, "http": 80, "git": 9418}
# Well-known ports of the schemes, and any unprivileged port; never SSH, SMTP, ... (<1024).
ALLOWED_LOW_PORTS = frozenset({80, 443, 9418})
MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA_V6 = ipaddress.ip_address("fd00:ec2::254")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ImportRefused(Unprocessable):
    """The URL may not be imported (422 at the API; a failed job in the runner)."""


def allow_private() -> bool:
    return get_settings().import_allow_private


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, compatible, NAT64, 6to4, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    packed = ip.packed
    if ip in _NAT64 or (packed[:12] == bytes(12) and int(ip) > 1):  # NAT64, IPv4-compatible
        return ipaddress.IPv4Address(packed[12:])
    return None


def address_problem(raw: str | IPAddress) -> str | None:
    """Why this address must not be contacted, or None when it is a global unicast address."""
    try:
        ip = ipaddress.ip_address(raw.split("%", 1)[0] if isinstance(raw, str) else raw)
    except ValueError:
        return f"{raw!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            problem = address_problem(inner)
            return f"{ip} embeds {inner}: {problem}" if problem else None
        if ip == _METADATA_V6:
            return f"{ip} is the cloud metadata address"
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local (includes the cloud metadata address)"),
        (ip.is_private, "private"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved, "reserved"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"),
         "shared (carrier-grade NAT)"),
        (not ip.is_global, "not a global address"),
    )
    for hit, what in checks:
        if hit:
            return f"{ip} is a {what} address"
    return None


@dataclass(frozen=True)
class ImportURL:
    url: str
    scheme: str
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class URLPolicy:
    """What one kind of outbound request accepts beyond the common form (parse_url)."""

    schemes: dict[str, int]  # scheme -> its default port
    schemes_hint: str  # the refusal when the scheme is not one of them
    low_ports: frozenset[int]  # ports under 1024 allowed (above: any)
    credentials_hint: str  # why credentials in the URL are refused
    allow_query: bool = False  # kept as part of `path` when allowed


IMPORTS = URLPolicy(
    schemes=SCHEMES, schemes_hint="only https://, http:// and git:// URLs can be imported",
    low_ports=ALLOWED_LOW_PORTS,
    credentials_hint="only public repositories can be imported")


def parse_url(url: str, policy: URLPolicy = IMPORTS) -> ImportURL:
    """Check the URL's form (length, scheme, no credentials, a host, port, no fragment, a query
    only where the policy allows one); no network. Raises ImportRefused with the reason."""
    if len(url) > MAX_URL_LENGTH or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise ImportRefused("the URL is too long or contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ImportRefused(f"the URL is not valid: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in policy.schemes:
        raise ImportRefused(policy.schemes_hint)
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ImportRefused(f"credentials in the URL are not accepted: {policy.credentials_hint}")
    host = parts.hostname or ""
    if not host:
        raise ImportRefused("the URL has no host")
    if parts.fragment or (parts.query and not policy.allow_query):
        raise ImportRefused("the URL must not have a fragment" if policy.allow_query
                            else "the URL must not have a query or a fragment")
    port = port or policy.schemes[scheme]
    if port < 1024 and port not in policy.low_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.low_ports))
        raise ImportRefused(f"port {port} is not allowed: use {allowed} or a port above 1023")
    path = parts.path or "/"
    return ImportURL(url=url, scheme=scheme, host=host, port=port,
                     path=path + (f"?{parts.query}" if parts.query else ""))


def resolve(host: str, port: int) -> list[tuple[int, Any]]:
    """Every (family, sockaddr) the host resolves to, each checked; refuses if any is internal."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ImportRefused(f"the host {host!r} could not be resolved") from e
    found: list[tuple[int, Any]] = [(family, sockaddr) for family, _, _, _, sockaddr in infos
             if family in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        raise ImportRefused(f"the host {host!r} has no IPv4 or IPv6 address")
    if not allow_private():
        for _, sockaddr in found:
            problem = address_problem(str(sockaddr[0]))
            if problem:
                raise ImportRefused(f"the host {host!r} resolves to an internal address "
                                    f"({problem}); importing from internal addresses is not "
                                    "allowed")
    return found


def check_url(url: str) -> ImportURL:
    """Form and resolution check (the API's 422); the fetch checks again as it connects."""
    target = parse_url(url)
    resolve(target.host, target.port)
    return target


def connect(host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to a checked address of `host`; the peer is verified before use."""
    error: OSError = OSError(f"no address of {host} could be reached")
    for family, sockaddr in resolve(host, port):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            peer = sock.getpeername()[0]
            if not allow_private() and address_problem(str(peer)):
                raise ImportRefused(f"connected to {peer}, which is not a global address")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as e:
            sock.close()
            error = e
        except ImportRefused:
            sock.close()
            raise
    raise error


def checked_address(host: str, port: int) -> str:
    """One checked address of `host`, for clients that connect by themselves (git://)."""
    return str(resolve(host, port)[0][1][0])


def pool_manager(timeout: float, max_redirects: int = 3) -> Any:
    """A urllib3 PoolManager whose every connection (redirects too) goes through `connect`."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self._dns_host, self.port, self.timeout)

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return connect(self._dns_host, self.port, self.timeout)

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    manager = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=urllib3.Retry(total=max_redirects, connect=0, read=0, redirect=max_redirects,
                              raise_on_redirect=True),
        headers={"User-Agent": "a6hub-import"},
    )
    manager.pool_classes_by_scheme = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}
    return manager
