"""Network policy: which addresses newsflow may connect to.

The check runs where the socket is opened (an httpcore network backend), on the address actually used,
so it holds after DNS resolution, after every redirect, and against DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION
from httpcore._backends.sync import SyncBackend, SyncStream

from newsflow.errors import BlockedAddressError, TransientFetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address: not loopback, private, link-local, reserved..."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or _nat64_embedded(ip)
        if embedded is not None:
            return is_public_address(embedded)
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _nat64_embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a NAT64 well-known-prefix address, which reaches that IPv4 host."""
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None


class GuardedBackend(SyncBackend):
    """Resolves the host itself and refuses non-public addresses unless private networks are allowed."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise TransientFetchError(host, "dns_error", f"cannot resolve {host}: {exc}") from exc
        last_error: Exception | None = None
        for family, _, _, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            if not self.allow_private and not is_public_address(ip):
                raise BlockedAddressError(
                    host,
                    "blocked_address",
                    f"{host} resolves to {ip}, a non-public address; "
                    "allow it with NEWSFLOW_ALLOW_PRIVATE_NETWORKS=1 or --allow-private-networks",
                )
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                if local_address is not None:
                    sock.bind((local_address, 0))
                sock.connect(sockaddr)
            except TimeoutError as exc:
                sock.close()
                raise httpcore.ConnectTimeout(str(exc)) from exc
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return SyncStream(sock)
        raise httpcore.ConnectError(f"cannot connect to {host}:{port}: {last_error}")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the connection pool built on :class:`GuardedBackend`."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx offers no public hook for the network backend, so the pool is rebuilt with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private),
        )
