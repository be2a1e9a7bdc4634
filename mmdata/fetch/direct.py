"""Plain HTTP(S) fetches with a timeout and a size cap: images, side files (subtitles) and links that name a
media file (fetch/ytdlp.py hands those here): whatever is not a video page. Errors become ItemErrors with a
reason a person can act on. Redirects are followed to http(s) only; each hop's connection is checked by the
network guard (fetch/guard.py) like the first."""
from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

from mmdata.errors import ItemError
from mmdata.fetch.classify import http_reason
from mmdata.fetch import guard
from mmdata.fetch.policy import dns_failure

USER_AGENT = "mmdata/0.1 (+https://github.com/mmdata)"


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, refused unless to http(s): urllib itself would follow one to ftp://."""

    def http_error_302(self, req, fp, code, msg, headers):
        target = urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
        if urlparse(target).scheme not in ("http", "https"):
            fp.close()
            raise guard.refuse(f"{req.full_url} redirects to {target}: http and https only")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_opener = urllib.request.build_opener(_RedirectHandler)


def fetch(url: str, dest: Path, timeout_s: float, max_bytes: int | None, headers: dict[str, str] | None = None,
          total_s: float | None = None) -> tuple[Path, str]:
    """Download `url` to `dest`; returns (dest, content type). Local paths are copied. `timeout_s` bounds each
    wait for data, `total_s` (optional) the whole transfer, so a server that drips bytes cannot hold it forever."""
    if "://" not in url:
        shutil.copyfile(url, dest)
        return dest, ""
    req = urllib.request.Request(url, headers=headers or {"User-Agent": USER_AGENT})
    started = time.monotonic()
    try:
        with _opener.open(req, timeout=timeout_s) as resp, open(dest, "wb") as f:
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            length = resp.headers.get("Content-Length")
            if max_bytes and length and int(length) > max_bytes:
                raise ItemError("over_size_cap", f"{url} is {int(length)} bytes, over the cap of {max_bytes}")
            total = 0
            while block := resp.read(1 << 16):
                total += len(block)
                if max_bytes and total > max_bytes:
                    raise ItemError("over_size_cap", f"{url} exceeds the cap of {max_bytes} bytes")
                if total_s and time.monotonic() - started > total_s:
                    raise ItemError("timeout", f"{url}: download took over {total_s:g} s")
                f.write(block)
    except urllib.error.HTTPError as e:
        raise ItemError(http_reason(e.code), f"{url} answered HTTP {e.code} {e.reason}") from e
    except (socket.timeout, TimeoutError) as e:
        raise ItemError("timeout", f"{url} sent nothing for {timeout_s:g} s") from e
    except guard.Refused as e:
        raise ItemError("refused_url", f"{url}: {e}") from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, guard.Refused):
            raise ItemError("refused_url", f"{url}: {e.reason}") from e
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise ItemError("timeout", f"{url} did not answer within {timeout_s:g} s") from e
        if isinstance(e.reason, socket.gaierror):
            raise dns_failure(urlparse(url).hostname or url, e.reason) from e
        raise ItemError("connection_error", f"{url}: {e.reason}") from e
    except ConnectionError as e:
        raise ItemError("connection_error", f"{url}: {e}") from e
    return dest, ctype


def content_type(url: str, timeout_s: float) -> str:
    """The Content-Type a server announces for `url`, without its body; '' when it will not say.

    A HEAD request; where HEAD is refused (some CDNs, URLs signed for GET only) the headers of a GET,
    closed before the body is read."""
    for method in ("HEAD", "GET"):
        req = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
        try:
            with _opener.open(req, timeout=timeout_s) as resp:
                return resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        except urllib.error.HTTPError as e:
            if e.code not in (403, 405, 501):
                return ""
        except (urllib.error.URLError, OSError, ValueError):  # the fetch itself reports these, with a reason
            return ""
    return ""
