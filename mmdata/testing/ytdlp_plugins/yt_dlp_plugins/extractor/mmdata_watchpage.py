"""A yt-dlp extractor for tests: a video site shaped like YouTube, served by mmdata/testing/server.py.

YouTube itself cannot be reached here, and yt-dlp's generic extractor reads neither categories, a licence,
automatic captions nor (for an HTML5 page) a duration. This site's watch page `/watch/<id>.json` is the info
dict YouTube's extractor would return (duration, categories, license, subtitles, automatic_captions,
formats), with URLs relative to the page; everything after extraction (format and subtitle choice, every
request for captions and media) is yt-dlp's own code against the local server.

A yt-dlp plugin: on the Python path of a process (PYTHONPATH=mmdata/testing/ytdlp_plugins) yt-dlp loads it
before its own extractors (`mmdata.testing.fakesite.plugin_env`).
"""
import urllib.parse

from yt_dlp.extractor.common import InfoExtractor


class MmdataWatchPageIE(InfoExtractor):
    IE_NAME = "mmdata:watchpage"
    _VALID_URL = r"https?://(?:127\.0\.0\.1|localhost)(?::\d+)?/watch/(?P<id>[\w-]+)\.json"

    def _real_extract(self, url):
        video_id = self._match_id(url)
        page = self._download_json(url, video_id)
        for fmt in page.get("formats") or []:
            fmt["url"] = urllib.parse.urljoin(url, fmt["url"])
        for kind in ("subtitles", "automatic_captions"):
            for tracks in (page.get(kind) or {}).values():
                for track in tracks:
                    track["url"] = urllib.parse.urljoin(url, track["url"])
        return {"id": video_id, "webpage_url": url, **page}
