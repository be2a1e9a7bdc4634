"""`mmdata frames` / `mmdata audio` commands: presets, config file, option precedence, exit codes."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from mmdata.commands.media import audio_cmd, frames_cmd
from mmdata.testing.media import make_video
from mmdata.testing.workdirs import work_with


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    src = make_video(root / "v.mp4", duration_s=2.0)
    work, _ = work_with(root / "work", src, [(0.0, 2.0), (5.0, 6.0)])
    return work


def invoke(cmd, *args):
    return CliRunner().invoke(cmd, [*args, "--no-progress"], catch_exceptions=False)


def test_presets_and_exit_codes(work):
    r = invoke(frames_cmd, "--work", str(work.root), "--preset", "avbert")
    assert r.exit_code == 3, r.output  # one clip starts past the source's end
    assert "window_beyond_end" in r.output and "ok 1, failed 1" in r.output
    meta = work.meta("frames", "src_0")
    assert meta["sampling"] == {"fps": 16.0} and len(meta["files"]) == 32 and meta["width"] == 128
    r = invoke(audio_cmd, "--work", str(work.root), "--preset", "avbert")
    assert r.exit_code == 3
    meta = work.meta("audio", "src_0")
    assert (meta["sample_rate"], meta["num_samples"], meta["mel_bins"]) == (44100, 88200, 128)


def test_config_file_and_cli_precedence(work, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("frames:\n  preset: avbert\n  frames: 3\n  jpeg-quality: 70\naudio:\n  sample_rate: 8000\n")
    w2, _ = work_with(tmp_path / "w2", work.item_dir("download", "src") / "media.mp4", [(0.0, 2.0)])
    r = invoke(frames_cmd, "--work", str(w2.root), "--config", str(cfg), "--size", "64")
    assert r.exit_code == 0, r.output
    meta = w2.meta("frames", "src_0")  # frames from the file beat the preset's fps; --size beats both
    assert meta["sampling"] == {"frames": 3} and meta["width"] == 64 and len(meta["files"]) == 3
    r = invoke(audio_cmd, "--work", str(w2.root), "--config", str(cfg))
    assert r.exit_code == 0 and w2.meta("audio", "src_0")["sample_rate"] == 8000


@pytest.mark.parametrize("args, says", [
    (("--frames", "8", "--fps", "4"), "frames/fps"),
    (("--size", "-3"), "size"),
    (("--preset", "nope"), "nope"),
])
def test_usage_errors_exit_2(work, args, says):
    r = CliRunner().invoke(frames_cmd, ["--work", str(work.root), *args])
    assert r.exit_code == 2 and says in r.output
