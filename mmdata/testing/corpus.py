"""A small, fully processed work folder without running the stages: per-clip outputs of download (meta
only), frames (real JPEGs), audio (real FLAC via ffmpeg), align and quantize (token .npy files), written
through WorkDir exactly as the stages lay them out, plus status tables and a tokenizer folder.

Tokens are drawn per *topic* (clip i has topic i % n_topics) from a topic's own slice of each vocabulary,
and frames/tones/words depend on the topic too, so a trainer can learn to match modalities of one clip.
Used by the shard tests, the trainer tests and the demo.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmdata.records import Clip, StatusRow
from mmdata.testing.media import jpeg_bytes
from mmdata.testing.speech import flac_bytes
from mmdata.utils import atomic_write_json, npy_bytes
from mmdata.workdir import WorkDir

ALL3 = ("vision", "speech", "language")
# the default mix: full clips, and every kind of clip that lacks a modality
DEFAULT_PATTERNS = (ALL3, ALL3, ("vision", "language"), ("speech", "language"), ("vision", "speech"))
STAGES = ("download", "frames", "audio", "align", "quantize")
TOPIC_WORDS = (
    ("red", "apple", "sweet", "fruit", "tree", "garden"),
    ("blue", "ocean", "wave", "boat", "sail", "water"),
    ("green", "forest", "leaf", "moss", "rain", "path"),
    ("gold", "desert", "sand", "sun", "dune", "heat"),
)
VOCAB = {"text": 1000, "speech": 200, "vision": 512}
SAMPLE_RATE = 16000
STOK_RATE_HZ = 50.0


@dataclass
class Corpus:
    work: WorkDir
    clips: list[Clip]
    tokenizers: Path
    topics: dict[str, int]  # clip key -> topic
    modalities: dict[str, tuple[str, ...]]  # clip key -> modalities (failed clips absent)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # clip key -> (stage, reason)

    @property
    def shardable(self) -> list[str]:
        return sorted(self.modalities)


def make_tokenizers(folder: Path, vocab: dict[str, int] | None = None) -> Path:
    """A tokenizer folder as `mmdata tokenizers fit` leaves it: {text,speech,vision}/config.json."""
    vocab = {**VOCAB, **(vocab or {})}
    for sub, size in vocab.items():  # as mmdata.tokenizers.store names them: name = the subfolder
        cfg = {"name": sub, "hash": f"{zlib.crc32(f'{sub}:{size}'.encode()):08x}", "vocab_size": size,
               "kind": "test"}
        if sub == "speech":
            cfg["rate_hz"] = STOK_RATE_HZ
        atomic_write_json(Path(folder) / sub / "config.json", cfg)
    return Path(folder)


def _tokenizer_hashes(folder: Path) -> dict[str, str]:
    import json

    out = {}
    for sub in sorted(VOCAB):
        cfg = json.loads((folder / sub / "config.json").read_text())
        out[cfg["name"]] = cfg["hash"]
    return out


def make_corpus(root: Path, n_clips: int = 6, *, seed: int = 0, duration_s: float = 2.0, fps: float = 2.0,
                grid: int = 14, patterns: tuple[tuple[str, ...], ...] = DEFAULT_PATTERNS, n_topics: int = 4,
                failures: dict[int, tuple[str, str]] | None = None, media: bool = True,
                vocab: dict[str, int] | None = None, clips_per_chunk: int = 0) -> Corpus:
    """Clip i comes from video `vid{i//2:03d}` (two clips per video) and has modalities patterns[i % len].
    `failures` maps a clip index to (stage, reason): that clip stops at that stage with an error row.
    `media=False` skips JPEG/FLAC files (faster; frames/audio metas still say what would be there).
    `clips_per_chunk` > 0 spreads the clips over chunks of that many (default: one chunk)."""
    from mmdata.testing.workdirs import make_work

    root = Path(root)
    tok_dir = make_tokenizers(root / "work" / "tokenizers", vocab)  # where `mmdata tokenizers fit` writes
    vocab = {**VOCAB, **(vocab or {})}
    hashes = _tokenizer_hashes(tok_dir)
    clips = [_clip(i, duration_s, i // clips_per_chunk if clips_per_chunk else 0) for i in range(n_clips)]
    work = make_work(root / "work", clips)
    corpus = Corpus(work, clips, tok_dir, {}, {})
    rng = np.random.default_rng(seed)
    status: dict[str, list[StatusRow]] = {st: [] for st in STAGES}
    for i, clip in enumerate(clips):
        topic = i % n_topics
        corpus.topics[clip.key] = topic
        mods = tuple(patterns[i % len(patterns)])
        fail_stage, fail_reason = (failures or {}).get(i, (None, None))
        ctx = _ClipCtx(work, clip, topic, mods, duration_s, fps, grid, vocab, hashes, rng, media)
        for st in STAGES:
            key = clip.video_id if st == "download" else clip.key
            if st == fail_stage:
                status[st].append(StatusRow(key, "error", fail_reason, f"test failure of {key}"))
                corpus.failed[clip.key] = (st, fail_reason)
                break
            if st != "download" or not work.is_done("download", key):
                getattr(ctx, st)()
            status[st].append(StatusRow(key, "ok"))
        else:
            corpus.modalities[clip.key] = mods
    _write_status(work, status, clips)
    return corpus


def _clip(i: int, duration_s: float, chunk: int) -> Clip:
    video_id = f"vid{i // 2:03d}"
    start = (i % 2) * duration_s
    key = f"{video_id}_{round(start * 1000)}_{round((start + duration_s) * 1000)}"
    return Clip(key=key, video_id=video_id, url=f"http://127.0.0.1/{video_id}.mp4", start_s=start,
                end_s=start + duration_s, caption=f"clip {i} of {video_id}", kind="video", chunk=chunk, row=i + 1)


def _write_status(work: WorkDir, status: dict[str, list[StatusRow]], clips: list[Clip]) -> None:
    from mmdata.pipelines.status import write_status

    chunk_of = {c.key: c.chunk for c in clips} | {c.video_id: c.chunk for c in clips}
    for st, rows in status.items():
        unique = {}  # two clips of one video share its download row; an error row wins
        for r in sorted(rows, key=lambda r: r.status == "error"):
            unique[r.key] = r
        for chunk in sorted(set(chunk_of.values())):
            write_status(work, st, chunk, [r for r in unique.values() if chunk_of[r.key] == chunk])


class _ClipCtx:
    """Writes one clip's output of each stage."""

    def __init__(self, work, clip, topic, mods, duration_s, fps, grid, vocab, hashes, rng, media):
        self.work, self.clip, self.topic, self.mods = work, clip, topic, mods
        self.duration_s, self.fps, self.grid, self.vocab, self.hashes = duration_s, fps, grid, vocab, hashes
        self.rng, self.media = rng, media
        self.times = [round((k + 0.5) / fps, 6) for k in range(max(1, int(duration_s * fps)))]
        self.words = list(TOPIC_WORDS[topic % len(TOPIC_WORDS)])

    def _commit(self, stage: str, key: str, meta: dict, files: dict[str, bytes] | None = None) -> None:
        tmp = self.work.temp_item_dir(stage, key)
        for name, data in (files or {}).items():
            (tmp / name).write_bytes(data)
        self.work.commit_item(tmp, stage, key, meta)

    def download(self) -> None:
        info = {"title": f"Test video {self.clip.video_id}", "uploader": "mmdata tests", "license": "CC BY 4.0",
                "duration": 2 * self.duration_s, "webpage_url": self.clip.url}
        self._commit("download", self.clip.video_id, {"media": "media.mp4", "kind": "video", "subtitles": [],
                                                      "info": info})

    def frames(self) -> None:
        if "vision" not in self.mods:
            return self._commit("frames", self.clip.key, {"present": False, "files": [], "times": []})
        files = {f"{k:06d}.jpg": _jpeg(self.topic, k) if self.media else b"" for k in range(len(self.times))}
        meta = {"present": True, "files": sorted(files), "times": self.times, "width": 64, "height": 48,
                "source_fps": 25.0, "sampling": {"fps": self.fps}, "window": self._window()}
        self._commit("frames", self.clip.key, meta, files if self.media else None)

    def _window(self) -> dict:
        return {"start_s": self.clip.start_s, "end_s": self.clip.end_s, "clamped": False,
                "requested_end_s": self.clip.end_s}

    def audio(self) -> None:
        if "speech" not in self.mods:
            return self._commit("audio", self.clip.key, {"present": False})
        n = round(self.duration_s * SAMPLE_RATE)
        meta = {"present": True, "file": "audio.flac", "sample_rate": SAMPLE_RATE, "num_samples": n,
                "duration_s": self.duration_s, "silent": False, "window": self._window()}
        files = {"audio.flac": _flac(220.0 * (1 + self.topic), n)} if self.media else None
        self._commit("audio", self.clip.key, meta, files)

    def align(self) -> None:
        if "language" not in self.mods:
            return self._commit("align", self.clip.key, {"present": False, "text": "", "words": []})
        step = self.duration_s / len(self.words)
        words = [{"w": w, "start": round(k * step + 0.05, 3), "end": round((k + 1) * step - 0.05, 3),
                  "timing": "forced"} for k, w in enumerate(self.words)]
        self._commit("align", self.clip.key, {"present": True, "text": " ".join(self.words), "words": words,
                                              "timing": "forced", "tags": []})

    def quantize(self) -> None:
        """As the quantize stage writes it: modality and tokenizer names vision, speech, text."""
        files = {}
        if "vision" in self.mods:
            files["vtok.npy"] = self._tokens("vision", (len(self.times), self.grid, self.grid), np.uint16)
        if "speech" in self.mods:
            files["stok.npy"] = self._tokens("speech", (round(self.duration_s * STOK_RATE_HZ),), np.uint16)
        if "language" in self.mods:
            ids = [zlib.crc32(w.encode()) % self.vocab["text"] for w in self.words]
            files["ttok.npy"] = npy_bytes(np.asarray(ids, dtype=np.int32))
        names = [{"language": "text"}.get(m, m) for m in self.mods]
        meta = {"modalities": names, "tokenizers": {n: self.hashes[n] for n in names},
                "shapes": {f: list(np.load(io.BytesIO(b)).shape) for f, b in files.items()},
                "rates": {"stok_hz": STOK_RATE_HZ} if "speech" in self.mods else {}, "skipped": {}}
        self._commit("quantize", self.clip.key, meta, files)

    def _tokens(self, sub: str, shape: tuple[int, ...], dtype) -> bytes:
        """Ids from the topic's quarter of the vocabulary: clips of one topic share a token distribution."""
        size = self.vocab[sub]
        lo = self.topic % 4 * size // 4
        return npy_bytes(self.rng.integers(lo, lo + size // 4, size=shape).astype(dtype))


def _jpeg(topic: int, k: int) -> bytes:
    from PIL import Image, ImageDraw

    colors = ((200, 40, 40), (40, 60, 200), (40, 160, 60), (210, 180, 40))
    img = Image.new("RGB", (64, 48), colors[topic % len(colors)])
    ImageDraw.Draw(img).rectangle([4 + 6 * k, 10, 14 + 6 * k, 38], fill=(255, 255, 255))
    return jpeg_bytes(np.asarray(img), quality=90)


def _flac(freq_hz: float, n: int) -> bytes:
    """A mono 16 kHz tone as FLAC bytes."""
    return flac_bytes(0.3 * np.sin(2 * np.pi * freq_hz * (np.arange(n) / SAMPLE_RATE)), SAMPLE_RATE)
