"""A real HTTP server on 127.0.0.1 for tests, benchmarks and the demo.

Serves a folder, plus a few special paths that behave like the broken internet does:
  /stall/<name>   sends headers, then stalls forever (timeouts)
  /status/<code>  answers with that HTTP status (a query string after it tells requests apart)
  /redirect?to=<url>  answers 302 to that URL (for HEAD too); /redirect-ffmpeg?to=<url> only to ffmpeg
                  (which alone sends Icy-MetaData), and serves the file named by <url>'s path to anyone else
A request in absolute form (`GET http://host/path`: a client using this server as its HTTP proxy) is served
from the same folder, as a transparent forward proxy would, and counted as `proxied <url>`.
A file's Content-Type is guessed from its extension, unless `content_types` names it (servers that label
files their own way: an image at `/img?id=3`, an error page at `/photo.jpg`).
Counts requests per path so tests can assert that nothing was downloaded twice, and keeps the Cookie header
each request carried (`cookies`).
"""
from __future__ import annotations

import collections
import functools
import http.server
import os
import threading
import time
import urllib.parse
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    counts: collections.Counter  # set per server class
    cookies: list  # (path, Cookie header) per GET, set per server class
    stall_s: float = 30.0
    delay_s: float = 0.0  # sleep before each ordinary file, to make runs slow enough to interrupt
    rate_bps: float = 0.0  # per-connection bandwidth cap in bytes/s (0: unlimited), to behave like the internet
    content_types: dict[str, str] = {}  # file name (relative to the root) -> Content-Type sent for it

    def guess_type(self, path):
        name = Path(os.path.relpath(path, self.directory)).as_posix() if self.content_types else ""
        return self.content_types.get(name) or super().guess_type(path)

    def copyfile(self, source, outputfile):
        if not self.rate_bps:
            return super().copyfile(source, outputfile)
        block = 16384
        start, sent = time.monotonic(), 0
        try:
            while data := source.read(block):
                outputfile.write(data)
                sent += len(data)
                ahead = sent / self.rate_bps - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (e.g. a sniff request)
            pass

    def log_message(self, *args):  # keep test output clean
        pass

    def _redirect(self) -> bool:
        """Answer a /redirect path (True), or leave the request to the other handlers (False)."""
        url = urllib.parse.urlsplit(self.path)
        if url.path not in ("/redirect", "/redirect-ffmpeg"):
            return False
        to = urllib.parse.parse_qs(url.query).get("to", [""])[0]
        if url.path == "/redirect-ffmpeg" and "Icy-MetaData" not in self.headers:  # sent by ffmpeg alone
            self.path = urllib.parse.urlsplit(to).path
            return False
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def do_GET(self):
        if self.path.startswith("http://"):
            self.counts[f"proxied {self.path}"] += 1
            parts = urllib.parse.urlsplit(self.path)
            self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.counts[self.path] += 1
        self.cookies.append((self.path, self.headers.get("Cookie", "")))
        if self._redirect():
            return
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2].split("?")[0])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/stall/"):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", "10000000")
            self.end_headers()
            deadline = time.monotonic() + self.stall_s
            while time.monotonic() < deadline:
                time.sleep(0.1)
            return
        if self.delay_s:
            time.sleep(self.delay_s)
        super().do_GET()

    refuse_head: bool = False  # answer HEAD with 405, as some CDNs and GET-signed URLs do

    def do_HEAD(self):
        self.counts["HEAD " + self.path] += 1
        if self._redirect():
            return
        if self.refuse_head:
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_HEAD()


class MediaServer:
    """`with MediaServer(folder) as srv: srv.url("a.mp4")`"""

    def __init__(self, root: str | Path, stall_s: float = 30.0, delay_s: float = 0.0, rate_bps: float = 0.0,
                 port: int = 0, content_types: dict[str, str] | None = None, refuse_head: bool = False):
        self.root = Path(root)
        self.counts: collections.Counter = collections.Counter()
        self.cookies: list[tuple[str, str]] = []
        handler = type("Handler", (_Handler,), {"counts": self.counts, "cookies": self.cookies, "stall_s": stall_s,
                                               "delay_s": delay_s, "rate_bps": rate_bps,
                                               "content_types": dict(content_types or {}),
                                               "refuse_head": refuse_head})
        self._httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), functools.partial(handler, directory=str(self.root))
        )
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> "MediaServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "MediaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
