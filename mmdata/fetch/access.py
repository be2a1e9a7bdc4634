"""How yt-dlp reaches a site that limits robots (YouTube): cookies, proxies, request pacing, a bandwidth cap,
extractor arguments and the JavaScript runtime. README: "Downloading from YouTube".

Everything is resolved once, where the config is built (the driver), into an `Access` that travels inside the
download stage's config: a Ray actor on another machine gets the same cookies (their text, not a path it may
not have), proxies and yt-dlp options as a local worker, and applies them per process. The options are parsed
by yt-dlp's own command-line parser, so `--limit-rate 2M` or `--extractor-args` mean exactly what they mean
to yt-dlp, and a bad value is refused with yt-dlp's words before any work.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlparse

from mmdata.errors import ConfigError

if TYPE_CHECKING:
    from mmdata.pipelines.download import DownloadConfig

PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
DEFAULT_JS_RUNTIMES = ("deno",)  # yt-dlp's own default: deno runs the challenge scripts sandboxed


@dataclass(frozen=True)
class Access:
    options: Mapping[str, Any] = field(default_factory=dict)  # yt-dlp parameters for every download
    cookie_text: str = field(default="", repr=False)  # a Netscape cookies.txt, as text
    proxies: tuple[str, ...] = ()

    def proxy_for(self, key: str, attempt: int = 0) -> str | None:
        """The proxy of a source: chosen by a hash of its key, so the same source always goes through the same
        address whatever worker or order it runs in, sources spread evenly over the list, and each retry
        goes through the next proxy."""
        if not self.proxies:
            return None
        h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
        return self.proxies[(h + attempt) % len(self.proxies)]

    def ytdlp_params(self, proxy: str | None) -> dict[str, Any]:
        """The parameters one YoutubeDL instance gets. Cookies come as a fresh in-memory file each time:
        yt-dlp writes its cookie jar back when it closes, and the user's file must never be rewritten by
        many workers at once."""
        params = dict(self.options)
        if self.cookie_text:
            params["cookiefile"] = io.StringIO(self.cookie_text)
        if proxy:
            params["proxy"] = proxy
        return params


# (config field, yt-dlp option, yt-dlp parameter it sets)
_PARSED = (
    ("sleep_requests_s", "--sleep-requests", "sleep_interval_requests"),
    ("sleep_interval_s", "--sleep-interval", "sleep_interval"),
    ("limit_rate", "--limit-rate", "ratelimit"),
    ("youtube_extractor_args", "--extractor-args", "extractor_args"),
)


def build_access(cfg: "DownloadConfig") -> Access:
    """The access options of a download config (nothing is imported when none is set)."""
    options: dict[str, Any] = {}
    for name, flag, param in _PARSED:
        value = getattr(cfg, name)
        if value:
            arg = f"youtube:{value.removeprefix('youtube:')}" if name == "youtube_extractor_args" else str(value)
            options[param] = _ytdlp_option(name, value, [flag, arg])[param]
    if "ratelimit" in options:  # a worker's cap, shared by the downloads it runs at once
        options["ratelimit"] = max(1, options["ratelimit"] // cfg.concurrency)
    if tuple(cfg.js_runtimes) != DEFAULT_JS_RUNTIMES:
        _check_runtimes(cfg.js_runtimes)
        argv = ["--no-js-runtimes"] + [a for r in cfg.js_runtimes for a in ("--js-runtimes", r)]
        options["js_runtimes"] = _ytdlp_option("js_runtimes", list(cfg.js_runtimes), argv)["js_runtimes"]
    return Access(options, read_cookies(cfg.cookies, cfg.cookies_from_browser), read_proxies(cfg.proxy))


def _ytdlp_option(name: str, value: Any, argv: list[str]) -> dict[str, Any]:
    """yt-dlp's parameters for `argv`, parsed as its command line parses them; a ConfigError naming the
    field and yt-dlp's complaint otherwise."""
    import optparse

    import yt_dlp

    try:
        return yt_dlp.parse_options(argv).ydl_opts
    except (optparse.OptParseError, SystemExit, ValueError) as e:
        said = [ln for ln in str(e).splitlines() if ln.strip()]
        raise ConfigError(f"DownloadConfig.{name} = {value!r} is invalid: yt-dlp says "
                          f"{said[-1].split('error: ')[-1] if said else e}") from e


