"""A guarded HTTP proxy on 127.0.0.1 for the one fetcher outside this process: ffmpeg, which yt-dlp runs for
`--sections` and live streams.

ffmpeg resolves and connects on its own, past the in-process guard (fetch/guard.py); given `-http_proxy`,
it sends every request through this proxy instead, redirects and HLS segments included (plain http as
absolute-URI requests, https as CONNECT tunnels). The proxy opens each upstream connection inside the
source's own guard scope, so the same rules hold on the address connected to, and a refusal counts against
the source. One proxy per guarded block, started when yt-dlp is configured and closed with the block.
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading
from urllib.parse import urlsplit

from mmdata.fetch.guard import Refused, Scope, guarded

log = logging.getLogger(__name__)
IDLE_S = 120.0  # a tunnel with no data either way for this long is closed (ffmpeg sets no read timeout here)
MAX_HEAD = 65536
HOP_HEADERS = ("proxy-connection", "proxy-authorization", "connection", "keep-alive")


def proxy_url(scope: Scope) -> str:
    """The URL of `scope`'s proxy, started on first use and stopped when the scope closes."""
    if scope.proxy_url is None:
        listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=_accept_loop, args=(listener, scope), daemon=True, name="mmdata-guard-proxy").start()
        scope.on_close.append(lambda: _close_listener(listener))
        scope.proxy_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    return scope.proxy_url


def _close_listener(listener: socket.socket) -> None:
    try:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not, on Linux)
    except OSError:
        pass
    listener.close()


def _accept_loop(listener: socket.socket, scope: Scope) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # closed with its scope
            return
        threading.Thread(target=_serve, args=(client, scope), daemon=True).start()


def _serve(client: socket.socket, scope: Scope) -> None:
    with client:
        try:
            head = _read_head(client)
            if head is None:
                return
            with guarded(scope.policy, scope=scope):
                upstream = _open(client, head)
            if upstream is not None:
                with upstream:
                    _splice(client, upstream)
        except OSError as e:
            log.debug("guard proxy: %s", e)


def _read_head(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        block = sock.recv(4096)
        if not block or len(data) > MAX_HEAD:
            return None
        data += block
    return data


def _open(client: socket.socket, head: bytes) -> socket.socket | None:
    """Connect upstream for the request in `head` (guarded by the caller's scope); None after an error reply."""
    text, _, rest = head.partition(b"\r\n\r\n")
    request_line, *headers = text.decode("latin-1").split("\r\n")
    method, target, version = (request_line.split(" ") + ["", ""])[:3]
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        upstream = _connect(client, host.strip("[]"), int(port or 443))
        if upstream is not None:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
        return upstream
    url = urlsplit(target)
    if url.scheme != "http" or not url.hostname:  # ffmpeg tunnels https; anything else is not ours to carry
        _reply(client, 403, f"refused: {target}")
        return None
    upstream = _connect(client, url.hostname, url.port or 80)
    if upstream is not None:
        path = url.path or "/"
        kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in HOP_HEADERS]
        lines = [f"{method} {path}{'?' + url.query if url.query else ''} {version}", *kept, "Connection: close"]
        upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rest)
    return upstream


def _connect(client: socket.socket, host: str, port: int) -> socket.socket | None:
    try:
        return socket.create_connection((host, port), timeout=IDLE_S)
    except Refused as e:  # already recorded in the scope
        _reply(client, 403, str(e))
    except OSError as e:
        _reply(client, 502, f"{host}:{port}: {e}")
    return None


def _reply(client: socket.socket, status: int, text: str) -> None:
    body = text.encode()
    client.sendall(f"HTTP/1.1 {status} {'Forbidden' if status == 403 else 'Bad Gateway'}\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes or both are idle for IDLE_S."""
    with selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        while events := sel.select(IDLE_S):
            for key, _ in events:
                block = key.fileobj.recv(1 << 16)
                if not block:
                    return
                key.data.sendall(block)
