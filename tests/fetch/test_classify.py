"""Reasons a person can act on, from yt-dlp's real messages, through the code path a download takes: a real
YoutubeDL with mmdata's options and logger raises the message, and `ytdlp.failure` turns it into the row.

YouTube cannot be reached here. The site's own words (its playability reasons, as yt-dlp's users report them in
yt-dlp's issues) are raised by a stand-in for YouTube's extractor: a subclass of yt-dlp's real `YoutubeIE` that
composes its error as `YoutubeIE._real_extract` does (yt_dlp/extractor/youtube/_video.py: a "sign in" reason
gets yt-dlp's cookie hint, the rate-limit reason its note, the geo subreason `raise_geo_restricted`), with the
real `_youtube_login_hint`. yt-dlp's own words are checked against its installed source, so an update that
rewords them fails here first. Where a local server can make yt-dlp's generic extractor fail the same way
(429, a live stream), the test goes end to end.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from mmdata.errors import ItemError
from mmdata.fetch.access import Access
from mmdata.fetch.classify import classify, failure_reason, http_reason
from mmdata.fetch.ytdlp import YtdlpRequest, _Logger, _options, download, failure
from mmdata.reasons import describe
from mmdata.testing.server import MediaServer

BOT = ("Sign in to confirm you’re not a bot", "This helps protect our community. Learn more")


def fake_youtube_ie(behaviour):
    """yt-dlp's YouTube extractor with `_real_extract` replaced by `behaviour(ie, url)`."""
    from yt_dlp.extractor.youtube import YoutubeIE

    class FakeYoutubeIE(YoutubeIE):
        @classmethod
        def suitable(cls, url):
            return url.startswith("fake:")

        def _real_extract(self, url):
            return behaviour(self, url)

    return FakeYoutubeIE()


def says(reason: str, subreason: str = "", captcha: bool = False):
    """YouTube's playability reason, raised as YoutubeIE._real_extract raises it (no formats)."""
    from yt_dlp.utils import remove_end

    def behaviour(ie, url):
        text = reason
        if subreason:
            if subreason.startswith("The uploader has not made this video available in your country"):
                ie.raise_geo_restricted(subreason, ["DE", "FR"], metadata_available=True)
            if subreason != reason:
                text += f". {subreason}"
        if "sign in" in text.lower():
            text = remove_end(text, "This helps protect our community. Learn more")
            text = f"{remove_end(text.strip(), '.')}. {ie._youtube_login_hint}"
        elif captcha:
            text += ". YouTube is requiring a captcha challenge before playback"
        elif "This content isn't available, try again later" in text:
            text = (f"{remove_end(text.strip(), '.')}. The current session has been rate-limited by YouTube for up "
                    "to an hour. It is recommended to use `-t sleep` to add a delay between video requests to avoid "
                    "exceeding the rate limit. For more information, refer to  https://github.com/yt-dlp/yt-dlp/wiki/"
                    "Extractors#this-content-isnt-available-try-again-later")
        ie.raise_no_formats(text, expected=True)
    return behaviour


def raises(message: str):
    """yt-dlp's own ExtractorError with `message` (what its extractors raise themselves)."""
    from yt_dlp.utils import ExtractorError

    def behaviour(ie, url):
        raise ExtractorError(message, expected=True)
    return behaviour


def only_storyboards(ie, url):
    """YouTube without a working JavaScript runtime: yt-dlp's real client choice (which warns when it finds
    no runtime), then only image formats (storyboards) left."""
    ie._get_requested_clients(url, {}, False)
    return {"id": "dQw4w9WgXcQ", "title": "t", "formats": [
        {"format_id": "sb0", "url": "http://127.0.0.1:9/sb", "ext": "mhtml", "protocol": "mhtml",
         "vcodec": "none", "acodec": "none", "format_note": "storyboard"}]}


def no_formats(ie, url):
    return {"id": "dQw4w9WgXcQ", "title": "t", "formats": []}


def row_of(behaviour, tmp_path: Path, req: YtdlpRequest | None = None) -> ItemError:
    """The error row a download gets when the extractor behaves so."""
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import DownloadError

    req = req or YtdlpRequest("fake:dQw4w9WgXcQ")
    logger = _Logger()
    with YoutubeDL({**_options(req, tmp_path, logger), "simulate": True}) as ydl:
        ydl.add_info_extractor(fake_youtube_ie(behaviour))
        with pytest.raises(DownloadError) as e:
            ydl.extract_info(req.url, download=True, ie_key="FakeYoutube")
    return failure(logger, e.value, req)


