"""Readers the media-stage tests check outputs with (the media they feed in comes from mmdata/testing/)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from mmdata.environment import require_tool


def read_flac(path: Path) -> tuple[np.ndarray, int]:
    """Decode FLAC back (ffmpeg) to int16 samples and report the stored rate and channel count."""
    out = subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    info = subprocess.run([require_tool("ffprobe"), "-v", "error", "-show_entries", "stream=sample_rate,channels",
                           "-of", "csv=p=0", str(path)], capture_output=True, check=True).stdout.decode().strip()
    rate, channels = (int(x) for x in info.split(","))
    assert channels == 1
    return np.frombuffer(out, dtype="<i2"), rate


def brightness(jpg: Path) -> float:
    from PIL import Image

    with Image.open(jpg) as im:
        return float(np.asarray(im.convert("L"), dtype=np.float64).mean())
