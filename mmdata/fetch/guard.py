"""The network guard: every connection made while fetching a source is checked at connect time, on the
address actually connected to, after every redirect, whichever library opens it.

A manifest is input from strangers; without this, a row could make a worker fetch the cloud's metadata
endpoint (169.254.169.254, 100.100.100.200) or an internal service, and store the answer in the work folder.
A name checked once before the fetch proves nothing: DNS can answer a public address to the check and an
internal one to the connection (rebinding), and a redirect or an HLS playlist can point anywhere.

How: inside `guarded(policy)`, this thread's name lookups (`socket.getaddrinfo`, which http.client, urllib3
and yt-dlp all call) keep only the addresses the policy allows, and `socket.connect` checks the address it is
given. Both are patched once per process and do nothing outside a guarded block, so the work store (an S3
endpoint on the internal network) and Ray are never affected. A refusal raises `Refused` (an OSError, which
libraries unwind like a failed connection) and is recorded, and the block ends in `ItemError('refused_url')`
whatever the library made of the error (yt-dlp turns a failed subtitle into a warning).

Allowed: globally routable addresses only (`ipaddress.is_global`: no private, loopback, link-local, CGNAT
100.64.0.0/10, documentation or reserved ranges), unless the policy allows local addresses or lists the host.
yt-dlp is kept in this thread (`ytdlp_options`); ffmpeg, the one fetcher outside this process (`--sections`,
live streams), goes through a guarded local proxy (fetch/guard_proxy.py).
"""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from mmdata.errors import ConfigError, ItemError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list]

_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
# Tests point test host names at 127.0.0.1 here (a function with socket.getaddrinfo's signature); None: DNS
resolver: Resolver | None = None


@dataclass(frozen=True)
class NetPolicy:
    """Which hosts a manifest URL may reach. `allow_local`: everything (local files too); `allow_hosts`: host
    names (exact, case-insensitive), addresses or networks (CIDR) trusted whatever they resolve to."""
    allow_local: bool = False
    allow_hosts: tuple[str, ...] = ()

    def __post_init__(self):
        for entry in self.allow_hosts:
            if _network(entry) is None and not _HOST_NAME.fullmatch(entry):
                raise ConfigError(f"allow_hosts entry {entry!r} is invalid: a host name, an IP address or a "
                                  f"network such as 10.1.0.0/16")

    def host_listed(self, host: str) -> bool:
        return host.lower().rstrip(".") in {h.lower().rstrip(".") for h in self.allow_hosts if _network(h) is None}

    def address_allowed(self, ip: IP) -> bool:
        ip = _unmapped(ip)
        if self.allow_local or any(ip in net for net in self._networks()):
            return True
        return ip.is_global and not ip.is_multicast

    def _networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [n for n in map(_network, self.allow_hosts) if n is not None]


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def _unmapped(ip: IP) -> IP:
    """::ffff:127.0.0.1 is 127.0.0.1 (Python before 3.13 calls the mapped form global)."""
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


