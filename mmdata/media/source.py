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
from mmdata.utils import atomic_write_json
from mmdata.workdir import WorkDir


def offset_of(work: WorkDir, clip: Clip) -> float:
    """Source time at which the downloaded file begins (non-zero only for section downloads)."""
    meta = work.meta("download", clip.video_id) or {}
    return float(meta.get("offset_s") or 0.0)


def source_of(work: WorkDir, clip: Clip) -> tuple[Path, str]:
    """(media file, kind) of the clip's source as the download stage left it."""
    meta = work.meta("download", clip.video_id)
    if meta is None:
        raise ItemError("not_downloaded", f"source {clip.video_id} of clip {clip.key} has no download output; "
                                          "run `mmdata download` (or --retry-failed) first")
    path = work.item_dir("download", clip.video_id) / meta["media"]
    if not path.is_file():
        raise ItemError("missing_file", f"download output {path} of clip {clip.key} is gone")
    kind = meta.get("kind") or clip.kind
    if kind not in KINDS:
        raise ItemError("bad_kind", f"source {clip.video_id} has kind {kind!r}; expected one of {KINDS}")
    return path, kind


PROBE_CACHE_VERSION = 1


def probe_cache_file(work: WorkDir, video_id: str) -> Path:
    """Where a source's probe is kept for every stage and worker: WORK/cache/probe/<video_id>.json."""
    return work.root / "cache" / "probe" / f"{video_id}.json"


class ProbeCache:
    """Probes keyed by file identity (path, size, mtime): clips of one source, and the frames and audio
    stages, share one ffprobe run (a process start costs ~50 ms, as much as extracting a clip's audio).
    Recent probes stay in memory; all are also kept as JSON beside the work folder's outputs."""

    def __init__(self, size: int = 32):
        self._size = size
        self._items: OrderedDict[tuple, Probe] = OrderedDict()

    def get(self, path: Path, timeout_s: float, cache_file: Path | None = None) -> Probe:
        st = Path(path).stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        result = _read_cached(cache_file, key) if cache_file else None
        if result is None:
            result = probe(path, timeout_s)
            if cache_file:
                atomic_write_json(cache_file, {"version": PROBE_CACHE_VERSION, "key": list(key),
                                               "probe": result.to_dict()})
        self._items[key] = result
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return result


def keep_download_probe(work: WorkDir, video_id: str, path: Path, info: dict[str, Any], timeout_s: float) -> None:
    """Keep the probe of a file the download stage has just checked with ffprobe (`info`), where the media
    stages look for it, so that they run no ffprobe of their own. `path` is the file in the item's temporary
    folder; the probe is keyed by the path it will have once the item is committed (a rename keeps its size
    and mtime). Nothing is kept for a file the probe rejects: the media stages then say why themselves."""
    try:
        result = probe_from_info(path, info, timeout_s)
    except ItemError:
        return
    final = work.item_dir("download", video_id) / Path(path).name
    st = Path(path).stat()
    atomic_write_json(probe_cache_file(work, video_id), {
        "version": PROBE_CACHE_VERSION, "key": [str(final), st.st_size, st.st_mtime_ns],
        "probe": dataclasses.replace(result, path=str(final)).to_dict()})


def _read_cached(cache_file: Path, key: tuple) -> Probe | None:
    try:
        d = json.loads(Path(cache_file).read_text())
        if d.get("version") == PROBE_CACHE_VERSION and tuple(d.get("key", ())) == key:
            return Probe.from_dict(d["probe"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or stale cache: probe again
    return None


def absent(reason: str, **extra) -> dict:
    """Meta of a clip whose source lacks this modality (not an error: the sample is written without it)."""
    return {"present": False, "reason": reason, **extra}
