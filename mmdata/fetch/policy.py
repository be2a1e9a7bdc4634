"""Which manifest URLs may be fetched, decided before any connection: http and https only; `file://` and bare
paths only with `--allow-local`; a host whose every address is outside the public internet is refused early,
with a clear reason. This is the early, friendly check; what holds is the connect-time guard
(fetch/guard.py), which checks every connection again, redirects and rebinding DNS included."""
from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from mmdata.errors import ItemError
from mmdata.fetch.guard import NetPolicy, literal_address, resolve

SCHEMES = ("http", "https")


def is_local_path(url: str) -> bool:
    return "://" not in url


def dns_failure(host: str, e: socket.gaierror) -> ItemError:
    """A failed lookup of `host`: `dns_temporary` when the resolver could not answer now (EAI_AGAIN: a
    timeout, a busy or unreachable DNS server; retried like other transient errors), else `dns_error` (the
    name does not exist: retrying will not help)."""
    reason = "dns_temporary" if e.errno == socket.EAI_AGAIN else "dns_error"
    return ItemError(reason, f"cannot resolve host {host!r}: {e}")


def check_url(url: str, policy: NetPolicy) -> str:
    """Return the local path or URL to fetch, or raise ItemError('refused_url', why)."""
    if is_local_path(url) or url.startswith("file://"):
        path = url[len("file://"):] if url.startswith("file://") else url
        if not policy.allow_local:
            raise ItemError("refused_url", f"{url!r} is a local file; pass --allow-local to read local files")
        if not Path(path).is_file():
            raise ItemError("local_file_not_found", f"local file {path!r} does not exist")
        return path
    parsed = urlparse(url)
    if parsed.scheme not in SCHEMES:
        raise ItemError("refused_url", f"scheme {parsed.scheme!r} of {url!r} is not allowed (http/https only)")
    if not parsed.hostname:
        raise ItemError("bad_url", f"{url!r} has no host")
    if not policy.allow_local and not policy.host_listed(parsed.hostname):
        _check_addresses(parsed.hostname, policy)
    return url


def _check_addresses(host: str, policy: NetPolicy) -> None:
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = [literal_address(str(i[4][0])) for i in resolve(host, None, 0, socket.SOCK_STREAM)]
        except socket.gaierror as e:
            raise dns_failure(host, e) from e
    if not any(a is not None and policy.address_allowed(a) for a in addresses):
        shown = ", ".join(sorted({str(a) for a in addresses}))
        what = host if literal is not None else f"{host} ({shown})"
        raise ItemError("refused_url", f"{what} is not a public address (private, loopback, link-local, CGNAT "
                        f"or reserved); pass --allow-hosts {host} or --allow-local to allow it")
