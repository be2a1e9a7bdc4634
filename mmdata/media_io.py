"""Small media readers shared by stages: decode audio and images into numpy arrays.

Audio goes through ffmpeg (argument lists, never a shell string) because torchaudio 2.11 has no I/O
backends and soundfile is not a dependency. Bad files become `ItemError`s naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmdata.errors import ItemError
from mmdata.tools import run_tool, stderr_tail
from mmdata.environment import require_tool


def read_audio(path: str | Path, sample_rate: int = 16000, timeout_s: float = 600.0) -> np.ndarray:
    """Decode any audio file ffmpeg reads to mono float32 in [-1, 1] at `sample_rate` Hz, shape [N].

    ffmpeg downmixes and resamples (its default swr resampler is deterministic), so the same file gives
    the same samples on every run.
    """
    path = Path(path)
    if not path.is_file():
        raise ItemError("missing_file", f"audio file {path} does not exist")
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1",
            "-ar", str(int(sample_rate)), "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    proc = run_tool(args, timeout_s, "decode", path)  # a hang: ItemError("decode_timeout")
    if proc.returncode != 0:
        raise ItemError("corrupt_file", f"ffmpeg cannot decode {path}: {stderr_tail(proc) or 'no message'}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32, copy=True)


def read_image_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3]; a missing or undecodable file is an ItemError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ItemError("missing_file", f"image file {path} does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ItemError("corrupt_file", f"cannot decode image {path}: {e}") from e
