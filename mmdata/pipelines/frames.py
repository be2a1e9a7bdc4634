"""The frames stage: for each clip, JPEG frames of its window and their real presentation times.

Output `WORK/frames/<clip_key>/`: `000000.jpg`... and meta {"present", "files", "times" (clip-relative
seconds, one per file), "width", "height", "source_fps", ...}. `present: false` when the source has no
video (an audio file, an MP3 with only cover art).

Items are clips that know the other clips of their source in the chunk: the first of them to be processed
decodes the frames all of them pick in one pass (mmdata/media/frames_passes.py).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mmdata.environment import check_needs
from mmdata.errors import ItemError
from mmdata.media.config import FramesConfig
from mmdata.media.frames import Video
from mmdata.media.frames import FramesResult, open_video, read_image, sample_video, write_jpegs
from mmdata.media.frames_passes import FramePasses
from mmdata.media.probe import Probe
from mmdata.media.source import ProbeCache, absent, offset_of, probe_cache_file, source_of
from mmdata.media.window import Window, resolve_window, resolve_windows
from mmdata.pipelines.base import PerSourceStage, Resources, ShipsConfigOnly, SourceItem, unpack_source_item
from mmdata.records import Clip
from mmdata.store.records import FramesOutput
from mmdata.workdir import WorkDir


def _r(t: float) -> float:
    return round(t, 6)


class FramesStage(ShipsConfigOnly, PerSourceStage):
    name = "frames"
    output = FramesOutput
    resources = Resources(cpus=1, memory_mb=2048)
    run_only = ("decode_threads", "timeout_s")

    def __init__(self, cfg: FramesConfig | None = None):
        self.cfg = cfg or FramesConfig()
        self._probes = ProbeCache()
        # The last opened video: clips of one source come one after another, and opening costs an index
        # of every packet. (identity, video, scratch dir holding a remuxed copy when one was needed)
        self._open: tuple[tuple, Video, tempfile.TemporaryDirectory] | None = None
        self._passes = FramePasses(self.cfg)  # frames decoded for the open video's clips, not yet taken
        self._closed_decodes = 0

    @property
    def decodes(self) -> int:
        """decord decode passes this stage has run (one per shared pass, one per clip decoded on its own),
        for tests and benchmarks."""
        return self._closed_decodes + (self._open[1].passes if self._open else 0)

    def setup(self) -> None:
        check_needs(self.needs(), "the frames stage")  # again on each worker: a node may lack what the driver has

    def clip_meta(self, item: SourceItem | Clip, out_dir: Path, work: WorkDir) -> dict[str, Any]:
        clip, source_clips = unpack_source_item(item)
        path, kind = source_of(work, clip)
        if kind == "audio":
            return absent("audio_source", files=[], times=[])
        if kind == "image":
            return self._image(path, out_dir)
        probe = self._probes.get(path, self.cfg.timeout_s, probe_cache_file(work, clip.video_id))
        if probe.is_image:
            return self._image(path, out_dir)
        if probe.video is None:
            if probe.audio is None:
                raise ItemError("not_media", f"{path.name} holds neither video nor audio")
            return absent("no_video_stream", files=[], times=[])
        window = resolve_window(clip, probe, self.cfg, offset_of(work, clip))
        video = self._video(path, probe)
        try:
            res = self._sample(video, window, clip, source_clips, probe)
        except ItemError:
            raise  # bad input: the reader is still sound (decode() reopens it after a decord error)
        except Exception:
            self._close()  # a bug mid-decode: do not reuse that reader
            raise
        files = write_jpegs(res.frames, out_dir, self.cfg.jpeg_quality)
        ws = window.start_s
        v = probe.video
        return {
            "present": True, "files": files, "times": [max(0.0, _r(t - ws)) for t in res.times_s],
            "width": video.geom.out_w, "height": video.geom.out_h,
            "source_fps": None if res.source_fps is None else round(res.source_fps, 4),
            "source_width": v.display_size[0], "source_height": v.display_size[1], "rotation": v.rotation,
            "codec": v.codec, "sampling": {"fps": self.cfg.fps} if self.cfg.fps else {"frames": self.cfg.frames},
            "window": window.to_dict(), "video_end_s": _r(res.video_end_s - ws),
            "truncated_at_s": None if res.truncated_at_s is None else _r(res.truncated_at_s - ws),
            "decode_error": res.decode_error, "remuxed": res.remuxed, "duration_source": probe.duration_source,
        }

    def _sample(self, video: Video, window: Window, clip: Clip, source_clips: tuple[Clip, ...],
                probe: Probe) -> FramesResult:
        """The clip's frames: from the pass that decodes its source's clips at once, else on its own."""
        if len(source_clips) > 1 and self._passes.wants(video, clip.key, window):
            self._passes.decode(video, resolve_windows(source_clips, probe, self.cfg, window.offset_s), clip.key)
        if self._passes.holds(video, clip.key, window):
            return self._passes.take(video, clip.key)
        return sample_video(video, window, self.cfg)

    def _image(self, path: Path, out_dir: Path) -> dict[str, Any]:
        frame, g = read_image(path, self.cfg)
        files = write_jpegs([frame], out_dir, self.cfg.jpeg_quality)
        return {"present": True, "files": files, "times": [0.0], "width": g.out_w, "height": g.out_h,
                "source_fps": None, "still_image": True}

    def _video(self, path: Path, probe: Probe) -> Video:
        st = path.stat()
        ident = (str(path), st.st_size, st.st_mtime_ns)
        if self._open is not None and self._open[0] == ident:
            return self._open[1]
        self._close()
        scratch = tempfile.TemporaryDirectory(prefix="mmdata-frames-")
        try:
            video = open_video(path, probe, self.cfg, Path(scratch.name))
        except BaseException:
            scratch.cleanup()
            raise
        self._open = (ident, video, scratch)
        return video

    def _close(self) -> None:
        self._passes.release()
        if self._open is not None:
            self._closed_decodes += self._open[1].passes
            self._open[2].cleanup()
            self._open = None
