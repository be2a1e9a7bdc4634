"""Which URLs may be fetched. `file://`, bare paths and private, loopback or link-local addresses are
refused unless the user allows local sources (`--allow-local`), so a manifest cannot make a worker read
its own disk or probe the internal network."""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlparse

from mmdata.errors import ItemError


def is_local_path(url: str) -> bool:
    return "://" not in url


def dns_failure(host: str, e: socket.gaierror) -> ItemError:
    """A failed lookup of `host`: `dns_temporary` when the resolver could not answer now (EAI_AGAIN: a
    timeout, a busy or unreachable DNS server; retried like other transient errors), else `dns_error` (the
    name does not exist: retrying will not help)."""
    reason = "dns_temporary" if e.errno == socket.EAI_AGAIN else "dns_error"
    return ItemError(reason, f"cannot resolve host {host!r}: {e}")


def _address_is_private(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as e:
        raise dns_failure(host, e) from e
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast \
                or ip.is_unspecified:
            return True
    return False


def check_url(url: str, allow_local: bool) -> str:
    """Return the local path or URL to fetch, or raise ItemError('refused_url', why)."""
    if is_local_path(url) or url.startswith("file://"):
        path = url[len("file://"):] if url.startswith("file://") else url
        if not allow_local:
            raise ItemError("refused_url", f"{url!r} is a local file; pass --allow-local to read local files")
        if not Path(path).is_file():
            raise ItemError("local_file_not_found", f"local file {path!r} does not exist")
        return path
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ItemError("refused_url", f"scheme {parsed.scheme!r} of {url!r} is not allowed (http/https only)")
    if not parsed.hostname:
        raise ItemError("bad_url", f"{url!r} has no host")
    if not allow_local and _address_is_private(parsed.hostname):
        raise ItemError("refused_url",
                        f"{parsed.hostname!r} is a private, loopback or link-local address; pass --allow-local to allow it")
    return url
