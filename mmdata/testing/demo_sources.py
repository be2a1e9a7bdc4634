"""The demo's source collection: short videos in which a coloured shape is shown while a voice names it.

Each video has a few segments; in each, a shape of one colour sits on a grey background and espeak-ng
says "<colour> <shape>". The words' true times are known (each word is synthesised alone and placed),
so every video gets a YouTube-style auto-caption VTT with word timing tags. A manifest lists one clip
per segment, with the VTT in its `subtitles` column. All three modalities share the content, which is
what the trainer's retrieval evaluation needs to show learning.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdata.media_io import read_audio
from mmdata.testing.captions import layout, rolling_vtt
from mmdata.testing.media import box_video, drawbox
from mmdata.testing.speech import spoken_words, write_audio

COLOURS = {"red": "0xE02020", "green": "0x20B020", "blue": "0x2040E0", "yellow": "0xE0D020"}
SHAPES = {"square": (0.30, 0.30), "bar": (0.70, 0.18), "column": (0.18, 0.70)}  # fraction of (width, height)
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Segment:
    colour: str
    shape: str
    start_s: float
    end_s: float


def _plan(n_videos: int, segments: int, seg_s: float, seed: int) -> list[list[Segment]]:
    rng = np.random.default_rng(seed)
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    plan = []
    for _ in range(n_videos):
        picks = rng.choice(len(combos), size=segments, replace=False)
        plan.append([Segment(*combos[i], k * seg_s, (k + 1) * seg_s) for k, i in enumerate(picks)])
    return plan


def _segment_audio(seg: Segment, seg_s: float, tmp: Path) -> tuple[np.ndarray, list]:
    words = spoken_words([seg.colour, seg.shape], tmp / "seg.wav", gap_s=0.12, lead_s=0.3, sr=SAMPLE_RATE)
    audio = read_audio(tmp / "seg.wav", SAMPLE_RATE)
    n = round(seg_s * SAMPLE_RATE)
    audio = np.pad(audio[:n], (0, max(0, n - audio.size)))
    return audio, words


def _video(path: Path, segs: list[Segment], audio: Path, size: tuple[int, int], fps: int) -> None:
    w, h = size
    boxes = []
    for s in segs:
        bw, bh = int(w * SHAPES[s.shape][0]), int(h * SHAPES[s.shape][1])
        boxes.append(drawbox((w - bw) // 2, (h - bh) // 2, bw, bh, COLOURS[s.colour], (s.start_s, s.end_s - 1e-3)))
    box_video(path, segs[-1].end_s, boxes, size, fps, background="0x808080", audio=("-i", str(audio)))


def build_sources(folder: Path, n_videos: int = 8, segments: int = 3, seg_s: float = 2.0,
                  size: tuple[int, int] = (256, 192), fps: int = 10, seed: int = 0) -> list[list[Segment]]:
    """Write videoNN.mp4 and videoNN.en.vtt into `folder`; returns the plan (segments per video)."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = _plan(n_videos, segments, seg_s, seed)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for v, segs in enumerate(plan):
            pieces, words = [], []
            for s in segs:
                audio, ws = _segment_audio(s, seg_s, tmp)
                pieces.append(audio)
                words += [(wd.w, round((s.start_s + wd.start) * 1000)) for wd in ws]
            write_audio(np.concatenate(pieces), SAMPLE_RATE, tmp / "audio.wav")
            _video(folder / f"video{v:02d}.mp4", segs, tmp / "audio.wav", size, fps)
            vtt = rolling_vtt(layout(words, sizes=[2], pauses=[True]), round(segs[-1].end_s * 1000), colour=True)
            (folder / f"video{v:02d}.en.vtt").write_text(vtt)
    return plan


def write_manifest(path: Path, plan: list[list[Segment]], base_url: str) -> Path:
    """One clip per segment; `base_url` is where the folder is served (no trailing slash)."""
    rows = ["url,start,end,subtitles"]
    for v, segs in enumerate(plan):
        for s in segs:
            rows.append(f"{base_url}/video{v:02d}.mp4,{s.start_s:g},{s.end_s:g},{base_url}/video{v:02d}.en.vtt")
    path.write_text("\n".join(rows) + "\n")
    return path
