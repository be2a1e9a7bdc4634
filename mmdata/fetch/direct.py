"""Plain HTTP(S) fetches with a timeout and a size cap: images, side files (subtitles) and links that name a
media file (fetch/ytdlp.py hands those here): whatever is not a video page. Errors become ItemErrors with a
reason a person can act on."""
from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mmdata.errors import ItemError
from mmdata.fetch.policy import dns_failure

USER_AGENT = "mmdata/0.1 (+https://github.com/mmdata)"


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
        with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(dest, "wb") as f:
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
        raise ItemError(f"http_{e.code}", f"{url} answered HTTP {e.code} {e.reason}") from e
    except (socket.timeout, TimeoutError) as e:
        raise ItemError("timeout", f"{url} sent nothing for {timeout_s:g} s") from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise ItemError("timeout", f"{url} did not answer within {timeout_s:g} s") from e
        if isinstance(e.reason, socket.gaierror):
            raise dns_failure(urllib.parse.urlparse(url).hostname or url, e.reason) from e
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
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        except urllib.error.HTTPError as e:
            if e.code not in (403, 405, 501):
                return ""
        except (urllib.error.URLError, OSError, ValueError):  # the fetch itself reports these, with a reason
            return ""
    return ""
