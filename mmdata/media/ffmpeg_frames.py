"""The deterministic path for damaged video: ffprobe/ffmpeg on one thread, frames counted in
presentation order (the order decord indexes them in).

decord decodes on a worker thread that runs ahead of the caller and reports a broken packet whenever it
reaches it, so where a corrupt file "fails" in decord varies from run to run. When decord fails, the
decodable part is measured with ffprobe and the frames are extracted with ffmpeg instead, both of which
give the same answer every run: same input, same output bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmdata.errors import ItemError
from mmdata.media.decord_video import coded_size, rotate
from mmdata.media.sampling import Geometry, crop
from mmdata.tools import run_tool, stderr_tail
from mmdata.environment import require_tool


def decodable_count(path: Path, stream: str, timeout_s: float, media_s: float) -> tuple[int, str]:
    """(how many frames, from the first in presentation order, decode before the bitstream breaks, why).

    ffprobe decodes every packet on one thread and lists packets (decode order) and frames. The first
    packet that yields no frame is the break; the count is the longest presentation-order prefix of frames
    that all come from packets before it (a B-frame after the break may reference the broken picture).
    Pairing packets with frames by timestamp gives the same answer every run, unlike stopping ffmpeg at
    the first error (-xerror), whose last frames depend on when it exits. `media_s`: the stream's length."""
    args = [require_tool("ffprobe"), "-v", "error", "-threads", "1", "-select_streams", stream, "-show_packets",
            "-show_frames", "-show_entries", "packet=pts,dts:frame=best_effort_timestamp", "-of", "json", str(path)]
    proc = run_tool(args, timeout_s, "decode", Path(path), media_s=media_s)
    try:
        items = json.loads(proc.stdout or b"{}").get("packets_and_frames", [])
    except json.JSONDecodeError:
        items = []
    packets = [it.get("pts", it.get("dts")) for it in items if it.get("type") == "packet"]
    frames = sorted(it["best_effort_timestamp"] for it in items
                    if it.get("type") == "frame" and it.get("best_effort_timestamp") is not None)
    produced = set(frames)
    broken = next((k for k, pts in enumerate(packets) if pts not in produced), len(packets))
    order = {pts: k for k, pts in enumerate(packets)}
    count = 0
    for pts in frames:
        if order.get(pts, len(packets)) >= broken:
            break
        count += 1
    why = stderr_tail(proc, path=Path(path)) if broken < len(packets) else ""
    return count, why


# decord turns pictures with these filters before scaling; doing the same keeps the pixels identical
TRANSPOSE = {90: "transpose=1,", 180: "transpose=1,transpose=1,", 270: "transpose=2,"}


def extract(path: Path, stream: str, indices: list[int], geom: Geometry, rotation: int, manual: bool,
            timeout_s: float, name: str, media_s: float, seek: tuple[float, list[int]] | None = None
            ) -> list[np.ndarray]:
    """Frames number `indices` (sorted, unique; presentation order from 0, as decord counts them),
    display-oriented and cropped, as DecordVideo.decode gives them. `rotation` is turned the way decord
    would: in the filter graph before scaling, or (`manual`: the file lost its display matrix) after.
    `media_s`: where the last wanted frame ends (the select filter decodes every frame up to it).
    `seek` = (seconds on the container timeline, the frames' pts): ffmpeg starts at the keyframe before that
    time, keeps the file's timestamps (-copyts) and picks the frames by their exact pts, since frame numbers
    would count from the seek point."""
    w, h = coded_size(geom, rotation) if manual else (geom.scale_w, geom.scale_h)
    turn = "" if manual else TRANSPOSE.get(rotation, "")
    if seek is None:
        seek_args, select = [], "+".join(f"eq(n\\,{i})" for i in indices)
    else:
        seek_args, select = ["-ss", f"{seek[0]:.6f}", "-copyts"], "+".join(f"eq(pts\\,{p})" for p in seek[1])
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-threads", "1", "-noautorotate", *seek_args,
            "-i", str(path),
            "-map", f"0:{stream}", "-vf", f"select='{select}',{turn}scale={w}:{h}:flags=bilinear", "-vsync", "0",
            "-frames:v", str(len(indices)), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    proc = run_tool(args, timeout_s, "decode", Path(path), media_s=media_s - (seek[0] if seek else 0.0))
    size = w * h * 3
    got = len(proc.stdout) // size
    if got < len(indices):
        raise ItemError("corrupt_file", f"{name}: {got} of {len(indices)} wanted frames decode: "
                                        f"{stderr_tail(proc, path=Path(path)) or 'no message'}")
    data = np.frombuffer(proc.stdout[: got * size], dtype=np.uint8).reshape(got, h, w, 3)
    return [crop(rotate(data[k], rotation if manual else 0), geom) for k in range(len(indices))]
