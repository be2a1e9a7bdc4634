"""yt-dlp's Python API for video and audio pages; a link that names a media file is one plain GET instead.

One call fetches the media (format chosen by max height and container, optionally only a section), the
subtitles (manual and automatic, chosen languages, json3 preferred, then vtt) and the info dict, with the
access options of fetch/access.py (cookies, proxy, pacing). A failure becomes the reason fetch/classify.py
finds in yt-dlp's message and warnings. yt-dlp's own retries are off: the stage retries with backoff, so every
attempt is counted and timed. With a prefilter (fetch/prefilter.py), the info dict and, for its word rule,
the captions are judged before any media byte; an admitted source's download reuses both (no second request).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.fetch.access import Access
from mmdata.fetch.classify import classify, failure_reason, http_reason, js_runtime_warning
from mmdata.fetch import guard
from mmdata.fetch.prefilter import CaptionTrack, Prefilter

log = logging.getLogger(__name__)
SUBTITLE_FAILURE = "Unable to download video subtitles"  # yt-dlp's message when a subtitle file fails
ROUTINE_WARNINGS = ("[generic] Falling back on generic information extractor",)
SUBTITLE_EXT = {"json3", "vtt", "srt", "ttml", "srv1", "srv2", "srv3", "ass", "lrc"}

INFO_FIELDS = ("id", "title", "uploader", "uploader_id", "channel", "license", "duration", "webpage_url",
               "upload_date", "description", "language", "width", "height", "fps", "ext", "extractor")


@dataclass
class YtdlpRequest:
    url: str
    max_height: int = 480
    container: str = "mp4"
    subtitles: bool = True
    auto_subtitles: bool = True
    languages: tuple[str, ...] = ("en",)
    section: tuple[float, float] | None = None  # download only [start, end] of the source (seconds)
    timeout_s: float = 30.0
    max_bytes: int | None = None
    max_duration_s: float | None = None
    strict_height: bool = False  # no format over max_height, ever (else: the smallest one above, if none fits)
    format: str | None = None  # a user's own yt-dlp format selector, passed through
    format_sort: tuple[str, ...] | None = None  # a user's own yt-dlp sort order, passed through
    access: Access = field(default_factory=Access)  # cookies, proxies, pacing, extractor arguments
    proxy: str | None = None  # this request's proxy (Access.proxy_for)
    prefilter: Prefilter | None = None  # rules judged on the info (and captions) before any media (fetch/prefilter.py)


@dataclass
class YtdlpResult:
    media: Path
    info: dict[str, Any]
    subtitles: list[dict[str, str]] = field(default_factory=list)  # {file, lang, origin, ext}
    # side files that failed while the media did not: {"what": "subtitles", "reason", "detail"}
    side_errors: list[dict[str, str]] = field(default_factory=list)


class _Logger:
    """Collects yt-dlp's messages instead of printing them; the last error explains a failure, warnings go
    to mmdata's log (and are kept: a JavaScript runtime warning explains a later format failure)."""

    def __init__(self):
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def debug(self, msg):
        pass

    def info(self, msg):
        pass

    def warning(self, msg):
        self.warnings.append(msg)
        # routine notes at debug level, so that a corpus of generic pages does not bury the real warnings
        log.log(logging.DEBUG if msg.startswith(ROUTINE_WARNINGS) else logging.WARNING, "yt-dlp: %s", msg)

    def error(self, msg):
        self.errors.append(msg)


class _OverCap(Exception):
    pass


