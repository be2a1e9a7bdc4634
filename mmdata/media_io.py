"""Small media readers shared by stages: decode audio and images into numpy arrays.

Audio goes through ffmpeg (argument lists, never a shell string) because torchaudio 2.11 has no I/O
backends, except the files the audio stage writes itself (mono FLAC/WAV already at the wanted rate): those
decode in-process with libsndfile, to the very same samples, without an ffmpeg process per clip (which
costs ~80 ms, more than tokenizing the clip), and on a machine without ffmpeg. Bad files become `ItemError`s
naming the file.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from mmdata.errors import ItemError
from mmdata.tools import run_tool, stderr_tail


def read_audio(path: str | Path, sample_rate: int = 16000, timeout_s: float = 600.0) -> np.ndarray:
    """Decode any audio file ffmpeg reads to mono float32 in [-1, 1] at `sample_rate` Hz, shape [N].

    ffmpeg downmixes and resamples (its default swr resampler is deterministic), so the same file gives
    the same samples on every run.
    """
    path = Path(path)
    if not path.is_file():
        raise ItemError("missing_output_file", f"audio file {path} does not exist")
    if path.suffix.lower() in IN_PROCESS:
        wav = _read_sndfile(path, sample_rate)
        if wav is not None:
            return wav
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:  # the quantize stage does not ask for ffmpeg up front: a GPU node may have none
        raise ItemError("missing_ffmpeg", f"{path} needs ffmpeg to become {sample_rate} Hz mono audio, and this "
                        f"machine has no ffmpeg on PATH")
    args = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1",
            "-ar", str(int(sample_rate)), "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    proc = run_tool(args, timeout_s, "decode", path)  # a hang: ItemError("decode_timeout")
    if proc.returncode != 0:
        raise ItemError("corrupt_file", f"ffmpeg cannot decode {path}: {stderr_tail(proc) or 'no message'}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32, copy=True)


IN_PROCESS = (".flac", ".wav")


def _read_sndfile(path: Path, sample_rate: int) -> np.ndarray | None:
    """Mono audio at `sample_rate` decoded by libsndfile; None when ffmpeg must do it (several channels or
    another rate: its downmix and resampler define the samples; a file libsndfile cannot read: ffmpeg's
    error message names the problem). Both divide 16-bit samples by 32768, so the floats are identical."""
    try:
        import soundfile
    except (ImportError, OSError):  # libsndfile missing: `mmdata doctor` names it; ffmpeg still works
        return None
    try:
        with soundfile.SoundFile(str(path)) as f:
            if f.channels != 1 or f.samplerate != int(sample_rate):
                return None
            return f.read(dtype="float32")
    except (RuntimeError, soundfile.LibsndfileError):
        return None


def read_image_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3]; a missing or undecodable file is an ItemError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ItemError("missing_output_file", f"image file {path} does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ItemError("corrupt_file", f"cannot decode image {path}: {e}") from e
