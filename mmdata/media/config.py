"""Typed configs of the media stages (frames, audio) and the recipe presets.

Every value is validated here, once, so the stages can trust their config. A config is built at the CLI
(`mmdata.config.build_config`: defaults <- preset <- YAML section <- CLI) and passed down as an object.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mmdata.config import build_config, check
from mmdata.errors import ConfigError

RESIZE_MODES = ("center_crop", "keep_aspect")
WINDOW_POLICIES = ("clamp", "reject")


def _checker(cls_name: str):
    return lambda ok, key, value, allowed: check(ok, cls_name, key, value, allowed)


@dataclass(frozen=True)
class WindowConfig:
    """How a clip window that runs past the end of its source is treated (shared by frames and audio,
    so both stages cut the same window)."""

    window: str = "clamp"  # clamp: cut the window at the source's end; reject: error row
    window_tolerance_s: float = 0.25  # overshoot allowed by `reject` (manifest rounding)
    min_window_s: float = 0.04  # a window shorter than this after clamping is rejected

    def _check_window(self) -> None:
        _check = _checker(type(self).__name__)
        _check(self.window in WINDOW_POLICIES, "window", self.window, f"one of {WINDOW_POLICIES}")
        _check(self.window_tolerance_s >= 0, "window_tolerance_s", self.window_tolerance_s, ">= 0")
        _check(self.min_window_s > 0, "min_window_s", self.min_window_s, "> 0")


@dataclass(frozen=True)
class FramesConfig(WindowConfig):
    """Frame sampling. Exactly one of `frames` (N evenly spaced per clip) and `fps` (a fixed rate) is > 0."""

    frames: int = 8  # frames per clip, evenly spaced (segment centres); 0 = off (use fps)
    fps: float = 0.0  # frames per second of clip; 0 = off (use frames)
    size: int = 224  # short side after resizing; 0 keeps the source size
    resize: str = "center_crop"  # center_crop: size x size; keep_aspect: short side = size
    jpeg_quality: int = 90
    decode_threads: int = 1  # decoder threads per worker (the runner gives each worker one core)
    min_decoded_fraction: float = 0.5  # a file whose tail is corrupt is kept when this share of the window decodes
    timeout_s: float = 60.0  # for each ffprobe / ffmpeg subprocess, plus its media's length (tools.tool_timeout)

    def __post_init__(self) -> None:
        self._check_window()
        _check = _checker(type(self).__name__)
        _check(isinstance(self.frames, int) and self.frames >= 0, "frames", self.frames, "an integer >= 0")
        _check(self.fps >= 0, "fps", self.fps, "a number >= 0")
        _check((self.frames > 0) != (self.fps > 0), "frames/fps", (self.frames, self.fps),
               "set exactly one of frames (N per clip) and fps (frames per second) above 0")
        _check(self.frames <= 10_000 and self.fps <= 240, "frames/fps", (self.frames, self.fps),
               "frames <= 10000 and fps <= 240")
        _check(isinstance(self.size, int) and 0 <= self.size <= 4096, "size", self.size, "an integer in 0..4096")
        _check(self.resize in RESIZE_MODES, "resize", self.resize, f"one of {RESIZE_MODES}")
        _check(isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100,
               "jpeg_quality", self.jpeg_quality, "an integer in 1..100")
        _check(isinstance(self.decode_threads, int) and self.decode_threads >= 0,
               "decode_threads", self.decode_threads, "an integer >= 0 (0 = decoder's choice)")
        _check(0 < self.min_decoded_fraction <= 1, "min_decoded_fraction", self.min_decoded_fraction, "in (0, 1]")
        _check(self.timeout_s > 0, "timeout_s", self.timeout_s, "> 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AudioConfig(WindowConfig):
    """Waveform extraction: mono FLAC at `sample_rate`, optional log-mel features."""

    sample_rate: int = 16000
    mel_bins: int = 0  # 0 = no mel features
    mel_hop_ms: float = 10.0
    mel_win_ms: float = 25.0
    silence_dbfs: float = -90.0  # peak at or below this is digital silence (16-bit: 1 LSB is -90.3 dBFS)
    min_decoded_fraction: float = 0.5  # a stream that stops decoding early is kept (padded) above this share
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        self._check_window()
        _check = _checker(type(self).__name__)
        _check(isinstance(self.sample_rate, int) and 1000 <= self.sample_rate <= 192000,
               "sample_rate", self.sample_rate, "an integer in 1000..192000 (Hz)")
        _check(isinstance(self.mel_bins, int) and 0 <= self.mel_bins <= 512, "mel_bins", self.mel_bins,
               "an integer in 0..512 (0 = off)")
        _check(0 < self.mel_hop_ms <= 1000, "mel_hop_ms", self.mel_hop_ms, "in (0, 1000]")
        _check(self.mel_hop_ms <= self.mel_win_ms <= 1000, "mel_win_ms", self.mel_win_ms,
               f"in [mel_hop_ms={self.mel_hop_ms}, 1000]")
        _check(self.silence_dbfs < 0, "silence_dbfs", self.silence_dbfs, "a negative dBFS level")
        _check(0 < self.min_decoded_fraction <= 1, "min_decoded_fraction", self.min_decoded_fraction, "in (0, 1]")
        _check(self.timeout_s > 0, "timeout_s", self.timeout_s, "> 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Recipes. icode: i-Code samples 8 frames per clip at 224 px with 16 kHz speech. avbert: the parameter-efficient
# AV transformer samples 16 frames per 1-second slot (stored at 128 px so training can random-crop 112) and
# trains on 128-bin log-mel spectrograms of 44.1 kHz audio.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "icode": {
        "frames": {"frames": 8, "fps": 0.0, "size": 224, "resize": "center_crop"},
        "audio": {"sample_rate": 16000, "mel_bins": 0},
    },
    "avbert": {
        "frames": {"frames": 0, "fps": 16.0, "size": 128, "resize": "center_crop"},
        "audio": {"sample_rate": 44100, "mel_bins": 128, "mel_hop_ms": 10.0, "mel_win_ms": 25.0},
    },
}


def preset(name: str | None, stage: str) -> dict[str, Any] | None:
    """The values a preset sets for one stage ('frames' | 'audio'), or None when no preset is named."""
    if name is None:
        return None
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r} is not allowed: one of {sorted(PRESETS)}")
    return dict(PRESETS[name][stage])


def exclusive_sampling(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Within one config layer (CLI or YAML section), naming only `fps` turns `frames` off and vice versa,
    so a layer overrides the sampling mode of the layers below it instead of colliding with them."""
    if not values:
        return values
    out = dict(values)
    has_frames, has_fps = out.get("frames") is not None, out.get("fps") is not None
    if has_fps and not has_frames:
        out["frames"] = 0
    elif has_frames and not has_fps:
        out["fps"] = 0.0
    return out


def build_media_config(stage: str, section: dict[str, Any] | None, cli: dict[str, Any] | None,
                       preset_name: str | None = None) -> FramesConfig | AudioConfig:
    """The frames or audio config: defaults <- preset <- YAML section <- CLI values (None: not given).

    The preset is the CLI's `preset` if given, else the section's `preset:`, else `preset_name` (a
    pipeline file's top-level preset). Used by `mmdata frames|audio` and by `mmdata run`."""
    cls = {"frames": FramesConfig, "audio": AudioConfig}[stage]
    section, cli = dict(section or {}), dict(cli or {})
    name = cli.pop("preset", None) or section.pop("preset", None) or preset_name
    section.pop("preset", None)
    if cls is FramesConfig:
        section, cli = exclusive_sampling(section), exclusive_sampling(cli)
    return build_config(cls, cli, section, preset(name, stage))