def _options(req: YtdlpRequest, out_dir: Path, log: _Logger) -> dict[str, Any]:
    started = time.monotonic()

    def cap_hook(d):
        if req.max_bytes and (d.get("downloaded_bytes") or 0) > req.max_bytes:
            raise _OverCap(f"over the size cap of {req.max_bytes} bytes")
        if time.monotonic() - started > req.timeout_s * 20:  # a drip-feed that never stalls long enough
            raise TimeoutError(f"download took over {req.timeout_s * 20:g} s")

    opts: dict[str, Any] = {
        "outtmpl": {"default": "media.%(ext)s"},
        "paths": {"home": str(out_dir), "temp": str(out_dir)},
        "format": req.format or format_selector(req.max_height, req.strict_height),
        # a user's own format selector comes with yt-dlp's own order unless they give one too
        "format_sort": list(req.format_sort) if req.format_sort is not None else
        [] if req.format else decoding_sort(req.max_height),
        "merge_output_format": req.container,
        "writesubtitles": req.subtitles,
        "writeautomaticsub": req.auto_subtitles,
        "subtitleslangs": list(req.languages),
        "subtitlesformat": "json3/vtt/srt/best",
        "socket_timeout": req.timeout_s,
        "retries": 0, "fragment_retries": 0, "extractor_retries": 0, "file_access_retries": 0,
        "noplaylist": True, "overwrites": True, "cachedir": False, "noprogress": True,
        "quiet": True, "logger": log, "progress_hooks": [cap_hook],
        "max_filesize": req.max_bytes,
        "buffersize": 1 << 18,  # yt-dlp starts at 1 KiB blocks; per-block Python work then dominates
        **req.access.ytdlp_params(req.proxy),
    }
    opts.update(guard.ytdlp_options(user_proxy=req.proxy is not None))  # its traffic stays inside the network guard (fetch/guard.py)
    if req.section:
        from yt_dlp.utils import download_range_func

        opts["download_ranges"] = download_range_func(None, [req.section])
        # re-encode at the cuts: a stream copy would start at the keyframe before `start`, and every
        # later stage maps source times onto the file by subtracting `start`
        opts["force_keyframes_at_cuts"] = True
    return opts


def format_selector(max_height: int, strict: bool) -> str:
    """Video and audio at or under `max_height` (a format of unknown height counts as under); unless
    `strict`, the best format of any height when none is (with `decoding_sort`: the smallest above)."""
    h = max_height
    under = f"bv*[height<=?{h}]+ba/b[height<=?{h}]"
    return under if strict else f"{under}/bv*+ba/b"


def decoding_sort(max_height: int) -> list[str]:
    """Formats for decoding, not for watching: the largest up to `max_height`, then H.264 first (decord
    decodes it on every core; yt-dlp's own order puts AV1 first, which decord cannot decode and the ffmpeg
    fallback reads at ~1.2x the CPU: mmdata/media/ffmpeg_video.py), then VP9, then AV1."""
    return [f"res:{max_height}", "vcodec:h264"]


def _subtitle_files(info: dict[str, Any], out_dir: Path) -> list[dict[str, str]]:
    """Rename yt-dlp's `media.<lang>.<ext>` to `subs.<lang>.<origin>.<ext>` (origin: manual or auto)."""
    manual = set((info.get("subtitles") or {}).keys())
    subs = []
    for lang, sub in sorted((info.get("requested_subtitles") or {}).items()):
        path = Path(sub.get("filepath") or "")
        if not path.is_file():
            continue
        origin = "manual" if lang in manual else "auto"
        ext = sub.get("ext") or path.suffix.lstrip(".")
        name = f"subs.{lang}.{origin}.{ext}"
        path.rename(out_dir / name)
        subs.append({"file": name, "lang": lang, "origin": origin, "ext": ext})
    return subs


DIRECT_EXT = {"mp4", "m4v", "mov", "webm", "mkv", "mpg", "mpeg", "avi", "ts", "flv", "ogv",
              "mp3", "m4a", "wav", "flac", "ogg", "opus", "aac"}


def _direct_info(url: str) -> dict[str, Any] | None:
    """The info dict of a plain media file link (None for any other URL), which is fetched without yt-dlp.

    yt-dlp's generic extractor would first GET the URL to sniff its type (a second request per file) after
    trying ~1,800 extractor patterns, and even handed this info dict, yt-dlp spends more CPU on its set-up per
    download (extractors, an SSL context) and per block than the transfer itself; none of it tells us anything.
    """
    from urllib.parse import urlparse

    path = urlparse(url).path
    stem, _, ext = Path(path).name.rpartition(".")
    if not stem or ext.lower() not in DIRECT_EXT:
        return None
    return {"id": stem, "title": stem, "ext": ext.lower(), "webpage_url": url, "extractor": "direct"}