def literal_address(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def resolve(host: str, port: Any = None, *args, **kwargs) -> list:
    """getaddrinfo through the test hook, if one is set."""
    return (resolver or _real_getaddrinfo)(host, port, *args, **kwargs)


class Refused(OSError):
    """A connection the policy does not allow (an OSError, so that libraries unwind as from a failed one)."""


@dataclass
class Scope:
    policy: NetPolicy
    refusals: list[str] = field(default_factory=list)
    approved: set[str] = field(default_factory=set)  # addresses that names listed in allow_hosts resolved to
    on_close: list[Callable[[], None]] = field(default_factory=list)
    proxy_url: str | None = None  # the guarded proxy ffmpeg goes through, once started (fetch/guard_proxy.py)

    def refuse(self, detail: str) -> Refused:
        self.refusals.append(detail)
        return Refused(detail)

    def filter(self, host: str, port: Any, infos: list) -> list:
        """The answers for `host` this scope may connect to; Refused when none is."""
        if self.policy.allow_local:
            return infos
        if self.policy.host_listed(host):
            self.approved.update(_ip_of(i) for i in infos if _is_inet(i[0]))
            return infos
        kept = [i for i in infos if not _is_inet(i[0]) or self.policy.address_allowed(literal_address(_ip_of(i)))]
        if not kept:
            addrs = ", ".join(sorted({_ip_of(i) for i in infos}))
            what = f"{host}:{port}" + ("" if literal_address(host) else f" ({addrs})")
            raise self.refuse(f"{what} is not a public address; pass --allow-hosts {host} to allow it")
        return kept

    def check_address(self, ip_text: str, port: Any) -> None:
        ip = literal_address(ip_text)
        if ip is None or self.policy.address_allowed(ip) or ip_text in self.approved:
            return
        raise self.refuse(f"{ip_text}:{port} is not a public address; pass --allow-hosts {ip_text} to allow it")


def refuse(detail: str) -> Refused:
    """A refusal found outside the socket layer (a redirect to ftp://), counted against this thread's block."""
    scope = current()
    return scope.refuse(detail) if scope is not None else Refused(detail)


_state = threading.local()
_install_lock = threading.Lock()


def current() -> Scope | None:
    """This thread's guard, or None outside a guarded block."""
    return getattr(_state, "scope", None)


@contextmanager
def guarded(policy: NetPolicy, scope: Scope | None = None) -> Iterator[Scope]:
    """Check every connection this thread opens inside the block; a refused one makes the block end in
    ItemError('refused_url'). `scope`: another thread's scope to enter (the proxy's handler threads)."""
    _install()
    own = scope is None
    scope = scope or Scope(policy)
    previous, _state.scope = current(), scope
    try:
        yield scope
    except Exception as e:
        if own and scope.refusals:
            raise ItemError("refused_url", scope.refusals[0]) from e
        raise
    finally:
        _state.scope = previous
        if own:
            for close in scope.on_close:
                close()
    if own and scope.refusals:
        raise ItemError("refused_url", scope.refusals[0])


def ytdlp_options(user_proxy: bool = False) -> dict[str, Any]:
    """yt-dlp options that keep its traffic inside this thread's guard: native HLS/DASH downloaders (not
    ffmpeg), fragments fetched in this thread (a thread pool would be outside the guard), and ffmpeg, where
    yt-dlp still needs it (sections, live streams), pointed at the guarded proxy, unless the user's own proxy
    carries the traffic (yt-dlp hands that one to ffmpeg)."""
    opts: dict[str, Any] = {"hls_prefer_native": True, "external_downloader": {"default": "native"},
                            "concurrent_fragment_downloads": 1}
    scope = current()
    if scope is not None and not scope.policy.allow_local and not user_proxy:
        from mmdata.fetch.guard_proxy import proxy_url

        opts["external_downloader_args"] = {"ffmpeg_i": ["-http_proxy", proxy_url(scope)]}
    return opts


def _is_inet(family: int) -> bool:
    return family in (socket.AF_INET, socket.AF_INET6)


def _ip_of(info: tuple) -> str:
    return str(info[4][0]).split("%")[0]


def _getaddrinfo(host, port, *args, **kwargs):
    scope = current()
    infos = resolve(host, port, *args, **kwargs)
    if scope is None or host is None:
        return infos
    return scope.filter(host.decode() if isinstance(host, bytes) else str(host), port, infos)


def _checked(sock: socket.socket, address: Any) -> Any:
    """The address to connect to, once allowed; a name given to connect() itself (which resolves it in C,
    past the lookup filter) is resolved here instead."""
    scope = current()
    if scope is None or not _is_inet(sock.family) or not isinstance(address, tuple):
        return address
    host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
    if literal_address(host) is None:
        infos = _getaddrinfo(host, address[1], sock.family, sock.type)
        address = (_ip_of(infos[0]),) + tuple(address[1:])
        host = address[0]
    scope.check_address(host, address[1])
    return address


def _connect(self, address):
    return _real_connect(self, _checked(self, address))


def _connect_ex(self, address):
    return _real_connect_ex(self, _checked(self, address))


def _install() -> None:
    """Patch the two socket entry points, once per process; they pass through outside a guarded block."""
    with _install_lock:
        if socket.getaddrinfo is not _getaddrinfo:
            socket.getaddrinfo = _getaddrinfo
            socket.socket.connect = _connect
            socket.socket.connect_ex = _connect_ex
