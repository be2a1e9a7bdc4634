"""The quantize stage: every clip's frames, audio and transcript -> discrete tokens.

    <clip_key>/vtok.npy   uint16 [T, 14, 14]   vision tokens, one grid per sampled frame
               stok.npy   uint16 [L]           speech units at 50 Hz (L = samples // 320)
               ttok.npy   int32  [N]           text token ids
    (in the chunk's quantize pack) and a QuantizeOutput record: modalities, tokenizers {name: hash}, shapes,
    rates, skipped.

Each file exists only when the clip has that modality and the set has that tokenizer. Tokenizers load
once per worker in `setup()`. The stage declares one GPU when `device` allows it; it relies on the
runner (executors.RayExecutor) to drop that request on a cluster without GPUs, since Ray would wait
forever for a GPU that does not exist, and `setup()` then falls back to the CPU. Encoding is a pure
function of the inputs and the tokenizer files, so the same input gives the same tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdata.config import check
from mmdata.environment import check_needs
from mmdata.errors import ConfigError, ItemError
from mmdata.pipelines.base import Resources, Stage, upstream_output
from mmdata.records import Clip
from mmdata.store.records import QuantizeOutput
from mmdata.tokenizers.vision import CPU_BATCH_FRAMES
from mmdata.workdir import WorkDir

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class QuantizeConfig:
    tokenizers: str = ""  # the tokenizer set folder (default: WORK/tokenizers, filled in by the command)
    device: str = "auto"  # auto: a GPU when the worker has one
    memory_mb: int = 2048  # per-worker memory; frame batches are sized to a quarter of it
    batch_clips: int = 32  # clips encoded together (their inputs are read while the previous batch encodes)
    load_threads: int = 4  # threads reading a batch's inputs (JPEG and FLAC decode, CPU speech features)

    def __post_init__(self):
        check(bool(self.tokenizers), "QuantizeConfig", "tokenizers", self.tokenizers, "a tokenizer set folder")
        check(self.device in DEVICES, "QuantizeConfig", "device", self.device, f"one of {DEVICES}")
        check(self.memory_mb >= 256, "QuantizeConfig", "memory_mb", self.memory_mb, "256 or more")
        check(self.batch_clips >= 1, "QuantizeConfig", "batch_clips", self.batch_clips, "1 or more")
        check(self.load_threads >= 1, "QuantizeConfig", "load_threads", self.load_threads, "1 or more")

    @property
    def batch_frames(self) -> int:
        """Frames decoded and encoded at once: a quarter of the memory over ~4x a float32 frame's size
        (the decoded frame, its patch tensor, features and scores all live at once)."""
        from mmdata.tokenizers.vision import FRAME_BYTES

        return max(1, int(self.memory_mb * 1024 * 1024 / 4 // (4 * FRAME_BYTES)))


@dataclass
class QuantizeInput:
    """One clip's inputs, read on the CPU ahead of the device work (QuantizeStage.load)."""
    frames: np.ndarray | None = None  # uint8 [T, 224, 224, 3]
    wav: np.ndarray | None = None  # 16 kHz mono float32 (for a speech encoder model, which runs on the device)
    speech_features: np.ndarray | None = None  # normalised [L, D], for features computed on the CPU (MFCC)
    text: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # modality -> why the clip has none


@dataclass
class Tokens:
    """One clip's tokens from `process_batch`, written by `write_result` (in the runner's commit thread)."""
    tokens: dict[str, np.ndarray]  # modality -> tokens
    skipped: dict[str, str]  # modality -> why the clip has none


FILES = {"vision": "vtok.npy", "speech": "stok.npy", "text": "ttok.npy"}