TABLE = [
    ("bot_check", says(*BOT)),
    ("bot_check", raises("All player responses are invalid. Your IP is likely being blocked by Youtube")),
    ("bot_check", says("Video unavailable", captcha=True)),
    ("rate_limited", says("This content isn't available, try again later.")),
    ("rate_limited", raises("Unable to download API page: HTTP Error 429: Too Many Requests "
                            "(caused by <HTTPError 429: Too Many Requests>)")),
    ("private_video", says("Private video", "Sign in if you've been granted access to this video")),
    ("members_only", says("Join this channel to get access to members-only content like this video, and other "
                          "exclusive perks.")),
    ("members_only", says("This video is available to this channel's members on level: MemberShrimp! (or any higher "
                          "level). Join this channel to get access to members-only content and other exclusive perks.")),
    ("members_only", raises("This video is only available for registered users")),
    ("age_restricted", says("Sign in to confirm your age", "This video may be inappropriate for some users.")),
    ("geo_blocked", says("Video unavailable", "The uploader has not made this video available in your country")),
    ("geo_blocked", lambda ie, url: ie.raise_geo_restricted()),  # yt-dlp's default words
    ("removed", says("Video unavailable", "This video has been removed by the uploader")),
    ("removed", says("Video unavailable", "This video is no longer available due to a copyright claim by Example "
                     "Records")),
    ("removed", says("Video unavailable", "This video is no longer available because the YouTube account "
                     "associated with this video has been terminated.")),
    ("removed", says("This video has been removed for violating YouTube's Terms of Service")),
    ("removed", says("Video unavailable", "This video is not available")),
    ("removed", says("This video does not exist.")),
    ("live_or_upcoming", says("This live event will begin in 2 days.")),
    ("live_or_upcoming", says("Premieres in 6 hours")),
    ("live_or_upcoming", says("This live event has ended.")),
    ("no_suitable_format", no_formats),
    ("http_403", raises("Unable to download video data: HTTP Error 403: Forbidden")),
]


@pytest.mark.parametrize("reason, behaviour", TABLE, ids=[f"{r}-{i}" for i, (r, _) in enumerate(TABLE)])
def test_each_message_gets_its_reason(reason, behaviour, tmp_path):
    err = row_of(behaviour, tmp_path)
    assert err.reason == reason, err.detail
    assert describe(err.reason) is not None and describe(err.reason).action
    assert not err.detail.startswith(("ERROR", "[youtube]")), err.detail  # yt-dlp's words, without its prefixes


def test_a_format_failure_after_yt_dlps_javascript_warning_is_the_runtime(tmp_path):
    """No runtime enabled: yt-dlp's own client choice warns, only storyboards remain, the format choice fails.
    With the runtime the set-up installs (deno, yt-dlp's default), there is no warning: the same failure is the
    video's own (no_suitable_format)."""
    without = YtdlpRequest("fake:dQw4w9WgXcQ", access=Access({"js_runtimes": {}}))
    err = row_of(only_storyboards, tmp_path, without)
    assert err.reason == "js_runtime_missing"
    assert "Requested format is not available" in err.detail
    assert "after yt-dlp warned: No supported JavaScript runtime could be found" in err.detail
    assert row_of(only_storyboards, tmp_path).reason == "no_suitable_format"


def test_no_format_under_a_strict_cap_keeps_its_own_name():
    msg = "dQw4w9WgXcQ: Requested format is not available. Use --list-formats for a list of available formats"
    assert failure_reason(msg, [], strict_height=True) == "no_format_under_cap"
    assert failure_reason(msg, [], strict_height=False) == "no_suitable_format"


def test_yt_dlps_own_words_are_still_in_its_source():
    """The words the patterns rely on that yt-dlp itself writes (the rest is YouTube's, quoted above)."""
    import yt_dlp

    root = Path(inspect.getfile(yt_dlp)).parent
    source = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*.py"))
    for words in ("has been rate-limited by YouTube for up to an hour",
                  "All player responses are invalid. Your IP is likely being blocked by Youtube",
                  "YouTube is requiring a captcha challenge before playback",
                  "This video is not available from your location due to geo restriction",
                  "The uploader has not made this video available in your country",
                  "This video is only available for registered users",
                  "Login details are needed to download this content",
                  "'confirm your age', 'age-restricted', 'inappropriate'",
                  "Requested format is not available",
                  "No video formats found!",
                  "No supported JavaScript runtime could be found",
                  "challenge solving failed: Some formats may be missing",
                  "Ensure you have a supported JavaScript runtime",
                  "HTTP Error {response.status}: {response.reason}",
                  "This helps protect our community. Learn more",
                  "Unable to download video subtitles"):
        assert words in source, words


def test_http_statuses_without_yt_dlp_use_the_same_names():
    assert http_reason(429) == classify("HTTP Error 429: Too Many Requests") == "rate_limited"
    assert http_reason(404) == classify("HTTP Error 404: Not Found") == "http_404"


def test_end_to_end_a_429_page_and_a_live_stream(tmp_path):
    """yt-dlp's generic extractor against a local server: a page answering 429, and an HLS playlist without an
    end (yt-dlp marks it live)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "live.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
                                      "#EXTINF:2.0,\nseg7.ts\n#EXTINF:2.0,\nseg8.ts\n")
    with MediaServer(served) as srv:
        for path, reason, words in (("status/429", "rate_limited", "HTTP Error 429: Too Many Requests"),
                                    ("live.m3u8", "live_or_upcoming", "is live now")):
            out = tmp_path / path.replace("/", "_")
            out.mkdir()
            with pytest.raises(ItemError) as e:
                download(YtdlpRequest(srv.url(path)), out)
            assert (e.value.reason, words in e.value.detail) == (reason, True), e.value.detail
        assert not any(p.endswith(".ts") for p in srv.counts)  # nothing of the live stream was fetched
