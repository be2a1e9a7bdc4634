"""The quantize stage: every clip's frames, audio and transcript -> discrete tokens.

    WORK/quantize/<clip_key>/vtok.npy   uint16 [T, 14, 14]   vision tokens, one grid per sampled frame
                             stok.npy   uint16 [L]           speech units at 50 Hz (L = samples // 320)
                             ttok.npy   int32  [N]           text token ids
                             meta.json  {"modalities", "tokenizers": {name: hash}, "shapes", "rates", "skipped"}

Each file exists only when the clip has that modality and the set has that tokenizer. Tokenizers load
once per worker in `setup()`. The stage declares one GPU when `device` allows it; it relies on the
runner (executors.RayExecutor) to drop that request on a cluster without GPUs, since Ray would wait
forever for a GPU that does not exist, and `setup()` then falls back to the CPU. Encoding is a pure
function of the inputs and the tokenizer files, so the same input gives the same tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdata.config import check
from mmdata.environment import check_needs
from mmdata.errors import ItemError
from mmdata.pipelines.base import Resources, Stage
from mmdata.records import Clip
from mmdata.workdir import WorkDir

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class QuantizeConfig:
    tokenizers: str = ""  # the tokenizer set folder (default: WORK/tokenizers, filled in by the command)
    device: str = "auto"  # auto: a GPU when the worker has one
    memory_mb: int = 2048  # per-worker memory; frame batches are sized to a quarter of it

    def __post_init__(self):
        check(bool(self.tokenizers), "QuantizeConfig", "tokenizers", self.tokenizers, "a tokenizer set folder")
        check(self.device in DEVICES, "QuantizeConfig", "device", self.device, f"one of {DEVICES}")
        check(self.memory_mb >= 256, "QuantizeConfig", "memory_mb", self.memory_mb, "256 or more")

    @property
    def batch_frames(self) -> int:
        """Frames decoded and encoded at once: a quarter of the memory over ~4x a float32 frame's size
        (the decoded frame, its patch tensor, features and scores all live at once)."""
        from mmdata.tokenizers.vision import FRAME_BYTES

        return max(1, int(self.memory_mb * 1024 * 1024 / 4 // (4 * FRAME_BYTES)))


class QuantizeStage(Stage):
    name = "quantize"

    def __init__(self, cfg: QuantizeConfig):
        self.cfg = cfg
        wants_gpu = cfg.device != "cpu"
        # gpus=1 is a request the runner drops on a GPU-less cluster (see the module docstring)
        self.resources = Resources(cpus=1.0, gpus=1.0 if wants_gpu else 0.0, memory_mb=cfg.memory_mb)
        self.toks: dict[str, Any] | None = None
        self.hashes: dict[str, str] = {}

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

    def process(self, item: Clip, out_dir: Path, work: WorkDir) -> dict[str, Any]:
        if self.toks is None:
            self.setup()
        meta: dict[str, Any] = {"modalities": [], "tokenizers": {}, "shapes": {}, "rates": {}, "skipped": {}}
        for name, encode in (("vision", self._vision), ("speech", self._speech), ("text", self._text)):
            if name not in self.toks:
                continue
            tokens, why = encode(item, work)
            if tokens is None:
                meta["skipped"][name] = why
                continue
            fname = {"vision": "vtok.npy", "speech": "stok.npy", "text": "ttok.npy"}[name]
            np.save(out_dir / fname, tokens, allow_pickle=False)
            meta["modalities"].append(name)
            meta["tokenizers"][name] = self.hashes[name]
            meta["shapes"][fname] = list(tokens.shape)
        if "speech" in meta["modalities"]:
            meta["rates"]["stok_hz"] = 50.0
        if not meta["modalities"]:
            raise ItemError("no_modality", f"clip {item.key} has nothing to quantize: "
                            + "; ".join(f"{k}: {v}" for k, v in meta["skipped"].items()))
        return meta

    def _upstream(self, work: WorkDir, stage: str, key: str) -> dict | None:
        """An upstream stage's meta; a stage that ran but has no output for this clip is an error (the
        clip failed there), a stage that never ran means the modality is simply not in this corpus."""
        meta = work.meta(stage, key)
        if meta is None and (work.root / stage).is_dir():
            raise ItemError(f"missing_{stage}", f"clip {key} has no {stage} output in {work.root / stage}; "
                            f"it failed there or has not run yet: see `mmdata {stage} --work {work.root}`")
        return meta

    def _vision(self, clip: Clip, work: WorkDir):
        from mmdata.tokenizers.fit import frames_input

        if self._upstream(work, "frames", clip.key) is None:
            return None, "no frames stage output"
        fr = frames_input(work, clip.key)
        if fr is None:
            return None, "no video"
        return self.toks["vision"].encode_files(fr.paths, self.cfg.batch_frames), ""

    def _speech(self, clip: Clip, work: WorkDir):
        from mmdata.media_io import read_audio
        from mmdata.tokenizers.fit import audio_input
        from mmdata.tokenizers.speech import SAMPLE_RATE

        if self._upstream(work, "audio", clip.key) is None:
            return None, "no audio stage output"
        a = audio_input(work, clip.key)
        if a is None:
            return None, "no audio"
        wav = read_audio(a.path, SAMPLE_RATE)  # ffmpeg resamples when the audio stage used another rate
        tok = self.toks["speech"]
        return tok.encode(wav), ""

    def _text(self, clip: Clip, work: WorkDir):
        from mmdata.tokenizers.fit import clip_text

        text = clip_text(work, clip)
        if text is None:
            return None, "no transcript or caption"
        return self.toks["text"].encode(text), ""
