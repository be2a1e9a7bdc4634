"""The download stage: fetch each source once (however many clips use it), with its subtitles and info.

Items are sources, not clips: a chunk's clips are grouped by `video_id`. Video and audio pages go
through yt-dlp; images, side files (a manifest's `subtitles` column) and links that name a media file
through a plain HTTP fetch. A link whose name says nothing of its kind (`https://host/img?id=3`) is asked
for its Content-Type first; the kind found is recorded in the meta, and later stages take it from there.
The ffprobe check of a video or audio file is kept as the probe the frames and audio stages read
(mmdata/media/source.py).

A site that refuses the worker (bot_check, rate_limited) is retried with a longer backoff, and when refusals
pile up the worker pauses (fetch/throttle.py); each pause is an event the run's summary counts, as are the
sources that kept their media but lost a side file.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import mimetypes
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmdata.config import check
from mmdata.errors import ItemError
from mmdata.fetch import direct
from mmdata.fetch.access import DEFAULT_JS_RUNTIMES, Access, build_access
from mmdata.fetch.classify import BLOCKING
from mmdata.fetch.guard import NetPolicy, guarded
from mmdata.fetch.policy import check_url, is_local_path
from mmdata.fetch.prefilter import KINDS, REASONS as PREFILTER_REASONS, Prefilter
from mmdata.fetch.throttle import Throttle, backoff_s
from mmdata.fetch.ytdlp import DIRECT_EXT, YtdlpRequest, download as ytdlp_download
from mmdata.manifests.normalize import AUDIO_EXT, IMAGE_EXT
from mmdata.media.source import keep_download_probe
from mmdata.media_check import check_image, check_image_type, kind_of_file, media_summary, probe_or_reason
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.records import Clip, Source, StatusRow
from mmdata.store.records import DownloadOutput
from mmdata.workdir import WorkDir

log = logging.getLogger(__name__)
RETRYABLE = {"timeout", "connection_error", "dns_temporary", "http_500", "http_502", "http_503", "http_504"}
CONTAINERS = ("mp4", "mkv", "webm")
MEDIA_EXT = IMAGE_EXT | AUDIO_EXT | {f".{e}" for e in DIRECT_EXT}
# Video sites: their pages are video, and asking them for a Content-Type would cost a request per source
VIDEO_HOSTS = ("youtube.com", "youtu.be", "youtube-nocookie.com", "vimeo.com", "dailymotion.com", "twitch.tv",
               "tiktok.com", "bilibili.com")
DETECTED_KINDS = ("image", "audio")  # a Content-Type of image/* or audio/* names the kind; anything else stays video
PREFILTER_CAPTIONS = ("any", "manual", "auto", "none")  # caption kinds the prefilter's caption rules count


@dataclass
class DownloadConfig:
    allow_local: bool = False  # file paths, file:// and private/loopback addresses (tests, local corpora)
    allow_hosts: tuple[str, ...] = ()  # hosts, addresses or networks trusted though not public (fetch/guard.py)
    max_height: int = 480
    strict_height: bool = False  # never a format over max_height: an error row no_format_under_cap instead
    format: str | None = None  # your own yt-dlp format selector (overrides max_height's)
    format_sort: tuple[str, ...] | None = None  # your own yt-dlp sort order (default: H.264, VP9, AV1)
    container: str = "mp4"
    subtitles: bool = True  # manual subtitles
    auto_subtitles: bool = True  # automatic (ASR) captions
    languages: tuple[str, ...] = ("en",)
    sections: bool = False  # fetch only the span the clips need (long videos)
    concurrency: int = 4
    retries: int = 2
    backoff_s: float = 1.0
    timeout_s: float = 30.0
    max_duration_s: float | None = 3 * 3600.0
    max_filesize_mb: float | None = 2000.0
    min_image_side: int = 32
    # YouTube at scale (README "Downloading from YouTube"): read here, sent with this config to every worker
    cookies: str | None = None  # a Netscape cookies.txt (its text travels; the file is never written)
    cookies_from_browser: str | None = None  # BROWSER[+KEYRING][:PROFILE][::CONTAINER] on this machine
    proxy: tuple[str, ...] = ()  # proxy URLs, or files listing one a line; a source's proxy: by its id
    sleep_requests_s: float = 0.0  # yt-dlp's --sleep-requests: between the requests that read a page
    sleep_interval_s: float = 0.0  # yt-dlp's --sleep-interval: before each download
    limit_rate: str | None = None  # bytes/s per worker (50K, 4.2M), shared by its `concurrency` downloads
    youtube_extractor_args: str | None = None  # yt-dlp's --extractor-args for youtube: player_client=web;...
    js_runtimes: tuple[str, ...] = DEFAULT_JS_RUNTIMES  # yt-dlp's --js-runtimes (deno, node, bun, quickjs)
    # refusals (bot_check, rate_limited): retries wait block_backoff_s, doubling, at most block_backoff_max_s;
    # when block_share of the last block_window sources were refused, the worker pauses block_pause_s
    block_backoff_s: float = 30.0
    block_backoff_max_s: float = 600.0
    block_window: int = 20
    block_share: float = 0.5
    block_pause_s: float = 900.0
    # cheap first (README "Cheap first: --prefilter"): pages judged on their info and captions before any media
    prefilter: bool = False
    prefilter_min_duration_s: float | None = None
    prefilter_max_duration_s: float | None = None
    prefilter_captions: str = "any"  # caption kinds that count: any (manual or auto), manual, auto, none (no rule)
    prefilter_min_words_per_30s: float = 0.0  # 0: no word rule
    prefilter_categories: tuple[str, ...] = ()  # allowed (yt-dlp's `categories`); empty: any
    prefilter_deny_categories: tuple[str, ...] = ()
    prefilter_licenses: tuple[str, ...] = ()  # allowed (yt-dlp's `license`, the whole text); empty: any
    access: Access = field(init=False, repr=False, compare=False, default_factory=Access)

    def __post_init__(self):
        n = "DownloadConfig"
        if isinstance(self.format_sort, str):  # the command line's comma-separated form
            self.format_sort = tuple(s.strip() for s in self.format_sort.split(",") if s.strip())
        elif self.format_sort is not None:
            self.format_sort = tuple(self.format_sort)
        check(self.max_height >= 32, n, "max_height", self.max_height, "at least 32 pixels")
        check(self.container in CONTAINERS, n, "container", self.container, f"one of {CONTAINERS}")
        check(self.concurrency >= 1, n, "concurrency", self.concurrency, "at least 1")
        check(self.retries >= 0, n, "retries", self.retries, "0 or more")
        check(self.timeout_s > 0, n, "timeout_s", self.timeout_s, "a positive number of seconds")
        check(self.max_duration_s is None or self.max_duration_s > 0, n, "max_duration_s", self.max_duration_s,
              "positive seconds, or null for no cap")
        check(self.max_filesize_mb is None or self.max_filesize_mb > 0, n, "max_filesize_mb",
              self.max_filesize_mb, "positive MB, or null for no cap")
        for key in ("sleep_requests_s", "sleep_interval_s", "block_backoff_s", "block_backoff_max_s",
                    "block_pause_s"):
            check(getattr(self, key) >= 0, n, key, getattr(self, key), "0 or more seconds")
        check(self.block_window >= 1, n, "block_window", self.block_window, "at least 1 source")
        check(0 < self.block_share <= 1, n, "block_share", self.block_share, "a share in (0, 1]")
        self._check_prefilter()
        self.proxy = tuple(self.proxy) if not isinstance(self.proxy, str) else (self.proxy,)
        self.js_runtimes = tuple(self.js_runtimes) if not isinstance(self.js_runtimes, str) else (self.js_runtimes,)
        self.access = build_access(self)  # in the driver: cookies and proxy files are read on this machine
        self.network  # an invalid allow_hosts entry is a ConfigError now, not an error row per source

    def _check_prefilter(self) -> None:
        n = "DownloadConfig"
        check(self.prefilter_captions in PREFILTER_CAPTIONS, n, "prefilter_captions", self.prefilter_captions,
              f"one of {', '.join(PREFILTER_CAPTIONS)}")
        for key in ("prefilter_min_duration_s", "prefilter_max_duration_s"):
            v = getattr(self, key)
            check(v is None or v >= 0, n, key, v, "0 or more seconds, or null for no bound")
        check(self.prefilter_min_words_per_30s >= 0, n, "prefilter_min_words_per_30s",
              self.prefilter_min_words_per_30s, "0 (no word rule) or more words")
        if self.prefilter and self.prefilter_captions in KINDS:  # `any` counts the kinds fetched, if any
            check(bool(self._prefilter_kinds()), n, "prefilter_captions", self.prefilter_captions,
                  "a kind of caption this download fetches (drop --no-subtitles/--no-auto-subtitles, or use any)")
        given = [f.name for f in dataclasses.fields(self) if f.name.startswith("prefilter_")
                 and f.name != "prefilter_captions" and getattr(self, f.name) not in (None, (), 0.0)]
        check(self.prefilter or not given, n, "prefilter", self.prefilter,
              f"true (--prefilter) for the prefilter rules given ({', '.join(given)}) to act")

    def _prefilter_kinds(self) -> tuple[str, ...]:
        fetched = tuple(k for k, on in zip(KINDS, (self.subtitles, self.auto_subtitles)) if on)
        wanted = {"any": KINDS, "none": ()}.get(self.prefilter_captions, (self.prefilter_captions,))
        return tuple(k for k in wanted if k in fetched)

    @property
    def prefilter_rules(self) -> Prefilter | None:
        """The prefilter's rules (None when it is off)."""
        if not self.prefilter:
            return None
        return Prefilter(tuple(self.languages), self.prefilter_min_duration_s, self.prefilter_max_duration_s,
                         self._prefilter_kinds(), self.prefilter_min_words_per_30s, tuple(self.prefilter_categories),
                         tuple(self.prefilter_deny_categories), tuple(self.prefilter_licenses))

    @property
    def network(self) -> NetPolicy:
        """The guard's policy. The user's own proxies are trusted like `allow_hosts` (the config names them,
        not the manifest); through a proxy, the guard sees only the connection to the proxy."""
        proxies = tuple(h for h in (urlparse(u).hostname for u in self.access.proxies) if h)
        return NetPolicy(self.allow_local, tuple(self.allow_hosts) + proxies)

    @property
    def max_bytes(self) -> int | None:
        return int(self.max_filesize_mb * 1e6) if self.max_filesize_mb else None


