"""Is a fetched file media at all? A quick ffprobe (or PIL for images) right after download, so a
non-video or truncated file is reported where it came in, with the reason, not three stages later."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.tools import ffprobe_json


def probe_or_reason(path: Path, timeout_s: float = 30.0) -> dict[str, Any]:
    """ffprobe's format and streams as a dict (mmdata/tools.py, shared with the media stages' probe);
    ItemError corrupt_media (a container that does not parse) or not_media when ffprobe cannot read it."""
    info, why = ffprobe_json(path, timeout_s)
    if info is None:
        raise unreadable(path, why)
    return info


def unreadable(path: Path, why: str) -> ItemError:
    """The error for a file ffprobe cannot read (`why`): corrupt_media when its first bytes are a media
    container's, else not_media. The media stages' probe (mmdata/media/probe.py) says the same."""
    kind = sniff(path)
    if kind == "container":
        return ItemError("corrupt_media", f"{path.name} is a media container that does not parse "
                         f"(truncated or damaged): {why}")
    return ItemError("not_media", f"{path.name} is not audio or video ({kind}): {why}")


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
    return media_summary(path, probe_or_reason(path))


def media_summary(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """check_media on ffprobe's answer (`probe_or_reason`) already in hand."""
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


# Labels that say nothing about the bytes (S3's default, misconfigured servers): the bytes decide.
GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream", "application/binary", "application/unknown")


def check_image_type(content_type: str, url: str) -> None:
    """A server that labels an image URL as something else (text/html: an error or login page, an
    expired link) did not send the image, whatever the extension says."""
    if content_type in GENERIC_TYPES or content_type.startswith("image/"):
        return
    raise ItemError("wrong_content_type", f"{url} answered Content-Type {content_type}, not an image "
                    "(an error or login page, or an expired link?)")


def kind_of_file(path: Path) -> str:
    """image, audio or video, from the file's own bytes (for sources nothing else described)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) == 1:  # a still; animations are short videos
                return "image"
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    try:
        info = check_media(path, "video")
    except ItemError:
        return "video"  # let the ordinary check report why it is not media
    return "audio" if info["has_audio"] and not info["has_video"] else "video"
