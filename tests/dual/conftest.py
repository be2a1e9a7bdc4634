"""Dual-modality corpora through the real stages: generated images and media served from 127.0.0.1,
tokenizers fitted in the test (small vocabularies), shards read back with plain webdataset."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.testing.media import truncate_file
from mmdata.workdir import WorkDir

RUN = RunnerConfig(progress=False)


def picture(size: tuple[int, int], seed: int) -> np.ndarray:
    """An RGB picture (H x W x 3) with structure k-means can learn: a gradient, stripes and a disc."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 255 * x / max(1, w - 1)
    img[..., 1] = 127 + 127 * np.sin((x + y) / (4 + seed % 5))
    img[..., 2] = 255 * y / max(1, h - 1)
    cx, cy, r = rng.integers(w // 4, 3 * w // 4), rng.integers(h // 4, 3 * h // 4), min(w, h) // 4
    img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    return img.clip(0, 255).astype(np.uint8)


def save_image(arr: np.ndarray, path: Path, fmt: str = "JPEG") -> Path:
    from PIL import Image

    Image.fromarray(arr).save(path, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return path


def banded(size: tuple[int, int], band: int, middle=(0, 200, 0), sides=(220, 0, 0)) -> np.ndarray:
    """A wide picture whose left and right `band` columns are one colour and the middle another:
    a centre crop must keep only the middle."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = middle
    img[:, :band] = sides
    img[:, w - band:] = sides
    return img


def write_images(folder: Path) -> dict[str, str]:
    """Good and bad images to serve. Returns the Content-Types the server must send instead of guessing."""
    folder.mkdir(parents=True, exist_ok=True)
    save_image(picture((320, 240), 1), folder / "boat.jpg")
    save_image(picture((200, 300), 2), folder / "tower.png", "PNG")
    save_image(picture((256, 256), 3), folder / "img")  # served at /img?id=3, no extension
    save_image(banded((672, 224), 224), folder / "wide.jpg")
    save_image(picture((400, 300), 4), folder / "full.jpg")
    truncate_file(folder / "full.jpg", folder / "trunc.jpg", 0.4)
    save_image(np.full((1, 1, 3), 128, np.uint8), folder / "dot.png", "PNG")
    (folder / "notes.jpg").write_text("these are notes, not a picture\n" * 20)
    (folder / "login.jpg").write_text("<html><body>please log in to see this photo</body></html>\n")
    return {"img": "image/jpeg", "login.jpg": "text/html"}


def run_stages(work: WorkDir, *stages) -> dict[str, object]:
    """Run stages in order; returns {stage name: Summary}."""
    return {s.name: run_stage(s, work, RUN) for s in stages}


def read_webdataset(out: Path) -> dict[str, dict]:
    """Every sample of the shards in OUT, read with plain webdataset (no mmdata code), decoded by hand."""
    import webdataset as wds

    urls = [str(p) for p in sorted(out.glob("*.tar"))]
    samples = {}
    for s in wds.WebDataset(urls, shardshuffle=False):
        d = {"json": json.loads(s["json"]), "txt": s["txt"].decode("utf-8")}
        for name in ("vtok.npy", "stok.npy", "ttok.npy"):
            if name in s:
                d[name] = np.load(io.BytesIO(s[name]), allow_pickle=False)
        d["fields"] = sorted(k for k in s if not k.startswith("__"))
        d["raw"] = s
        samples[s["__key__"]] = d
    return samples


def narrated_video(path: Path, text: str, tmp: Path, size: tuple[int, int] = (160, 120), wpm: int = 200) -> float:
    """A test-pattern video whose audio is `text` said by espeak-ng (a narration); returns its duration."""
    import subprocess

    from mmdata.media_io import read_audio
    from mmdata.testing.media import make_video, speak
    from mmdata.environment import require_tool

    wav = speak(text, tmp / f"{path.stem}.wav", speed_wpm=wpm)
    duration = round(len(read_audio(wav, 16000)) / 16000, 2)
    silent = make_video(tmp / f"{path.stem}.silent.mp4", duration, size=size, fps=10, audio=False)
    subprocess.run([require_tool("ffmpeg"), "-y", "-loglevel", "error", "-i", str(silent), "-i", str(wav),
                    "-c:v", "copy", "-c:a", "aac", "-b:a", "64k", "-shortest", str(path)], check=True)
    return duration