def sources_of(clips: list[Clip]) -> list[Source]:
    """Group clips by source; a section download must cover the widest window any clip needs."""
    groups: dict[str, list[Clip]] = {}
    for c in clips:
        groups.setdefault(c.video_id, []).append(c)
    out = []
    for vid, cs in groups.items():
        starts = [c.start_s for c in cs]
        ends = [c.end_s for c in cs]
        out.append(Source(
            video_id=vid, url=cs[0].url, kind=cs[0].kind,
            subtitles=next((c.subtitles for c in cs if c.subtitles), None),
            clip_keys=tuple(c.key for c in cs),
            start_s=None if None in starts else min(starts), end_s=None if None in ends else max(ends)))
    return out


def says_nothing(url: str) -> bool:
    """True for an http(s) link whose file name does not tell its kind and whose host is no video site."""
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in VIDEO_HOSTS):
        return False
    return Path(parsed.path).suffix.lower() not in MEDIA_EXT


def detect_kind(item: Source, location: str, timeout_s: float) -> tuple[str, str, str]:
    """(kind, where it came from: manifest | content_type, the announced Content-Type or '').

    The clip table's kind comes from a `kind` column or the URL's extension, and defaults to video; only
    that default is checked against the server, so an explicit image or audio kind costs no request."""
    if item.kind != "video" or is_local_path(location) or not says_nothing(location):
        return item.kind, "manifest", ""
    ctype = direct.content_type(location, timeout_s)
    kind = ctype.split("/")[0]
    return (kind, "content_type", ctype) if kind in DETECTED_KINDS else (item.kind, "manifest", ctype)


