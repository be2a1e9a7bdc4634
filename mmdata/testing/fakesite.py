"""A video site shaped like YouTube, served by mmdata/testing/server.py: watch pages that carry what YouTube's
do (duration, categories, licence, manual subtitles and automatic captions, formats), for the tests of what
mmdata does with them (`download --prefilter`).

YouTube cannot be reached here. Its stand-in is a yt-dlp extractor (ytdlp_plugins/, a yt-dlp plugin) that
reads `/watch/<id>.json`, the info dict YouTube's extractor would give; everything after (format and caption
choice, every request for captions and media) is yt-dlp's own code against the local server. A process loads
the plugin when `plugin_env()`'s PYTHONPATH names its folder (yt-dlp loads plugins once per process, so the
tests run the CLI in a child process).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

PLUGIN_DIR = Path(__file__).parent / "ytdlp_plugins"


def plugin_env() -> dict[str, str]:
    """This process's environment with the fake site's extractor on the Python path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def watch_page(root: Path, video_id: str, media: Path, duration: float | None = None,
               categories: list[str] | None = None, license: str | None = None,
               subtitles: dict[str, tuple[str, str]] | None = None,
               automatic_captions: dict[str, tuple[str, str]] | None = None) -> str:
    """Write the watch page of `video_id` under `root` (its media as `media/<id><ext>`, its caption tracks as
    `captions/<id>.<lang>.<origin>.<ext>`, each `{lang: (ext, text)}`); returns the page's path on the server."""
    for sub in ("watch", "media", "captions"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(media, root / "media" / f"{video_id}{media.suffix}")
    page: dict = {"title": video_id, "formats": [{
        "format_id": "18", "url": f"../media/{video_id}{media.suffix}", "ext": media.suffix.lstrip("."),
        "vcodec": "avc1.42001e", "acodec": "mp4a.40.2", "height": 240, "width": 320}]}
    if duration is not None:
        page["duration"] = duration
    if categories is not None:
        page["categories"] = categories
    if license is not None:
        page["license"] = license
    for field, origin, tracks in (("subtitles", "manual", subtitles), ("automatic_captions", "auto", automatic_captions)):
        page[field] = {}
        for lang, (ext, text) in (tracks or {}).items():
            name = f"{video_id}.{lang}.{origin}.{ext}"
            (root / "captions" / name).write_text(text)
            page[field][lang] = [{"ext": ext, "url": f"../captions/{name}"}]
    (root / "watch" / f"{video_id}.json").write_text(json.dumps(page))
    return f"watch/{video_id}.json"