LIVE = {"is_live": "live now", "is_upcoming": "a live stream or premiere that has not started",
        "post_live": "a live stream that has just ended (its recording is still being processed)"}


def _extract(ydl, req: YtdlpRequest) -> dict[str, Any]:
    """A page's info dict from its extractor (not for direct links: see _direct_info)."""
    info = ydl.extract_info(req.url, download=False)
    if info.get("_type") == "playlist":
        raise ItemError("unsupported_url", f"{req.url} is a playlist; list its videos in the manifest")
    if info.get("live_status") in LIVE:  # a stream without an end (yet): its recording is fetched once it is over
        raise ItemError("live_or_upcoming", f"{req.url} is {LIVE[info['live_status']]}")
    if req.prefilter:  # before the duration cap: a drop by the user's own rule says so
        req.prefilter.check_info(info, req.url)
    duration = info.get("duration")
    if req.max_duration_s and duration and duration > req.max_duration_s and not req.section:
        raise ItemError("over_duration_cap", f"{req.url} lasts {duration:.0f} s, over the cap of "
                        f"{req.max_duration_s:.0f} s (raise --max-duration or download sections)")
    return info


def _download_direct(req: YtdlpRequest, info: dict[str, Any], out_dir: Path) -> YtdlpResult:
    """One GET, with the headers yt-dlp would send and the same limits (size cap; no data for timeout_s;
    the whole transfer over 20 x timeout_s). HTTP errors, timeouts and refused connections get the
    reasons yt-dlp's messages are classified into."""
    from yt_dlp.utils.networking import std_headers

    from mmdata.fetch.direct import fetch

    media, _ = fetch(req.url, out_dir / f"media.{info['ext']}", req.timeout_s, req.max_bytes,
                     headers=dict(std_headers), total_s=req.timeout_s * 20)
    return YtdlpResult(media=media, info=info)


def download(req: YtdlpRequest, out_dir: Path) -> YtdlpResult:
    direct = _direct_info(req.url) if not req.section else None
    if direct is not None:
        return _download_direct(req, direct, out_dir)
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError

    logger = _Logger()
    side_errors: list[dict[str, str]] = []
    try:
        with YoutubeDL(_options(req, out_dir, logger)) as ydl:
            extracted = _extract(ydl, req)
            if req.prefilter and req.prefilter.needs_caption_text:
                req.prefilter.check_words(_caption_tracks(ydl, extracted, req.url), extracted.get("duration"), req.url)
            try:
                info = ydl.process_ie_result(copy.deepcopy(extracted), download=True)
            except DownloadError as e:
                # yt-dlp writes subtitles before the media and stops at the first that fails (YouTube's
                # timedtext endpoint often answers 429): a side file must never cost the video, so the
                # same info is processed again without subtitles, and the failure is recorded
                msg = _message(logger, e)
                if not msg.startswith(SUBTITLE_FAILURE):
                    raise
                side_errors.append({"what": "subtitles", "reason": classify(msg), "detail": msg})
                log.warning("%s: subtitles not fetched, media kept: %s", req.url, msg)
                _remove_partial_subtitles(out_dir)
                bare = dataclasses.replace(req, subtitles=False, auto_subtitles=False)
                with YoutubeDL(_options(bare, out_dir, logger)) as again:
                    info = again.process_ie_result(copy.deepcopy(extracted), download=True)
    except _OverCap as e:
        raise ItemError("over_size_cap", f"{req.url}: {e}") from e
    except TimeoutError as e:
        raise ItemError("timeout", f"{req.url}: {e}") from e
    except DownloadError as e:
        raise failure(logger, e, req) from e
    downloads = info.get("requested_downloads") or []
    media = Path(downloads[0]["filepath"]) if downloads and downloads[0].get("filepath") else None
    if media is None or not media.is_file():
        # yt-dlp skips (without raising) a file whose announced size is over max_filesize
        reason = "over_size_cap" if req.max_bytes else "download_failed"
        raise ItemError(reason, f"{req.url}: no media file was written ({'; '.join(logger.errors) or 'skipped by yt-dlp'})")
    subs = _subtitle_files(info, out_dir)
    kept = {k: info.get(k) for k in INFO_FIELDS if info.get(k) is not None}
    if info.get("extractor") == "generic":  # its upload_date is the server's Last-Modified or today: not data
        kept.pop("upload_date", None)
    return YtdlpResult(media=media, info=kept, subtitles=subs, side_errors=side_errors)


