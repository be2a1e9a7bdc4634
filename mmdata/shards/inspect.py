"""`mmdata inspect OUT KEY|SHARD`: one sample in words, and optionally a PNG contact sheet of it: frames with
their times, the waveform, the words on a time line, and the token grids."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from mmdata.errors import ConfigError
from mmdata.shards.index import ShardIndex
from mmdata.shards.reader import iter_stored_samples
from mmdata.store.fs import as_store
from mmdata.shards.sample import decode_fields

PANELS = ("frames", "waveform", "words", "vision tokens", "speech units", "text tokens")
MAX_PANEL_FRAMES = 8


def find_sample(out: str | Path, target: str, position: int = 0) -> tuple[str, str, dict[str, bytes]]:
    """(shard name, key, fields) of sample KEY, or of the `position`-th sample of shard SHARD."""
    out = as_store(out)
    index = ShardIndex.read(out)
    name = Path(target).name
    info = index.shard(name) or index.shard(f"{name}.tar")
    if info is not None:
        for i, (key, fields) in enumerate(iter_stored_samples(out, info.name)):
            if i == position:
                return info.name, key, fields
        raise ConfigError(f"{info.name} has {info.samples} samples; --sample {position} is out of range")
    for info in index.shards_for_key(target):
        for key, fields in iter_stored_samples(out, info.name):
            if key == target:
                return info.name, key, fields
    keys = [k for s in index.shards for k in (s.first_key, s.last_key)]
    raise ConfigError(f"{target!r} is neither a shard of {out.url} nor a sample key in it "
                      f"(keys run from {min(keys) if keys else '-'} to {max(keys) if keys else '-'})")


def describe(shard: str, key: str, fields: dict[str, bytes]) -> str:
    meta, arrays, problems = decode_fields(fields)
    meta = meta or {}
    lines = [f"key: {key}   (shard {shard})"]
    lines.append(f"source: {meta.get('url')}   video_id: {meta.get('video_id')}   kind: {meta.get('kind')}")
    lines.append(f"window: {meta.get('start_s')} - {meta.get('end_s')} s  (duration {meta.get('duration_s')} s)")
    for k in ("title", "uploader", "license", "caption"):
        if meta.get(k):
            lines.append(f"{k}: {meta[k]}")
    lines.append(f"modalities: {', '.join(meta.get('modalities', [])) or 'none'}")
    times = meta.get("frame_times") or []
    if times:
        shown = " ".join(f"{t:.2f}" for t in times[:12]) + (" ..." if len(times) > 12 else "")
        rate = f" at {meta['fps']} fps" if meta.get("fps") else ""
        lines.append(f"frames: {len(times)}{rate}, times (s): {shown}")
    if meta.get("audio_sample_rate"):
        lines.append(f"audio: {meta['audio_sample_rate']} Hz" + (", silent" if meta.get("audio_silent") else ""))
    lines.append("fields: " + ", ".join(f"{n} ({len(b)} B)" for n, b in fields.items()))
    for name, arr in arrays.items():
        rng = f"ids {int(arr.min())}..{int(arr.max())}" if arr.size else "empty"
        lines.append(f"{name}: {arr.dtype} {list(arr.shape)}  {rng}")
    if meta.get("tokenizers"):
        lines.append("tokenizers: " + ", ".join(f"{n}={h}" for n, h in meta["tokenizers"].items()))
    text = fields.get("txt", b"").decode("utf-8", "replace")
    lines.append(f"text: {text!r}")
    words = meta.get("words") or []
    lines.append(f"words: {len(words)}" + (f" (timing {meta.get('timing')})" if meta.get("timing") else ""))
    lines += [f"  {w['start']:8.3f} {w['end']:8.3f}  {w['w']}  [{w.get('timing', '')}]" for w in words]
    lines += [f"PROBLEM: {p}" for p in problems]
    return "\n".join(lines)


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of FLAC bytes (ffmpeg reads them from a pipe)."""
    from mmdata.environment import require_tool

    probe = subprocess.run([require_tool("ffmpeg"), "-loglevel", "error", "-i", "pipe:0", "-f", "f32le",
                            "-ac", "1", "pipe:1"], input=data, capture_output=True)
    if probe.returncode != 0:
        raise ValueError(f"ffmpeg cannot decode the flac field: {probe.stderr.decode(errors='replace')[-300:]}")
    rate = _flac_rate(data)
    return np.frombuffer(probe.stdout, dtype="<f4"), rate


def _flac_rate(data: bytes) -> int:
    """Sample rate from the FLAC STREAMINFO block (20 bits at byte 18 of the file)."""
    if data[:4] != b"fLaC" or len(data) < 21:
        raise ValueError("the flac field does not start with a FLAC stream header")
    return (data[18] << 12) | (data[19] << 4) | (data[20] >> 4)


def draw_contact_sheet(key: str, fields: dict[str, bytes]):
    """A matplotlib Figure of the sample: one row per panel of PANELS, each axis titled after its panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmdata.shards import sheet_panels as panels

    meta, arrays, _ = decode_fields(fields)
    meta = meta or {}
    fig = plt.figure(figsize=(13, 12), layout="constrained")
    grid = fig.add_gridspec(6, MAX_PANEL_FRAMES, height_ratios=[1.3, 1, 1, 1.3, 0.6, 0.6])
    panels.frames(fig, grid[0, :], meta, fields)
    panels.waveform(fig.add_subplot(grid[1, :]), meta, fields)
    panels.words(fig.add_subplot(grid[2, :]), meta)
    panels.vision_tokens(fig, grid[3, :], meta, arrays.get("vtok.npy"))
    panels.speech_units(fig.add_subplot(grid[4, :]), meta, arrays.get("stok.npy"))
    panels.text_tokens(fig.add_subplot(grid[5, :]), arrays.get("ttok.npy"))
    fig.suptitle(f"{key}   {meta.get('start_s')}-{meta.get('end_s')} s   "
                 f"modalities: {', '.join(meta.get('modalities', [])) or 'none'}")
    return fig


def contact_sheet(key: str, fields: dict[str, bytes], path: str | Path) -> Path:
    """Save the contact sheet as a PNG; its Description text names the panels."""
    import matplotlib.pyplot as plt

    fig = draw_contact_sheet(key, fields)
    fig.savefig(path, dpi=80, metadata={"Title": key, "Description": "panels: " + ", ".join(PANELS)})
    plt.close(fig)
    return Path(path)
