"""Finding a clip's downloaded source and probing it once, however many clips and stages read it (the
download stage's own check of the file is kept as that probe)."""
from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.media.probe import Probe, probe, probe_from_info
from mmdata.records import KINDS, Clip
from mmdata.store.records import DownloadOutput
from mmdata.utils import atomic_write_json
from mmdata.workdir import WorkDir


def offset_of(work: WorkDir, clip: Clip) -> float:
    """Source time at which the downloaded file begins (non-zero only for section downloads)."""
    return offset_of_source(work, clip.video_id)


def offset_of_source(work: WorkDir, video_id: str) -> float:
    out: DownloadOutput | None = work.output("download", video_id)
    return float(out.offset_s or 0.0) if out is not None else 0.0


def source_of(work: WorkDir, clip: Clip) -> tuple[Path, str]:
    """(media file, kind) of the clip's source as the download stage left it."""
    return downloaded_file(work, clip.video_id, clip.kind, f"of clip {clip.key} ")


def downloaded_file(work: WorkDir, video_id: str, kind: str = "video", of: str = "") -> tuple[Path, str]:
    """(media file, kind) of source `video_id` as the download stage left it; `kind`: the manifest's guess,
    used when the download recorded none; `of`: who asks, for the message ("of clip K ")."""
    out: DownloadOutput | None = work.output("download", video_id)
    if out is None:
        raise ItemError("missing_download", f"source {video_id} {of}has no download output; "
                                          "run `mmdata download` (or --retry-failed) first")
    path = work.item_dir("download", video_id) / out.media
    if not path.is_file():
        raise ItemError("missing_output_file", f"download output {path} {of}is gone")
    kind = out.kind or kind
    if kind not in KINDS:
        raise ItemError("bad_kind", f"source {video_id} has kind {kind!r}; expected one of {KINDS}")
    return path, kind


PROBE_CACHE_VERSION = 2
PROBE_FILE = "probe.json"


def probe_cache_file(work: WorkDir, video_id: str) -> Path:
    """Where a source's probe is kept for every stage and worker: `probe.json` among the download item's
    files (written by the download stage's check)."""
    return work.item_dir("download", video_id) / PROBE_FILE


class ProbeCache:
    """Probes keyed by file identity (path, size, mtime): clips of one source, and the frames and audio
    stages, share one ffprobe run (a process start costs ~50 ms, as much as extracting a clip's audio).
    Recent probes stay in memory; the download stage's probe, kept with the download, is used when it
    matches the file."""

    def __init__(self, size: int = 32):
        self._size = size
        self._items: OrderedDict[tuple, Probe] = OrderedDict()

    def get(self, path: Path, timeout_s: float, cache_file: Path | None = None) -> Probe:
        st = Path(path).stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        result = _read_cached(cache_file, Path(path), st.st_size) if cache_file else None
        if result is None:
            result = probe(path, timeout_s)
        self._items[key] = result
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return result


def keep_download_probe(path: Path, info: dict[str, Any], timeout_s: float) -> None:
    """Keep the probe of a file the download stage has just checked with ffprobe (`info`) beside it in the
    item's folder, where the media stages look for it, so that they run no ffprobe of their own. Nothing is
    kept for a file the probe rejects: the media stages then say why themselves."""
    path = Path(path)
    try:
        result = probe_from_info(path, info, timeout_s)
    except ItemError:
        return
    atomic_write_json(path.parent / PROBE_FILE, {
        "version": PROBE_CACHE_VERSION, "media": path.name, "size": path.stat().st_size,
        "probe": dataclasses.replace(result, path=path.name).to_dict()})


def _read_cached(cache_file: Path, path: Path, size: int) -> Probe | None:
    try:
        d = json.loads(Path(cache_file).read_text())
        if d.get("version") == PROBE_CACHE_VERSION and d.get("media") == path.name and d.get("size") == size:
            return dataclasses.replace(Probe.from_dict(d["probe"]), path=str(path))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or stale: probe again
    return None


def absent(reason: str, **extra) -> dict:
    """Meta of a clip whose source lacks this modality (not an error: the sample is written without it)."""
    return {"present": False, "reason": reason, **extra}
