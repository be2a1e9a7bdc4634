"""One webdataset sample per clip, built from the clip's per-stage outputs in the work folder, and the
schema every sample must pass (checked before a sample is written and again by `mmdata verify`).

Fields (extension -> content):
    json          metadata (see `build_meta`)
    txt           the clip's text (utf-8)
    vtok.npy      vision tokens, uint16 [T, h, w]     (when "vision" is in modalities)
    stok.npy      speech units, uint16 [L]           (when "speech" is in modalities)
    ttok.npy      text token ids, int32 [N]          (when "language" is in modalities)
    frameNNNN.jpg the sampled frames                 (with --keep frames)
    flac          the clip's mono audio              (with --keep audio)
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmdata.errors import ItemError
from mmdata.records import Clip
from mmdata.shards.index import TOKEN_FIELDS, TokenizerSet
from mmdata.store.records import AlignOutput, AudioOutput, DownloadOutput, FramesOutput, QuantizeOutput
from mmdata.transcripts.model import TIMINGS
from mmdata.utils import npy_bytes
from mmdata.workdir import WorkDir

MODALITIES = ("vision", "speech", "language")
KEEP_CHOICES = ("frames", "audio")
TOKEN_SPECS = {"vtok.npy": (np.uint16, 3), "stok.npy": (np.uint16, 1), "ttok.npy": (np.int32, 1)}
REQUIRED_META = ("key", "video_id", "url", "kind", "start_s", "end_s", "duration_s", "frame_times",
                 "modalities", "words", "tokenizers", "fields")
TIME_SLACK_S = 0.01  # word and frame times may overshoot the clip window by this much (rounding)
MODALITY_NAMES = {"vision": "vision", "speech": "speech", "language": "language", "text": "language"}
# Kept files are copied, not decoded: how each must start and end catches a damaged or foreign one at no cost
SIGNATURES = {".jpg": (b"\xff\xd8\xff", b"\xff\xd9"), ".flac": (b"fLaC", b"")}


def frame_field(i: int) -> str:
    return f"frame{i:04d}.jpg"


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Sample:
    key: str
    meta: dict[str, Any]
    text: str
    tokens: dict[str, np.ndarray]  # field name (vtok.npy, ...) -> array
    extras: dict[str, bytes]  # kept raw files: frameNNNN.jpg, flac

    def fields(self) -> dict[str, bytes]:
        out = {"json": json_bytes(self.meta), "txt": self.text.encode("utf-8")}
        out.update({name: npy_bytes(arr) for name, arr in self.tokens.items()})
        out.update(self.extras)
        return out


# --- building ---------------------------------------------------------------------------------------

def build_sample(work: WorkDir, clip: Clip, keep: tuple[str, ...] = (),
                 tokenizers: TokenizerSet | None = None) -> Sample:
    """The sample of a quantized clip. Raises ItemError when its outputs are missing, damaged or fail the
    schema (a sample that would not pass `mmdata verify` is never written)."""
    tokenizers = tokenizers or TokenizerSet()
    q: QuantizeOutput | None = work.output("quantize", clip.key)
    if q is None:
        raise ItemError("missing_quantize", f"clip {clip.key} has no quantize output in {work.root}")
    named = {MODALITY_NAMES.get(m) for m in q.modalities}  # quantize says "text" for language
    mods = [m for m in MODALITIES if m in named]
    _check_tokenizer_hashes(clip.key, mods, dict(q.tokenizers or {}), tokenizers)
    tokens = {TOKEN_FIELDS[m]: _load_tokens(work, clip.key, TOKEN_FIELDS[m]) for m in mods}
    # a stage that did not run on the clip reads as its empty output
    frames = work.output("frames", clip.key) or FramesOutput(present=False)
    audio = work.output("audio", clip.key) or AudioOutput(present=False)
    align = work.output("align", clip.key) or AlignOutput()
    download: DownloadOutput | None = work.output("download", clip.video_id)
    info = dict(download.info or {}) if download is not None else {}
    if download is not None and download.kind:  # download may have found the kind out
        clip = dataclasses.replace(clip, kind=download.kind)
    extras = _extras(work, clip.key, keep, mods, frames, audio)
    meta = build_meta(clip, mods, q, frames, audio, align, info, tokenizers)
    text = _clip_text(clip, align)
    meta["fields"] = sorted(["json", "txt", *tokens, *extras])
    problems = check_decoded(clip.key, meta, tokens, set(meta["fields"]), tokenizers.vocab_sizes())
    if problems:
        raise ItemError("invalid_sample", "; ".join(problems))
    return Sample(clip.key, meta, text, tokens, extras)


def build_meta(clip: Clip, mods: list[str], q: QuantizeOutput, frames: FramesOutput, audio: AudioOutput,
               align: AlignOutput, info: dict, tokenizers: TokenizerSet) -> dict[str, Any]:
    start, end = _window(clip, audio, frames, info)
    duration = round(end - start, 6)
    times = [float(t) for t in frames.times] if frames.present else []
    has_audio = bool(audio.present)
    words, trimmed = _words_in_clip([w.to_dict() for w in align.words], duration)
    return {
        "key": clip.key, "video_id": clip.video_id, "url": clip.url, "kind": clip.kind,
        "start_s": start, "end_s": end, "duration_s": duration,
        "fps": frames.extra.get("fps") or (frames.sampling or {}).get("fps") or _fps_from_times(times),
        "frame_times": times,
        "frame_size": [frames.width, frames.height] if times and frames.width is not None else None,
        "audio_sample_rate": audio.sample_rate if has_audio else None,
        "audio_silent": audio.silent if has_audio else None,
        "stok_rate_hz": (q.stok_hz or tokenizers.get("speech", "rate_hz")) if "speech" in mods else None,
        "modalities": mods,
        "words": words, "words_trimmed": trimmed,
        "timing": align.timing, "tags": list(align.tags),
        "caption": clip.caption,
        "tokenizers": dict(sorted((q.tokenizers or {}).items())),
        "title": info.get("title"), "uploader": info.get("uploader"), "license": info.get("license"),
    }


def _clip_text(clip: Clip, align: AlignOutput) -> str:
    """The text quantize tokenized: the align stage's transcript, else the manifest's text, else the caption."""
    if align.present and (align.text or "").strip():
        return align.text
    for t in (clip.text, clip.caption):
        if t and t.strip():
            return t
    return ""


def _window(clip: Clip, audio: AudioOutput, frames: FramesOutput, info: dict) -> tuple[float, float]:
    """Source-relative start/end of the clip as frames and audio cut it (they may have clamped the clip at
    the source's end); else the clip table's window, an open end closed with the measured duration."""
    for out in (frames, audio):
        win = out.window or {}
        if win.get("start_s") is not None and win.get("end_s") is not None:
            offset = float(win.get("offset_s") or 0.0)  # a section download: file time + offset = source time
            return float(win["start_s"]) + offset, float(win["end_s"]) + offset
    start = float(clip.start_s or 0.0)
    if clip.end_s is not None:
        return start, float(clip.end_s)
    if audio.duration_s is not None:
        return start, start + float(audio.duration_s)
    if info.get("duration") is not None and float(info["duration"]) >= start:
        return start, float(info["duration"])
    return start, start  # an image, or nothing measured the length


def _words_in_clip(words: list[dict], duration: float) -> tuple[list[dict], int]:
    """Words as align gave them, except where the media ended before the clip window did (a window clamped
    at the source's end): words starting after the end are dropped, words running over it are cut."""
    out, trimmed = [], 0
    for w in words:
        w = dict(w)
        if isinstance(w.get("start"), (int, float)) and isinstance(w.get("end"), (int, float)):
            if w["start"] > duration + TIME_SLACK_S:
                trimmed += 1
                continue
            if w["end"] > duration + TIME_SLACK_S:
                w["end"], trimmed = round(duration, 6), trimmed + 1
        out.append(w)
    return out, trimmed


def _fps_from_times(times: list[float]) -> float | None:
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return round((len(times) - 1) / (times[-1] - times[0]), 6)


def _load_tokens(work: WorkDir, key: str, name: str) -> np.ndarray:
    where = f"{work.root}/quantize: {key}/{name}"
    try:
        data = work.read_file("quantize", key, name)
    except FileNotFoundError:
        raise ItemError("missing_output_file", f"{where} does not exist though quantize's meta lists its modality") from None
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ItemError("corrupt_tokens", f"{where} is not a readable .npy file: {e}") from e


def _check_tokenizer_hashes(key: str, mods: list[str], used: dict[str, str], tokenizers: TokenizerSet) -> None:
    wrong = tokenizers.mismatches(mods, used)
    if wrong:
        raise ItemError("tokenizer_mismatch", f"clip {key}: " + "; ".join(wrong)
                        + "; re-run quantize or pass the matching --tokenizers folder")


def _extras(work: WorkDir, key: str, keep: tuple[str, ...], mods: list[str], frames: FramesOutput,
            audio: AudioOutput) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if "frames" in keep and "vision" in mods and frames.present:
        files = work.item_files("frames", key)  # one read for all of them
        for i, name in enumerate(frames.files):
            out[frame_field(i)] = _read(files, "frames", key, name)
    if "audio" in keep and "speech" in mods and audio.present and audio.file:
        out["flac"] = _read(work.item_files("audio", key), "audio", key, audio.file)
    return out


def _read(files: dict[str, bytes], stage: str, key: str, name: str) -> bytes:
    if name not in files:
        raise ItemError("missing_output_file", f"{stage} output {key}/{name} is listed in its meta but not stored")
    data = files[name]
    ext = name[name.rfind("."):].lower()
    head, tail = SIGNATURES.get(ext, (b"", b""))
    if not (data.startswith(head) and data.endswith(tail)):
        raise ItemError("corrupt_file", f"{stage} output {key}/{name} is not a whole {ext[1:].upper()} file "
                        f"({len(data)} bytes, starting {data[:8].hex()})")
    return data


# --- the schema -------------------------------------------------------------------------------------

def decode_fields(fields: dict[str, bytes]) -> tuple[dict | None, dict[str, np.ndarray], list[str]]:
    """Parse the json and token fields of a sample read back from a shard."""
    problems: list[str] = []
    meta = None
    if "json" in fields:
        try:
            meta = json.loads(fields["json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(f"json: not valid JSON ({e})")
    if "txt" in fields:
        try:
            fields["txt"].decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"txt: not utf-8 ({e})")
    arrays = {}
    for name in TOKEN_SPECS:
        if name in fields:
            try:
                arrays[name] = np.load(io.BytesIO(fields[name]), allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                problems.append(f"{name}: not a readable .npy ({e})")
    return meta, arrays, problems


def check_sample(key: str, fields: dict[str, bytes], vocab: dict[str, int]) -> list[str]:
    """Every schema problem of one sample read back from a shard (empty list: the sample is fine)."""
    meta, arrays, problems = decode_fields(fields)
    if "json" not in fields:
        return problems + ["missing field json"]
    if meta is None:
        return problems
    return problems + check_decoded(key, meta, arrays, set(fields), vocab)


def check_decoded(key: str, meta: dict, arrays: dict[str, np.ndarray], present: set[str],
                  vocab: dict[str, int]) -> list[str]:
    if not isinstance(meta, dict):
        return ["json: not an object"]
    problems = [f"json: missing {k!r}" for k in REQUIRED_META if k not in meta]
    if problems:
        return problems
    if meta["key"] != key:
        problems.append(f"json: key {meta['key']!r} differs from the sample key")
    for check in (lambda: _check_fields(meta, present), lambda: _check_tokens(meta, arrays, vocab),
                  lambda: _check_times(meta)):
        try:
            problems += check()
        except (TypeError, ValueError, KeyError, AttributeError) as e:  # a value of the wrong type
            problems.append(f"json: malformed value ({type(e).__name__}: {e})")
    return problems


def _check_fields(meta: dict, present: set[str]) -> list[str]:
    mods = meta["modalities"]
    problems = [f"modalities: unknown {m!r}" for m in mods if m not in MODALITIES]
    expected = set(meta["fields"]) | {"json", "txt"} | {TOKEN_FIELDS[m] for m in mods if m in TOKEN_FIELDS}
    problems += [f"missing field {f}" for f in sorted(expected - present)]
    problems += [f"unexpected field {f}" for f in sorted(present - expected)]
    for name, mod in ((f, m) for m, f in TOKEN_FIELDS.items()):
        if name in present and mod not in mods:
            problems.append(f"{name} present but modalities {mods} lack {mod!r}")
    n_frames = sum(1 for f in present if f.startswith("frame") and f.endswith(".jpg"))
    if n_frames and n_frames != len(meta["frame_times"]):
        problems.append(f"{n_frames} frame JPEGs but {len(meta['frame_times'])} frame times")
    return problems


def _check_tokens(meta: dict, arrays: dict[str, np.ndarray], vocab: dict[str, int]) -> list[str]:
    problems = []
    for mod, name in TOKEN_FIELDS.items():
        arr = arrays.get(name)
        if arr is None:
            continue
        dtype, ndim = TOKEN_SPECS[name]
        if arr.dtype != dtype or arr.ndim != ndim:
            problems.append(f"{name}: {arr.dtype} {list(arr.shape)}, expected {np.dtype(dtype).name} with {ndim} dims")
            continue
        if arr.size == 0:
            problems.append(f"{name}: empty although {mod!r} is present")
            continue
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            problems.append(f"{name}: negative token id {lo}")
        if mod in vocab and hi >= vocab[mod]:
            problems.append(f"{name}: token id {hi} >= vocabulary size {vocab[mod]}")
    vtok, times = arrays.get("vtok.npy"), meta["frame_times"]
    if vtok is not None and vtok.ndim == 3 and times and len(vtok) != len(times):
        problems.append(f"vtok.npy: {len(vtok)} token grids for {len(times)} frame times (one grid per frame)")
    return problems


def _check_times(meta: dict) -> list[str]:
    problems = []
    dur = float(meta["duration_s"])
    if not math.isfinite(dur) or dur < 0 or float(meta["end_s"]) < float(meta["start_s"]):
        return [f"window: start {meta['start_s']} end {meta['end_s']} duration {dur} is not a valid clip window"]
    for i, t in enumerate(meta["frame_times"]):
        if not -TIME_SLACK_S <= float(t) <= dur + TIME_SLACK_S:
            problems.append(f"frame_times[{i}] = {t} outside the clip (0-{dur} s)")
    for i, w in enumerate(meta["words"]):
        if not isinstance(w, dict) or not {"w", "start", "end"} <= set(w):
            problems.append(f"words[{i}]: needs w, start, end, got {w!r}")
            continue
        s, e = float(w["start"]), float(w["end"])
        if not (-TIME_SLACK_S <= s <= e <= dur + TIME_SLACK_S):
            problems.append(f"words[{i}] {w['w']!r} at {s}-{e} s outside the clip (0-{dur} s) or reversed")
        if w.get("timing", "asr") not in TIMINGS:
            problems.append(f"words[{i}] {w['w']!r}: timing {w.get('timing')!r} not one of {TIMINGS}")
    return problems