class DownloadStage(ShipsConfigOnly, Stage):
    name = "download"
    resources = Resources(cpus=1, memory_mb=1024)
    # not in the resume stamp: how sources are fetched, not what a fetched source holds: access (cookies,
    # proxies, pacing), the network policy (a source it refused is an error row: --retry-failed after allowing
    # it), retries and timeouts. The prefilter's rules decide only which sources are admitted; a dropped row
    # names its rule, and `should_retry` re-judges it when the rule changed (a looser re-run fetches only the
    # newly admitted)
    run_only = ("allow_local", "allow_hosts", "concurrency", "retries", "backoff_s", "timeout_s", "cookies",
                "cookies_from_browser", "proxy", "sleep_requests_s", "sleep_interval_s", "limit_rate",
                "youtube_extractor_args", "js_runtimes", "block_backoff_s", "block_backoff_max_s", "block_window",
                "block_share", "block_pause_s", "prefilter", "prefilter_min_duration_s", "prefilter_max_duration_s",
                "prefilter_captions", "prefilter_min_words_per_30s", "prefilter_categories",
                "prefilter_deny_categories", "prefilter_licenses")

    def __init__(self, cfg: DownloadConfig | None = None, throttle: Throttle | None = None):
        self.cfg = cfg or DownloadConfig()
        self.concurrency = self.cfg.concurrency
        # one per worker process, shared by its threads (a worker unpickles the stage: ShipsConfigOnly)
        self.throttle = throttle or Throttle(self.cfg.block_window, self.cfg.block_share, self.cfg.block_pause_s)

    def setup(self) -> None:
        from mmdata.environment import check_needs

        check_needs(self.needs(), "the download stage")

    def items(self, work: WorkDir, clips: list[Clip]) -> list[Source]:
        return sources_of(clips)

    def process(self, item: Source, out_dir: Path, work: WorkDir) -> DownloadOutput:
        self.throttle.wait()  # while the worker is paused, no source starts
        try:
            meta, ffprobe, attempt = self._fetch_with_retries(item, out_dir)
        except ItemError as e:
            self._outcome(work, e.reason)
            raise
        self._outcome(work, None)
        meta["attempts"] = attempt + 1
        if ffprobe is not None:  # frames and audio read this probe instead of running ffprobe again
            keep_download_probe(out_dir / meta["media"], ffprobe, self.cfg.timeout_s)
        if item.subtitles:
            with guarded(self.cfg.network):
                meta["subtitles"].append(self._fetch_subtitles(item.subtitles, out_dir, meta))
            meta["subtitles"] = [s for s in meta["subtitles"] if s]
        return DownloadOutput.from_dict(meta)

    def _fetch_with_retries(self, item: Source, out_dir: Path) -> tuple[dict, dict | None, int]:
        """`_fetch` with retries: transient failures wait `backoff_s`, refusals `block_backoff_s`, doubling
        (bounded); each retry goes through the next proxy. -> (meta, ffprobe, last attempt)."""
        cfg = self.cfg
        for attempt in range(cfg.retries + 1):
            try:
                location = check_url(item.url, cfg.network)  # it resolves the host: a failing resolver is retried too
                with guarded(cfg.network):  # every connection checked; one refused: refused_url
                    return (*self._fetch(item, location, out_dir, attempt), attempt)
            except ItemError as e:
                if e.reason not in RETRYABLE | set(BLOCKING) or attempt == cfg.retries:
                    raise
                for p in out_dir.iterdir():  # start the next attempt from an empty folder
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                base = cfg.block_backoff_s if e.reason in BLOCKING else cfg.backoff_s
                self.throttle.sleep(backoff_s(attempt, base, cfg.block_backoff_max_s))
        raise AssertionError("unreachable")

    def should_retry(self, row: StatusRow) -> bool:
        """A prefilter drop is judged again only when its rule changed (or the prefilter is off): the same
        rule on the same page gives the same answer, and asking again costs a page request."""
        rules = self.cfg.prefilter_rules
        return row.reason not in PREFILTER_REASONS or rules is None or not rules.judged_alike(row.reason, row.detail)

    def _outcome(self, work: WorkDir, reason: str | None) -> None:
        """Tell the throttle how a source ended; a pause it starts is logged and recorded for the summary."""
        pause = self.throttle.record(reason)
        if pause is not None:
            log.warning("download: %s", pause.describe())
            work.record_event(self.name, "pause", pause.to_dict())

    def report(self, work: WorkDir, metas: list[dict[str, Any]]) -> list[str]:
        """The summary's lines on side files lost (media kept) and on this run's pauses."""
        lines = []
        lost: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        sources = 0
        for meta in metas:
            errors = list(meta.get("side_errors") or [])
            if meta.get("subtitle_error"):  # the manifest's own subtitle file
                errors.append({"what": "manifest subtitles", "reason": meta["subtitle_error"].get("reason", "?")})
            sources += bool(errors)
            for err in errors:
                lost[err.get("what", "?")][err.get("reason", "?")] += 1
        if sources:
            parts = "; ".join(f"{what}: " + ", ".join(f"{r} {n}" for r, n in sorted(c.items()))
                              for what, c in sorted(lost.items()))
            lines.append(f"side errors: {sources} source(s) kept their media but lost side files ({parts})")
        pauses = work.events(self.name, "pause")
        if pauses:
            per_reason = collections.Counter(p["reason"] for p in pauses)
            lines.append("paused " + ", ".join(f"{n} time(s) for {r}" for r, n in sorted(per_reason.items()))
                         + f" ({sum(float(p['seconds']) for p in pauses):g} s in all): the site refused most "
                         "recent sources; see README \"Downloading from YouTube\"")
        return lines

    def _fetch(self, item: Source, location: str, out_dir: Path,
               attempt: int = 0) -> tuple[dict[str, Any], dict | None]:
        """The item's meta, and ffprobe's answer on the media file (None for an image)."""
        cfg = self.cfg
        kind, kind_from, announced = detect_kind(item, location, cfg.timeout_s)
        if kind == "image" or is_local_path(location) or kind_from == "content_type":  # a file, not a page
            suffix = Path(location.split("?")[0]).suffix.lower() or mimetypes.guess_extension(announced) or ".bin"
            media, ctype = direct.fetch(location, out_dir / f"media{suffix}", cfg.timeout_s, cfg.max_bytes)
            info: dict[str, Any] = {"content_type": ctype} if ctype else {}
            subs: list[dict[str, str]] = []
            side_errors: list[dict[str, str]] = []
        else:
            section = (item.start_s, item.end_s) if cfg.sections and item.end_s is not None else None
            req = YtdlpRequest(location, cfg.max_height, cfg.container, cfg.subtitles, cfg.auto_subtitles,
                               cfg.languages, section, cfg.timeout_s, cfg.max_bytes, cfg.max_duration_s,
                               cfg.strict_height, cfg.format, cfg.format_sort, cfg.access,
                               cfg.access.proxy_for(item.key, attempt), cfg.prefilter_rules)
            res = ytdlp_download(req, out_dir)
            media, info, subs, side_errors = res.media, res.info, res.subtitles, res.side_errors
            if section:
                info["section"] = list(section)
        if kind == "video" and kind_from == "manifest" and item.kind == "video" and says_nothing(location):
            # nothing said what this is (no kind column, no telling extension, no content type, e.g. a
            # local file without extension): let the file's own format decide
            kind, kind_from = kind_of_file(media), "file"
        ffprobe = None
        if kind == "image":
            check_image_type(info.get("content_type", ""), item.url)
            probe = check_image(media, cfg.min_image_side)
        else:
            ffprobe = probe_or_reason(media)
            probe = media_summary(media, ffprobe)
            duration = probe.get("duration_s")
            if cfg.max_duration_s and duration and duration > cfg.max_duration_s and "section" not in info:
                raise ItemError("over_duration_cap", f"{item.url} lasts {duration:.0f} s, over the cap of "
                                f"{cfg.max_duration_s:.0f} s")
        (out_dir / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        meta = {
            "url": item.url, "kind": kind, "kind_from": kind_from, "media": media.name, "subtitles": subs,
            "info": info, "probe": probe, "bytes": media.stat().st_size, "clip_keys": list(item.clip_keys),
            # source time of the file's first sample: 0, or the section start when only a section was fetched
            "offset_s": float(info["section"][0]) if "section" in info else 0.0,
        }
        if side_errors:  # side files yt-dlp could not fetch (the media was kept): {what, reason, detail}
            meta["side_errors"] = side_errors
        return meta, ffprobe

    def _fetch_subtitles(self, url: str, out_dir: Path, meta: dict[str, Any]) -> dict[str, str] | None:
        """A missing side file must not cost the video: record why, and the align stage reports it. A refused
        one does: a manifest that points inside is not trusted with the rest of its row."""
        ext = Path(url.split("?")[0]).suffix.lstrip(".").lower() or "txt"
        name = f"subs.und.manifest.{ext}"
        try:
            direct.fetch(check_url(url, self.cfg.network), out_dir / name, self.cfg.timeout_s, 50_000_000)
        except ItemError as e:
            if e.reason == "refused_url":
                raise
            meta["subtitle_error"] = {"url": url, "reason": e.reason, "detail": e.detail}
            (out_dir / name).unlink(missing_ok=True)
            return None
        return {"file": name, "lang": "und", "origin": "manifest", "ext": ext}
