"""Running ffmpeg and ffprobe: argument lists (never a shell string), a timeout, a readable stderr, and the
one ffprobe call that lists a file's format and streams (used by the download stage's quick check,
mmdata/media_check.py, and by the media stages' probe, mmdata/media/probe.py). Callers turn a failure
into their own ItemError reason."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.environment import require_tool


# Decoding, demuxing and encoding run faster than real time on one thread at the sizes mmdata fetches, so
# a run allowed one second per second of media it works through, on top of the floor, is stuck when it runs
# out; a flat limit instead fails whole-source clips of long videos.
SECONDS_PER_MEDIA_SECOND = 1.0


def tool_timeout(timeout_s: float, media_s: float = 0.0) -> float:
    """The time one ffmpeg/ffprobe run may take: the stage's `timeout_s` (the floor) plus a second per second
    of media the run decodes, demuxes or encodes."""
    return timeout_s + max(0.0, media_s) * SECONDS_PER_MEDIA_SECOND


def run_tool(args: list[str], timeout_s: float, what: str, path: Path, input: bytes | None = None,
             media_s: float = 0.0) -> subprocess.CompletedProcess:
    """Run ffmpeg/ffprobe with an argument list and a timeout (`tool_timeout`: `timeout_s`, plus time for the
    `media_s` seconds of media the run works through); a hang becomes ItemError(f"{what}_timeout"), not a
    stuck worker. A non-zero exit is returned, for the caller to judge."""
    limit = tool_timeout(timeout_s, media_s)
    try:
        return subprocess.run(args, capture_output=True, timeout=limit, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        over = f"{limit:g} s ({timeout_s:g} s + {media_s:g} s of media)" if media_s > 0 else f"{timeout_s:g} s"
        raise ItemError(f"{what}_timeout", f"{Path(args[0]).name} ran over {over} on {path}") from e


def stderr_tail(proc: subprocess.CompletedProcess, n: int = 300, path: Path | None = None) -> str:
    """The last lines of stderr, at most `n` characters."""
    # without pointers ("[h264 @ 0x55d0...]") and our path, the same failure reads the same in every run
    text = re.sub(r" @ 0x[0-9a-fA-F]+", "", proc.stderr.decode(errors="replace"))
    if path is not None:
        text = text.replace(f"{path}: ", "")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-n:]


def ffprobe_json(path: Path, timeout_s: float) -> tuple[dict[str, Any] | None, str]:
    """(ffprobe's format and streams as a dict, "") or, when ffprobe cannot read the file, (None, why).
    A hang is ItemError("probe_timeout")."""
    path = Path(path)
    proc = run_tool([require_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format",
                     "-show_streams", str(path)], timeout_s, "probe", path)
    try:
        info = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or not info.get("format"):
        return None, stderr_tail(proc, path=path) or "unknown format"
    return info, ""
