"""Network policy: which addresses newsflow may connect to, and how long one request may use a socket.

The check runs where the socket is opened (an httpcore network backend), on the address actually used,
so it holds after DNS resolution, after every redirect, and against DNS rebinding. Link-local (cloud
metadata endpoints such as 169.254.169.254), unspecified (0.0.0.0 reaches this host), multicast and
reserved addresses are refused even when private networks are allowed: no feed is served from there.

Every socket read and write is also bounded by the current request's deadline (:func:`request_deadline`),
so a server trickling its headers one byte at a time cannot hold a request past its total timeout.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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


def is_never_fetched(ip: IPAddress) -> bool:
    """True for addresses refused even when private networks are allowed: link-local (cloud metadata),
    unspecified, multicast and reserved ones, also when embedded in an IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or _nat64_embedded(ip)
        if embedded is not None:
            return is_never_fetched(embedded)
    # IPv6's "reserved" ::/8 holds ::1, which private networks may use; IPv4's is 240/4 and broadcast.
    reserved = ip.is_reserved and isinstance(ip, ipaddress.IPv4Address)
    return ip.is_link_local or ip.is_unspecified or ip.is_multicast or reserved


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _nat64_embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a NAT64 well-known-prefix address, which reaches that IPv4 host."""
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None


_DEADLINE: ContextVar[float | None] = ContextVar("newsflow_request_deadline", default=None)


@contextmanager
def request_deadline(deadline: float) -> Iterator[None]:
    """Bound every socket operation of this thread's request to ``deadline`` (a ``time.monotonic()``)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the request's deadline; ``expired`` when none is left."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("the request's total time is up")
    return remaining if timeout is None else min(timeout, remaining)


class DeadlineStream(SyncStream):
    """A socket stream whose per-operation timeouts never reach past the request's deadline."""

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return super().read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        super().write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        # httpcore returns a plain SyncStream over the TLS socket: keep the deadline on it.
        return DeadlineStream(stream._sock) if type(stream) is SyncStream else stream


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
            if is_never_fetched(ip):
                raise BlockedAddressError(
                    host,
                    "blocked_address",
                    f"{host} resolves to {ip}, a link-local, unspecified, multicast or reserved address; "
                    "never fetched, even with private networks allowed",
                )
            if not self.allow_private and not is_public_address(ip):
                raise BlockedAddressError(
                    host,
                    "blocked_address",
                    f"{host} resolves to {ip}, a non-public address; "
                    "allow it with NEWSFLOW_ALLOW_PRIVATE_NETWORKS=1 or --allow-private-networks",
                )
            connect_timeout = _bounded(timeout, httpcore.ConnectTimeout)
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.settimeout(connect_timeout)
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
            return DeadlineStream(sock)
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
