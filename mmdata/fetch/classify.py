"""yt-dlp's failure messages (and HTTP statuses) -> the reason an error row records: one per case a person can
act on (mmdata/reasons.py says what to do for each).

The patterns match yt-dlp's own words (`HTTP Error 429`, `Requested format is not available`, its geo
restriction note, its rate-limit note) and the site's words yt-dlp passes on (YouTube's playability reasons:
`Sign in to confirm you're not a bot`, `Private video`, `Join this channel ...`). tests/fetch/test_classify.py
holds the exact messages, and checks that yt-dlp's own ones are still in its source.
"""
from __future__ import annotations

import re

# YouTube refusing this machine or this account, not this video: the stage backs off, and pauses the worker
# when they pile up (mmdata/fetch/throttle.py)
BLOCKING = ("bot_check", "rate_limited")

# First match wins, so where one message holds another's words, the narrower case comes first: YouTube's
# age, privacy and bot messages all start with "Sign in", and yt-dlp appends a cookie hint to each; the
# geo note says "not available"; a rate-limited session "isn't available".
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("rate_limited", r"HTTP Error 429|rate-limited by YouTube|Too Many Requests"),
    ("bot_check", r"not a bot|Your IP is likely being blocked|requiring a captcha"),
    ("geo_blocked", r"not available from your location|not made this video available in your country"),
    ("members_only", r"members-only content|this channel's members|only available for registered users"
                     r"|Login details are needed"),
    ("age_restricted", r"confirm your age|age-restricted|inappropriate for some users"),
    ("private_video", r"Private video|This video is private"),
    ("live_or_upcoming", r"live event will begin|Premieres in|live event has ended|is not currently live"),
    ("http_<status>", r"HTTP Error (\d{3})"),
    ("timeout", r"timed? ?out|TimeoutError"),
    ("unsupported_url", r"Unsupported URL"),
    # glibc's words for EAI_AGAIN and EAI_NONAME (yt-dlp passes the socket error's text on)
    ("dns_temporary", r"Temporary failure in name resolution"),
    ("dns_error", r"Name or service not known|nodename nor servname"),
    ("connection_error", r"Connection refused|No route to host|Connection reset"),
    ("no_suitable_format", r"Requested format is not available|No video formats found"),
    ("removed", r"Video unavailable|has been removed|no longer available|account .* has been terminated"
                r"|This video does not exist|not available"),
)
_COMPILED = tuple((reason, re.compile(pattern, re.I)) for reason, pattern in _PATTERNS)

# yt-dlp's warnings when it cannot run YouTube's JavaScript challenges: "No supported JavaScript runtime could
# be found ...", "n challenge solving failed: Some formats may be missing. Ensure you have a supported
# JavaScript runtime ...". A failure after one of them is the runtime's doing, not the video's.
JS_RUNTIME_WARNING = re.compile(r"JavaScript runtime", re.I)
JS_SYMPTOMS = ("no_suitable_format", "http_403", "download_failed")


def classify(message: str) -> str:
    """The reason of one yt-dlp message (`download_failed` when no pattern knows it)."""
    for reason, pattern in _COMPILED:
        m = pattern.search(message)
        if m:
            return f"http_{m.group(1)}" if reason == "http_<status>" else reason
    return "download_failed"


def http_reason(status: int) -> str:
    """The reason of an HTTP error status, for fetches without yt-dlp: 429 is `rate_limited` there too."""
    return "rate_limited" if status == 429 else f"http_{status}"


def js_runtime_warning(warnings: list[str]) -> str | None:
    """yt-dlp's warning that it could not run YouTube's JavaScript, if it gave one."""
    return next((w for w in warnings if JS_RUNTIME_WARNING.search(w)), None)


def failure_reason(message: str, warnings: list[str], strict_height: bool = False) -> str:
    """The reason of a failed yt-dlp download, from its error and the warnings before it: a format or
    permission failure after a JavaScript runtime warning is `js_runtime_missing`; no format at all under a
    strict height cap says so."""
    reason = classify(message)
    if reason in JS_SYMPTOMS and js_runtime_warning(warnings):
        return "js_runtime_missing"
    if reason == "no_suitable_format" and strict_height:
        return "no_format_under_cap"
    return reason
