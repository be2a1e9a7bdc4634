"""A clip's signatures, from what earlier stages stored:

    exact  sha256 of (the source's demuxed packets, the clip's window): the packets are hashed with ffmpeg's
           `streamhash` muxer over a stream copy, so a re-mux into another container that keeps the
           bitstream format (mp4, mov, mkv) hashes the same. MPEG-TS stores H.264 as Annex B and AAC with ADTS
           headers, other bytes: a TS copy is found by the near signature, not this one.
    near   a 64-bit DCT perceptual hash (pHash) of each of the frames stage's sampled JPEGs, as 16 hex digits;
           None for a blank frame (black or flat: it says nothing about which video it is). A re-encode at
           another bitrate moves a few bits, a crop of a few pixels a few more; another video about half.

pHash: the frame as a 32x32 grey image, its 2-D DCT, the 8x8 lowest frequencies, one bit per coefficient
above their median (the DC term left out of the median). numpy only.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmdata.environment import require_tool
from mmdata.errors import ItemError
from mmdata.filters.measures import grey_frame, is_blank
from mmdata.tools import run_tool, stderr_tail

HASH_SIDE = 32  # the grey image the DCT runs on
LOW = 8  # LOW x LOW lowest frequencies: 64 bits


@lru_cache(maxsize=1)
def _dct_matrix(n: int = HASH_SIDE) -> np.ndarray:
    """The orthonormal DCT-II matrix: D @ x is the DCT of the column x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash(grey: np.ndarray) -> int:
    """The 64-bit pHash of a grey image [HASH_SIDE, HASH_SIDE] (any scale)."""
    d = _dct_matrix(grey.shape[0])
    low = (d @ grey.astype(np.float64) @ d.T)[:LOW, :LOW].ravel()
    bits = low > np.median(low[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def frame_hashes(jpegs: list[tuple[str, bytes | None]], black_range: float) -> list[str | None]:
    """Each frame's pHash as 16 hex digits, None for a blank frame."""
    out: list[str | None] = []
    for where, data in jpegs:
        grey = grey_frame(data, HASH_SIDE, where)
        out.append(None if is_blank(grey, black_range) else f"{phash(grey):016x}")
    return out


def packet_hash(media: Path, timeout_s: float, media_s: float = 0.0) -> str:
    """sha256 over the source's video and audio packets (their bytes, not their timestamps or container)."""
    proc = run_tool([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(media), "-map", "0:v?",
                     "-map", "0:a?", "-c", "copy", "-f", "streamhash", "-hash", "sha256", "-"],
                    timeout_s, "remux", media, media_s=media_s)
    lines = sorted(ln.split(",", 1)[1] for ln in proc.stdout.decode().splitlines() if ln.count(",") >= 2)
    if proc.returncode != 0 or not lines:
        raise ItemError("corrupt_media", f"ffmpeg cannot read the packets of {media.name}: "
                        f"{stderr_tail(proc, path=media) or 'no video or audio stream'}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()  # lines: "<type>,SHA256=<hex>", by type


def exact_signature(packets: str, start_s: float | None, end_s: float | None) -> str:
    """The same packets cut at the same window (the manifest's, to the millisecond; None: the source's end):
    the same clip."""
    window = f"{round(start_s or 0.0, 3)}-{'' if end_s is None else round(end_s, 3)}"
    return hashlib.sha256(f"{packets}|{window}".encode()).hexdigest()
