"""Work folders for tokenizer tests: the outputs of the frames, audio and align stages written through
WorkDir exactly as those stages lay them out (real FLAC via ffmpeg, real JPEGs via Pillow)."""
from __future__ import annotations

import numpy as np

from mmdata.records import Clip
from mmdata.testing.media import jpeg_bytes, scene  # noqa: F401 (re-exported)
from mmdata.testing.speech import flac_bytes
from mmdata.workdir import WorkDir


def commit(work: WorkDir, stage: str, key: str, meta: dict, files: dict[str, bytes] | None = None) -> None:
    tmp = work.temp_item_dir(stage, key)
    for name, data in (files or {}).items():
        (tmp / name).write_bytes(data)
    work.put_item(stage, key, tmp, meta)


def put_audio(work: WorkDir, key: str, wav: np.ndarray | None, sample_rate: int = 16000) -> None:
    if wav is None:
        return commit(work, "audio", key, {"present": False})
    meta = {"present": True, "file": "audio.flac", "sample_rate": sample_rate, "num_samples": len(wav),
            "duration_s": len(wav) / sample_rate, "silent": False}
    commit(work, "audio", key, meta, {"audio.flac": flac_bytes(wav, sample_rate)})


def put_frames(work: WorkDir, key: str, frames: list[np.ndarray] | None) -> None:
    if frames is None:
        return commit(work, "frames", key, {"present": False, "files": [], "times": []})
    files = {f"{i:06d}.jpg": jpeg_bytes(f) for i, f in enumerate(frames)}
    h, w = frames[0].shape[:2]
    commit(work, "frames", key, {"present": True, "files": sorted(files), "times": [0.5 * i for i in range(len(files))],
                                 "width": w, "height": h}, files)


def put_align(work: WorkDir, key: str, text: str | None, words: list[dict] = ()) -> None:
    meta = {"present": bool(text), "text": text or "", "words": list(words), "timing": "manual", "tags": []}
    commit(work, "align", key, meta)


def clip(key: str, caption: str | None = None, text: str | None = None, kind: str = "video", chunk: int = 0) -> Clip:
    return Clip(key=key, video_id=key.split("_")[0], url=f"http://127.0.0.1/{key}.mp4", start_s=0.0, end_s=2.0,
                caption=caption, text=text, kind=kind, chunk=chunk)
