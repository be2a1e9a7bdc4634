"""Pure parts: configs and presets, output geometry, frame planning and picking, window resolution."""
from __future__ import annotations

import numpy as np
import pytest

from mmdata.config import build_config
from mmdata.errors import ConfigError, ItemError
from mmdata.media.config import PRESETS, AudioConfig, FramesConfig, exclusive_sampling, preset
from mmdata.media.probe import Probe
from mmdata.media.sampling import geometry, pick_frames, plan_targets
from mmdata.media.window import resolve_window
from mmdata.records import Clip


def test_presets_build_the_recipes():
    f = build_config(FramesConfig, {}, None, preset("icode", "frames"))
    a = build_config(AudioConfig, {}, None, preset("icode", "audio"))
    assert (f.frames, f.fps, f.size, a.sample_rate, a.mel_bins) == (8, 0.0, 224, 16000, 0)
    f = build_config(FramesConfig, {}, None, preset("avbert", "frames"))
    a = build_config(AudioConfig, {}, None, preset("avbert", "audio"))
    assert (f.frames, f.fps, f.size, a.sample_rate, a.mel_bins) == (0, 16.0, 128, 44100, 128)
    assert set(PRESETS) == {"icode", "avbert"}
    with pytest.raises(ConfigError, match="preset"):
        preset("nope", "frames")


def test_layers_override_the_sampling_mode_of_lower_layers():
    # a YAML section naming fps over the icode preset turns frames off; the CLI naming frames turns fps off
    cfg = build_config(FramesConfig, None, exclusive_sampling({"fps": 4}), preset("icode", "frames"))
    assert (cfg.frames, cfg.fps) == (0, 4.0)
    cfg = build_config(FramesConfig, exclusive_sampling({"frames": 3, "fps": None}), {"fps": 4},
                       preset("avbert", "frames"))
    assert (cfg.frames, cfg.fps) == (3, 0.0)


@pytest.mark.parametrize("kwargs, key", [
    ({"frames": 8, "fps": 2.0}, "frames/fps"), ({"frames": 0, "fps": 0.0}, "frames/fps"),
    ({"size": -1}, "size"), ({"resize": "stretch"}, "resize"), ({"jpeg_quality": 0}, "jpeg_quality"),
    ({"window": "extend"}, "window"), ({"min_decoded_fraction": 0.0}, "min_decoded_fraction"),
])
def test_frames_config_names_the_bad_key(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace("/", ".")):
        FramesConfig(**kwargs)


@pytest.mark.parametrize("kwargs, key", [
    ({"sample_rate": 100}, "sample_rate"), ({"mel_bins": -1}, "mel_bins"), ({"mel_hop_ms": 0}, "mel_hop_ms"),
    ({"mel_win_ms": 5.0}, "mel_win_ms"), ({"silence_dbfs": 3.0}, "silence_dbfs"),
])
def test_audio_config_names_the_bad_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        AudioConfig(**kwargs)


def test_unknown_yaml_key_is_a_config_error():
    with pytest.raises(ConfigError, match="frame_count"):
        build_config(FramesConfig, {}, {"frame_count": 8})


@pytest.mark.parametrize("size, resize, display, expect", [
    (224, "center_crop", (640, 360), (398, 224, 87, 0, 224, 224)),
    (224, "center_crop", (360, 640), (224, 398, 0, 87, 224, 224)),
    (224, "keep_aspect", (640, 360), (398, 224, 0, 0, 398, 224)),
    (224, "center_crop", (64, 48), (299, 224, 37, 0, 224, 224)),  # small sources are scaled up
    (0, "keep_aspect", (321, 241), (321, 241, 0, 0, 321, 241)),
    (128, "center_crop", (128, 128), (128, 128, 0, 0, 128, 128)),
])
def test_geometry(size, resize, display, expect):
    g = geometry(*display, FramesConfig(size=size, resize=resize))
    assert (g.scale_w, g.scale_h, g.crop_left, g.crop_top, g.out_w, g.out_h) == expect


def test_geometry_rejects_zero_size():
    with pytest.raises(ItemError) as e:
        geometry(0, 0, FramesConfig())
    assert e.value.reason == "video_size_zero"


def test_plan_targets_count_and_fps():
    t = plan_targets(10.0, 14.0, FramesConfig(frames=4))
    np.testing.assert_allclose(t, [10.5, 11.5, 12.5, 13.5])
    t = plan_targets(1.0, 2.0, FramesConfig(frames=0, fps=16))
    assert len(t) == 16 and t[0] == 1.0 and t[-1] == pytest.approx(1.9375)
    # 0.3 s at 10 fps is 3 samples, not 4 (float noise must not add one)
    assert len(plan_targets(0.0, 0.3, FramesConfig(frames=0, fps=10))) == 3