def _check_runtimes(names: tuple[str, ...]) -> None:
    """yt-dlp only warns about a runtime it does not know, and then runs without it: refuse it here."""
    import yt_dlp  # noqa: F401  (registers the runtimes)
    from yt_dlp.globals import supported_js_runtimes

    known = tuple(supported_js_runtimes.value)
    unknown = [n for n in names if n.split(":", 1)[0].lower() not in known]
    if unknown:
        raise ConfigError(f"DownloadConfig.js_runtimes = {list(names)!r} is invalid: {', '.join(unknown)} is not a "
                          f"runtime yt-dlp supports ({', '.join(known)}; NAME:PATH to give its location)")


class _Quiet:
    """A yt-dlp logger that keeps its last error instead of printing it."""

    def __init__(self):
        self.error_text = ""

    def debug(self, msg):
        pass

    info = warning = debug

    def error(self, msg):
        self.error_text = msg.removeprefix("ERROR: ")


def read_cookies(path: str | None, from_browser: str | None) -> str:
    """The cookies of a cookies.txt file and/or a browser's profile on this machine, as one cookies.txt text
    (read by yt-dlp's own loaders; '' when neither is given)."""
    if not path and not from_browser:
        return ""
    from yt_dlp import YoutubeDL
    from yt_dlp.cookies import CookieLoadError
    from yt_dlp.utils import DownloadError

    quiet = _Quiet()
    params: dict[str, Any] = {"quiet": True, "no_warnings": True, "logger": quiet}
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"DownloadConfig.cookies = {path!r} is invalid: no such file (a Netscape "
                              "cookies.txt, as a browser extension exports it)")
        params["cookiefile"] = io.StringIO(p.read_text(encoding="utf-8", errors="replace"))
    if from_browser:
        params["cookiesfrombrowser"] = _browser_spec(from_browser)
    try:
        jar = YoutubeDL(params).cookiejar  # not closed: closing would write the jar back
    except (CookieLoadError, DownloadError) as e:
        cause = quiet.error_text or e.__cause__ or e.__context__ or e
        what = f"cookies = {path!r}" if path and not from_browser else f"cookies_from_browser = {from_browser!r}"
        raise ConfigError(f"DownloadConfig.{what} is invalid: {cause}") from e
    out = io.StringIO()
    jar.save(out)
    return out.getvalue()


def _browser_spec(spec: str) -> tuple:
    """BROWSER[+KEYRING][:PROFILE][::CONTAINER] as yt-dlp's `cookiesfrombrowser` tuple."""
    return tuple(_ytdlp_option("cookies_from_browser", spec, ["--cookies-from-browser", spec])["cookiesfrombrowser"])


def read_proxies(values: tuple[str, ...]) -> tuple[str, ...]:
    """Proxy URLs: each value a URL, or a file listing one per line (blank lines and # comments skipped)."""
    out: list[str] = []
    for value in values:
        if "://" in value:
            lines = [value]
        elif Path(value).is_file():
            lines = [ln.strip() for ln in Path(value).read_text().splitlines()]
            lines = [ln for ln in lines if ln and not ln.startswith("#")]
        else:
            raise ConfigError(f"DownloadConfig.proxy = {value!r} is invalid: neither a proxy URL "
                              f"({'://, '.join(PROXY_SCHEMES)}://host:port) nor a file listing them")
        for url in lines:
            parsed = urlparse(url)
            if parsed.scheme not in PROXY_SCHEMES or not parsed.hostname:
                raise ConfigError(f"DownloadConfig.proxy: {url!r} (from {value!r}) is not a proxy URL: "
                                  f"scheme://[user:password@]host:port with scheme one of {PROXY_SCHEMES}")
            out.append(url)
    return tuple(out)
