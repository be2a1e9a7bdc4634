"""ffmpeg/ffprobe time allowances scale with the media a run works through (tools.tool_timeout): the stage's
`timeout_s` is the floor, a whole-source clip of a long video gets its length on top. The runs are real; a
spy on subprocess.run records the limit each one was given (the limits, not how long the runs took)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mmdata.errors import ItemError
from mmdata.environment import require_tool
from mmdata.media.config import AudioConfig, FramesConfig
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.frames import FramesStage
from mmdata.testing.media import make_video, truncate_file
from mmdata.testing.workdirs import work_with
from mmdata.tools import run_tool, tool_timeout
from tests.media.test_frames_stage import run

LONG_S = 40.0


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """40 s, small and sparse (64x48 at 5 fps) so it is quick to make and to decode."""
    return make_video(tmp_path_factory.mktemp("long") / "long.mp4", duration_s=LONG_S, size=(64, 48), fps=5,
                      extra_args=("-movflags", "+faststart"))


@pytest.fixture
def limits(monkeypatch) -> list[tuple[list[str], float]]:
    """(args, timeout) of every subprocess run from here on."""
    seen, real = [], subprocess.run

    def spy(args, *a, **kw):
        seen.append((list(args), kw.get("timeout")))
        return real(args, *a, **kw)

    monkeypatch.setattr(subprocess, "run", spy)
    return seen


def test_the_allowance_is_the_floor_plus_the_media():
    assert tool_timeout(60) == 60 and tool_timeout(60, 0.0) == 60
    assert tool_timeout(60, 3 * 3600) == 60 + 3 * 3600 and tool_timeout(5, -1) == 5


def test_whole_source_audio_clip_gets_time_for_its_length(long_video, tmp_path, limits):
    work, clips = work_with(tmp_path / "w", long_video)  # no start/end: the whole source
    meta, _ = run(AudioStage(AudioConfig(timeout_s=5)), work, clips[0], tmp_path)
    assert meta["duration_s"] == pytest.approx(LONG_S, abs=0.1)
    decode = [t for args, t in limits if "-filter_complex" in args]
    assert len(decode) == 1 and decode[0] == pytest.approx(5 + LONG_S, abs=0.5)
    probes = [t for args, t in limits if Path(args[0]).name == "ffprobe"]
    assert probes and set(probes) == {5}  # reading a header does not grow with the file


def test_whole_source_frames_of_a_damaged_long_video(long_video, tmp_path, limits):
    """decord cannot read the truncated file: the remux and ffmpeg's decode measure go through all of it."""
    work, clips = work_with(tmp_path / "w", truncate_file(long_video, tmp_path / "t.mp4", 0.7))
    meta, _ = run(FramesStage(FramesConfig(frames=4, timeout_s=5)), work, clips[0], tmp_path)
    assert meta["present"] and meta["remuxed"] == "unreadable_by_decord"
    remux = [t for args, t in limits if args[-2:-1] == ["nut"]]
    assert remux == [pytest.approx(5 + LONG_S, abs=0.5)]


def test_a_run_past_its_allowance_is_killed_with_both_parts_named(tmp_path):
    endless = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "anullsrc",
               "-f", "null", "-"]
    with pytest.raises(ItemError) as e:
        run_tool(endless, 0.2, "decode", tmp_path / "x.wav", media_s=0.3)
    assert e.value.reason == "decode_timeout"
    assert "ran over 0.5 s (0.2 s + 0.3 s of media)" in e.value.detail