CAPTION_CAP = 50_000_000  # bytes; as for a manifest's own subtitle file


def _caption_tracks(ydl, info: dict[str, Any], url: str) -> list[CaptionTrack]:
    """The caption files yt-dlp chose for the download (`requested_subtitles`), fetched now for the word rule.
    Each text is left in its format dict as `data`, which yt-dlp writes instead of fetching the file again
    when the media download processes this info (YoutubeDL._write_subtitles). A failure is the source's:
    it cannot be judged (a 429 is `rate_limited`, retried with the stage's backoff)."""
    from yt_dlp.networking import Request
    from yt_dlp.networking.exceptions import HTTPError, RequestError

    manual = set((info.get("subtitles") or {}).keys())
    tracks = []
    for lang, sub in sorted((info.get("requested_subtitles") or {}).items()):
        if sub.get("data") is None:
            if sub.get("protocol") not in (None, "http", "https") or not sub.get("url"):
                continue  # a segmented track (HLS/DASH): not readable before the media download
            headers = {**(info.get("http_headers") or {}), **(sub.get("http_headers") or {})}
            try:
                with ydl.urlopen(Request(sub["url"], headers=headers)) as resp:
                    raw = resp.read(CAPTION_CAP + 1)
            except HTTPError as e:
                raise ItemError(http_reason(e.status), f"{url}: the {lang} captions (for --prefilter): "
                                f"HTTP Error {e.status}") from e
            except RequestError as e:
                raise ItemError(classify(str(e)), f"{url}: the {lang} captions (for --prefilter): {e}") from e
            if len(raw) > CAPTION_CAP:
                raise ItemError("over_size_cap", f"{url}: the {lang} captions are over {CAPTION_CAP} bytes")
            sub["data"] = raw.decode("utf-8", errors="replace")
        tracks.append(CaptionTrack(lang, "manual" if lang in manual else "auto", sub.get("ext") or "vtt", sub["data"]))
    return tracks


def failure(logger: _Logger, e: Exception, req: YtdlpRequest) -> ItemError:
    """The error of a failed yt-dlp call: the reason its message (and warnings) give, its words as the detail."""
    msg = _message(logger, e)
    reason = failure_reason(msg, logger.warnings, req.strict_height and not req.format)
    if reason == "js_runtime_missing":
        msg += f" (after yt-dlp warned: {_unprefixed(js_runtime_warning(logger.warnings) or '')})"
    return ItemError(reason, msg)


def _message(logger: _Logger, e: Exception) -> str:
    """yt-dlp's own words for a failure, without its ERROR:/[extractor] prefixes."""
    return _unprefixed(logger.errors[-1] if logger.errors else str(e))


def _unprefixed(msg: str) -> str:
    """A yt-dlp message without its ERROR:/WARNING: and [extractor] prefixes ([youtube], [youtube+GetPOT])."""
    msg = re.sub(r"^\s*(ERROR|WARNING):\s*", "", msg.strip())
    return re.sub(r"^\s*(\[[^\]\s]+\]\s*)+(Got error:\s*)?", "", msg)


def _remove_partial_subtitles(out_dir: Path) -> None:
    """Subtitle files the failed attempt wrote (`media.<lang>.<ext>`): the retry fetches none."""
    for p in Path(out_dir).glob("media.*.*"):
        if p.suffix.lstrip(".") in SUBTITLE_EXT or p.name.endswith(".part"):
            p.unlink(missing_ok=True)
