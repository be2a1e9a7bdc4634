"""Is a fetched file media at all? A quick ffprobe (or PIL for images) right after download, so a
non-video or truncated file is reported where it came in, with the reason, not three stages later."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.utils import require_tool


def ffprobe_json(path: Path, timeout_s: float = 30.0) -> dict[str, Any]:
    """ffprobe's format and streams as a dict; ItemError('corrupt_media') when ffprobe cannot read it."""
    args = [require_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
            str(path)]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise ItemError("probe_timeout", f"ffprobe did not finish within {timeout_s:g} s on {path.name}") from e
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        why = (err[-1] if err else "unknown error").replace(str(path) + ": ", "")
        kind = sniff(path)
        if kind == "container":
            raise ItemError("corrupt_media", f"{path.name} is a media container that does not parse "
                            f"(truncated or damaged): {why}")
        raise ItemError("not_media", f"{path.name} is not audio or video ({kind}): {why}")
    return json.loads(proc.stdout or b"{}")


# Leading bytes of the containers people serve; a file that starts like one but fails to parse is damaged.
_MAGIC = (b"\x1aE\xdf\xa3", b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"FLV",
          b"\x30\x26\xb2\x75")


def sniff(path: Path) -> str:
    """'container', 'text/HTML' or 'unknown format', from the first bytes of the file."""
    head = path.read_bytes()[:64] if path.stat().st_size else b""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip") or head.startswith(_MAGIC) \
            or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf1", b"\xff\xf9"):
        return "container"
    if not head:
        return "empty file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown format"
    return "text/HTML" if all(c.isprintable() or c.isspace() for c in text) else "unknown format"


def check_media(path: Path, kind: str) -> dict[str, Any]:
    """Summary of a video/audio file; raises when it holds no audio or video stream."""
    data = ffprobe_json(path)
    streams = data.get("streams", [])
    has_video = any(s.get("codec_type") == "video" and s.get("disposition", {}).get("attached_pic", 0) == 0
                    for s in streams)
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not (has_video or has_audio):
        raise ItemError("not_media", f"{path.name} has no audio or video stream "
                        f"(format {data.get('format', {}).get('format_name', 'unknown')})")
    dur = data.get("format", {}).get("duration")
    return {"has_video": has_video, "has_audio": has_audio, "duration_s": float(dur) if dur else None,
            "format": data.get("format", {}).get("format_name")}


def check_image(path: Path, min_side: int) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            size, fmt = im.size, im.format
            im.load()  # a truncated file fails here, not at verify()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ItemError("not_an_image", f"{path.name} does not decode as an image: {e}") from e
    if min(size) < min_side:
        raise ItemError("image_too_small", f"{path.name} is {size[0]}x{size[1]}, under the minimum side {min_side}")
    return {"width": size[0], "height": size[1], "format": fmt}