def test_pick_frames_nearest_to_segment_centres():
    starts = np.arange(0, 100) * 0.04  # 25 fps
    # 4 segments of [0.98, 2.98): centres 1.23, 1.73, 2.23, 2.73 -> frames 1.24, 1.72, 2.24, 2.72
    idx = pick_frames(starts, 0.98, 2.98, FramesConfig(frames=4))
    assert idx.tolist() == [31, 43, 56, 68]
    # a centre exactly between two frames goes to the earlier one: [0, 0.08) has its centre at 0.04... and
    # [0.02, 0.1) at 0.06, between 0.04 and 0.08
    assert pick_frames(starts, 0.02, 0.10, FramesConfig(frames=1)).tolist() == [1]
    # more frames asked than the window holds: shared frames, never frames from outside the window
    idx = pick_frames(starts, 1.0, 1.1, FramesConfig(frames=8))
    assert set(idx.tolist()) <= {25, 26, 27} and len(idx) == 8
    with pytest.raises(ItemError) as e:
        pick_frames(starts, 10.0, 11.0, FramesConfig())
    assert e.value.reason == "no_frames_in_window"


@pytest.mark.parametrize("phase", [0.0, 0.01, 0.02, 0.03])
def test_fps_at_the_source_rate_takes_every_frame_whatever_the_phase(phase):
    starts = np.arange(0, 100) * 0.04
    idx = pick_frames(starts, 0.5 + phase, 1.5 + phase, FramesConfig(frames=0, fps=25))
    first = int(np.ceil((0.5 + phase) / 0.04 - 1e-6))
    assert idx.tolist() == list(range(first, first + 25))


def test_fps_below_and_above_the_source_rate():
    starts = np.arange(0, 100) * 0.04  # 25 fps
    idx = pick_frames(starts, 0.0, 1.0, FramesConfig(frames=0, fps=10))  # slots of 0.1 s
    assert starts[idx] == pytest.approx([0.0, 0.12, 0.2, 0.32, 0.4, 0.52, 0.6, 0.72, 0.8, 0.92])
    starts10 = np.arange(0, 20) * 0.1  # 10 fps source sampled at 16 fps: the frame on screen repeats
    idx = pick_frames(starts10, 0.0, 1.0, FramesConfig(frames=0, fps=16))
    assert len(idx) == 16 and sorted(set(idx.tolist())) == list(range(10))
    assert np.all(starts10[idx] < (np.arange(16) + 1) / 16)  # each pick is on screen during its slot


def _probe(duration):
    return Probe(path="x.mp4", format_name="mp4", format_start_s=0.0, duration_s=duration,
                 duration_source="header", header_duration_s=duration, size_bytes=1, video=None, audio=None)


def test_window_clamp_and_reject():
    clip = Clip(key="k", video_id="v", url="u", start_s=8.0, end_s=12.0)
    w = resolve_window(clip, _probe(10.0), FramesConfig())
    assert (w.start_s, w.end_s, w.clamped, w.requested_end_s) == (8.0, 10.0, True, 12.0)
    with pytest.raises(ItemError) as e:
        resolve_window(clip, _probe(10.0), FramesConfig(window="reject"))
    assert e.value.reason == "window_beyond_end" and "10.000" in e.value.detail
    # within the tolerance, reject still clamps (manifest rounding)
    w = resolve_window(Clip(key="k", video_id="v", url="u", start_s=0, end_s=10.1), _probe(10.0),
                       AudioConfig(window="reject"))
    assert w.end_s == 10.0 and w.clamped
    with pytest.raises(ItemError) as e:
        resolve_window(Clip(key="k", video_id="v", url="u", start_s=11.0, end_s=12.0), _probe(10.0), FramesConfig())
    assert e.value.reason == "window_beyond_end"
    w = resolve_window(Clip(key="k", video_id="v", url="u"), _probe(7.5), FramesConfig())
    assert (w.start_s, w.end_s, w.clamped) == (0.0, 7.5, False)


def test_build_media_config_preset_precedence():
    from mmdata.media.config import build_media_config

    # a pipeline file's top-level preset, the section overriding one value
    f = build_media_config("frames", {"size": 96}, {}, "avbert")
    assert (f.fps, f.frames, f.size) == (16.0, 0, 96)
    # the section's own preset beats the top-level one; the CLI's beats both
    a = build_media_config("audio", {"preset": "icode"}, {}, "avbert")
    assert (a.sample_rate, a.mel_bins) == (16000, 0)
    a = build_media_config("audio", {"preset": "icode"}, {"preset": "avbert", "mel_bins": None}, None)
    assert (a.sample_rate, a.mel_bins) == (44100, 128)
    with pytest.raises(ConfigError, match="preset"):
        build_media_config("frames", {}, {}, "icode2")