class QuantizeStage(Stage):
    """Batched (base.py): `load` reads a clip's frames, audio and text on the CPU while the previous batch
    is encoded; `process_batch` encodes `batch_clips` clips together, the frames of all of them in one
    pass per `batch_frames` and all their speech frames in one nearest-centroid pass; `write_result` saves a
    clip's tokens while the next batch encodes."""

    name = "quantize"

    def __init__(self, cfg: QuantizeConfig):
        self.cfg = cfg
        wants_gpu = cfg.device != "cpu"
        # gpus=1 is a request the runner drops on a GPU-less cluster (see the module docstring)
        self.resources = Resources(cpus=1.0, gpus=1.0 if wants_gpu else 0.0, memory_mb=cfg.memory_mb)
        self.toks: dict[str, Any] | None = None
        self.hashes: dict[str, str] = {}

    @property
    def batch_size(self) -> int:
        return self.cfg.batch_clips

    @property
    def load_threads(self) -> int:
        return self.cfg.load_threads

    def options(self) -> dict[str, Any]:
        """What shapes the tokens: the tokenizers (by hash), not where they lie, the device or the batching
        (the same tokenizers give the same tokens). None before they are fitted (`mmdata run` fits them)."""
        from mmdata.tokenizers import load_tokenizer_set

        if self.hashes:  # a worker's, after setup: the tokenizers it encodes with
            return {"tokenizers": dict(sorted(self.hashes.items()))}
        try:
            found = load_tokenizer_set(self.cfg.tokenizers)
        except (ConfigError, OSError, ValueError):
            return {"tokenizers": None}
        return {"tokenizers": {name: c["hash"] for name, c in sorted(found.items())}}

    def __getstate__(self):  # ship the config to Ray workers, never loaded models
        return {"cfg": self.cfg, "resources": self.resources, "toks": None, "hashes": {}}

    def setup(self) -> None:
        from mmdata.tokenizers import load_tokenizer_set, load_tokenizers

        check_needs(self.needs(), "the quantize stage")

        device = self.cfg.device
        if device == "cuda":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.toks = load_tokenizers(self.cfg.tokenizers, device=device)
        self.hashes = {name: c["hash"] for name, c in load_tokenizer_set(self.cfg.tokenizers).items()}

    def process(self, item: Clip, out_dir: Path, work: WorkDir) -> QuantizeOutput:
        """One clip: the batch path with a batch of one, so both give the same tokens."""
        result = self.process_batch([item], [self.load(item, work)], [out_dir], work)[0]
        if isinstance(result, Exception):
            raise result
        return self.write_result(item, result, out_dir)

    def load(self, item: Clip, work: WorkDir) -> QuantizeInput:
        from mmdata.media_io import read_audio
        from mmdata.tokenizers.fit import audio_input, clip_text, frames_input
        from mmdata.tokenizers.speech import SAMPLE_RATE
        from mmdata.tokenizers.vision import load_frames

        if self.toks is None:
            self.setup()
        upstream_output(work, "filter", item.key)  # a clip the filter stage rejected is never a sample
        upstream_output(work, "dedup", item.key)  # nor a later copy of a clip kept
        x = QuantizeInput()
        if "vision" in self.toks:
            if upstream_output(work, "frames", item.key) is None:
                x.skipped["vision"] = "no frames stage output"
            elif (fr := frames_input(work, item.key)) is None:
                x.skipped["vision"] = "no video"
            else:
                x.frames = load_frames(fr.paths)
        if "speech" in self.toks:
            if upstream_output(work, "audio", item.key) is None:
                x.skipped["speech"] = "no audio stage output"
            elif (a := audio_input(work, item.key)) is None:
                x.skipped["speech"] = "no audio"
            else:
                x.wav = read_audio(a.path, SAMPLE_RATE)  # ffmpeg resamples when the audio stage used another rate
                speech = self.toks["speech"]
                if speech.features_on_cpu:  # here, in the reading threads, not between device batches
                    x.speech_features, x.wav = speech.frame_features(x.wav), None
        if "text" in self.toks:
            x.text = clip_text(work, item)
            if x.text is None:
                x.skipped["text"] = "no transcript or caption"
        return x

    def process_batch(self, items: list[Clip], loaded: list[QuantizeInput], out_dirs: list[Path],
                      work: WorkDir) -> list[Tokens]:
        """The batch's tokens, nothing written: `write_result` writes them, in the runner's commit thread."""
        if self.toks is None:
            self.setup()
        tokens: list[dict[str, np.ndarray]] = [{} for _ in items]
        has = [k for k, x in enumerate(loaded) if x.frames is not None]
        if has:
            vision = self.toks["vision"]
            per_pass = self.cfg.batch_frames if vision.device == "cuda" else min(self.cfg.batch_frames, CPU_BATCH_FRAMES)
            enc = vision.encode_batch([loaded[k].frames for k in has], per_pass)
            for k, t in zip(has, enc):
                tokens[k]["vision"] = t
        has = [k for k, x in enumerate(loaded) if x.wav is not None]
        if has:
            for k, t in zip(has, self.toks["speech"].encode_batch([loaded[k].wav for k in has])):
                tokens[k]["speech"] = t
        has = [k for k, x in enumerate(loaded) if x.speech_features is not None]
        if has:
            for k, t in zip(has, self.toks["speech"].encode_features([loaded[k].speech_features for k in has])):
                tokens[k]["speech"] = t
        for k, x in enumerate(loaded):
            if x.text is not None:
                tokens[k]["text"] = self.toks["text"].encode(x.text)
        return [Tokens(toks, x.skipped) for x, toks in zip(loaded, tokens)]

    def write_result(self, item: Clip, result: Tokens, out_dir: Path) -> QuantizeOutput:
        modalities, hashes, shapes, skipped = [], {}, {}, {}
        tokens = result.tokens
        for name in ("vision", "speech", "text"):
            if name not in self.toks:
                continue
            if name not in tokens:
                skipped[name] = result.skipped.get(name, "")
                continue
            fname = FILES[name]
            np.save(out_dir / fname, tokens[name], allow_pickle=False)
            modalities.append(name)
            hashes[name] = self.hashes[name]
            shapes[fname] = list(tokens[name].shape)
        if not modalities:
            raise ItemError("no_modality", f"clip {item.key} has nothing to quantize: "
                            + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        return QuantizeOutput(modalities=tuple(modalities), tokenizers=hashes, shapes=shapes, skipped=skipped,
                              rates={"stok_hz": 50.0} if "speech" in modalities else {})
