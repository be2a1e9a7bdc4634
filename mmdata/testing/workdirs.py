"""Build work folders by hand for stage tests: a clip table and 'downloaded' sources, through the same
WorkDir API the download stage uses."""
from __future__ import annotations

import shutil
from pathlib import Path

from mmdata.manifests.table import write_clip_table
from mmdata.records import Clip
from mmdata.workdir import WorkDir


def add_downloaded(work: WorkDir, video_id: str, media: Path, kind: str = "video",
                   subtitles: list[tuple[Path, str, str]] = (), info: dict | None = None) -> Path:
    """Place `media` as if the download stage had fetched it. `subtitles`: (path, lang, origin) where
    origin is manual | auto | manifest."""
    tmp = work.temp_item_dir("download", video_id)
    media = Path(media)
    name = "media" + media.suffix
    shutil.copyfile(media, tmp / name)
    subs = []
    for path, lang, origin in subtitles:
        fname = f"subs.{lang}.{origin}{Path(path).suffix}"
        shutil.copyfile(path, tmp / fname)
        subs.append({"file": fname, "lang": lang, "origin": origin, "ext": Path(path).suffix.lstrip(".")})
    meta = {"media": name, "kind": kind, "subtitles": subs, "info": info or {}, "bytes": media.stat().st_size}
    return work.commit_item(tmp, "download", video_id, meta)


def make_work(root: Path, clips: list[Clip]) -> WorkDir:
    work = WorkDir(root)
    write_clip_table(work, clips)
    return work


def work_with(root: Path, media: Path, windows=((None, None),), kind: str = "video", video_id: str = "src"
              ) -> tuple[WorkDir, list[Clip]]:
    """A work folder with one downloaded source and one clip per (start_s, end_s) window."""
    clips = [Clip(key=f"{video_id}_{i}", video_id=video_id, url=str(media), start_s=s, end_s=e, kind=kind)
             for i, (s, e) in enumerate(windows)]
    work = make_work(root, clips)
    add_downloaded(work, video_id, media, kind=kind)
    return work, clips
