"""Frames and audio of a clip cover the same window: a flash and a beep at a known time show at the same
clip-relative time (within one frame), also when one stream starts later on the container timeline.
The last test runs both stages through the runner."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from mmdata.store.records import as_meta
from mmdata.media.config import AudioConfig, FramesConfig
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.testing.media import make_flash_beep_video, offset_stream
from mmdata.testing.workdirs import work_with
from tests.media.helpers import brightness, read_flac

EVENT_S = 2.0
FRAME_S = 1 / 25


@pytest.fixture(scope="module")
def flash_beep(tmp_path_factory) -> Path:
    return make_flash_beep_video(tmp_path_factory.mktemp("fb") / "fb.mp4", duration_s=5.0, event_s=EVENT_S)


def flash_and_beep(work, clip, tmp_path: Path, rate: int = 16000) -> tuple[float, float]:
    """Clip-relative time of the white frame, and of the beep's first sample."""
    fdir = Path(tempfile.mkdtemp(dir=tmp_path))
    adir = Path(tempfile.mkdtemp(dir=tmp_path))
    fm = as_meta(FramesStage(FramesConfig(frames=0, fps=25, size=64)).process(clip, fdir, work))
    am = as_meta(AudioStage(AudioConfig(sample_rate=rate)).process(clip, adir, work))
    light = [brightness(fdir / f) for f in fm["files"]]
    assert max(light) > 200 and sorted(light)[-2] < 30  # exactly one white frame
    samples, _ = read_flac(adir / am["file"])
    assert len(samples) == am["num_samples"] == round((clip.end_s - clip.start_s) * rate)
    loud = np.nonzero(np.abs(samples) > 3000)[0]
    return fm["times"][int(np.argmax(light))], loud[0] / rate


@pytest.mark.parametrize("start, end", [(0.0, 5.0), (1.5, 4.0), (1.513, 3.7), (1.99, 2.5)])
def test_flash_and_beep_at_the_same_clip_time(flash_beep, tmp_path, start, end):
    work, clips = work_with(tmp_path / "w", flash_beep, [(start, end)])
    t_flash, t_beep = flash_and_beep(work, clips[0], tmp_path)
    assert abs(t_flash - t_beep) <= FRAME_S
    assert abs(t_flash - (EVENT_S - start)) <= FRAME_S and abs(t_beep - (EVENT_S - start)) < 0.002


@pytest.mark.parametrize("stream", ["a", "v"])
def test_a_stream_starting_late_keeps_its_place_on_the_timeline(flash_beep, tmp_path, stream):
    """Shift one stream 0.3 s later in the container: that stream's event moves by 0.3 s, the other's not
    (frame times include the video stream's start; audio sample 0 is the window start, padded if need be)."""
    src = offset_stream(flash_beep, tmp_path / f"late_{stream}.mp4", stream, 0.3)
    work, clips = work_with(tmp_path / "w", src, [(1.0, 4.0)])
    t_flash, t_beep = flash_and_beep(work, clips[0], tmp_path, rate=44100)
    late_v, late_a = (0.3, 0.0) if stream == "v" else (0.0, 0.3)
    assert abs(t_flash - (EVENT_S - 1.0 + late_v)) <= FRAME_S
    assert abs(t_beep - (EVENT_S - 1.0 + late_a)) < 0.002


def test_both_stages_through_the_runner(flash_beep, tmp_path):
    work, clips = work_with(tmp_path / "w", flash_beep, [(0.0, 2.5), (2.5, 5.0), (4.0, 9.0), (6.0, 7.0)])
    cfg = RunnerConfig(progress=False)
    fs = run_stage(FramesStage(FramesConfig(frames=4, size=32)), work, cfg)
    au = run_stage(AudioStage(), work, cfg)
    for summary, stage in ((fs, "frames"), (au, "audio")):
        assert (summary.ok, summary.failed, summary.reasons) == (3, 1, {"window_beyond_end": 1})
        rows = {r.key: r for r in read_all_status(work, stage)}
        assert rows["src_3"].status == "error" and "starts at 6.000" in rows["src_3"].detail
    for c in clips[:3]:
        fm, am = work.meta("frames", c.key), work.meta("audio", c.key)
        assert fm["window"] == am["window"]  # the same window, clamped the same way
        assert len(fm["files"]) == 4 and (work.item_dir("frames", c.key) / fm["files"][3]).is_file()
        assert am["num_samples"] == round((fm["window"]["end_s"] - fm["window"]["start_s"]) * 16000)
    assert work.meta("audio", "src_2")["window"]["clamped"] is True
    # a re-run skips what is done
    assert run_stage(FramesStage(FramesConfig(frames=4, size=32)), work, cfg).processed_now == 0
