"""Voice activity detection: where in a clip's audio someone speaks, as [(start_s, end_s)].

Two detectors, chosen by name (`VADS`):
- `silero`: the Silero VAD network (the `silero-vad` package ships its TorchScript weights, so it works
  offline): a speech probability per 32 ms window at 16 kHz, turned into regions with hysteresis.
  Robust to breath, hum and background noise.
- `energy`: frame energy against the noise floor (`energy.voiced_regions`): no weights, but noise and
  breaths above the floor count as speech.

The Silero file is loaded straight from the package folder with torch.jit (the package's own loader
imports a module that sets torch's thread count for the whole process).
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mmdata.environment import import_library
from mmdata.errors import ConfigError
from mmdata.transcripts.energy import voiced_regions

Regions = list[tuple[float, float]]
SILERO_RATE = 16000
SILERO_WINDOW = 512  # samples per probability at 16 kHz


@dataclass(frozen=True)
class SileroConfig:
    threshold: float = 0.5  # speech starts when the probability reaches this ...
    release: float = 0.35  # ... and ends once it stays below this
    min_silence_s: float = 0.1  # for at least this long (shorter dips stay inside the region)
    onset_lead_s: float = 0.032  # the probability rises a window after speech begins (measured: bench/word_timing.py)


def silero_weights() -> Path:
    """The TorchScript file inside the installed silero-vad package."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("align.vad = 'silero' needs the silero-vad package (it ships the weights): "
                          "reinstall from the lock (`make setup`), or use align.vad = 'energy'")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.jit"
    if not path.is_file():
        raise ConfigError(f"the silero-vad package has no weights file at {path}; reinstall it")
    return path


class SileroVad:
    """Loads the network once (per worker); `regions(audio, sr)` needs 16 kHz mono float audio."""

    def __init__(self, cfg: SileroConfig = SileroConfig()):
        torch = import_library("torch")
        self.cfg = cfg
        with warnings.catch_warnings():  # torch 2.11 calls TorchScript deprecated; the package ships only that
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(silero_weights()), map_location="cpu").eval()

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability per SILERO_WINDOW samples (the last window zero-padded)."""
        import torch

        n = -(-audio.size // SILERO_WINDOW)
        x = np.zeros(n * SILERO_WINDOW, np.float32)
        x[:audio.size] = audio
        chunks = torch.from_numpy(x).view(n, SILERO_WINDOW)
        self.model.reset_states()  # the network is recurrent: every call starts from silence
        with torch.inference_mode():
            return np.array([float(self.model(c, SILERO_RATE)) for c in chunks], dtype=np.float64)

    def regions(self, audio: np.ndarray, sr: int) -> Regions:
        if sr != SILERO_RATE:
            raise ValueError(f"silero VAD reads {SILERO_RATE} Hz audio, not {sr} Hz")
        return hysteresis(self.probabilities(audio), SILERO_WINDOW / sr, audio.size / sr, self.cfg)


def hysteresis(probs: np.ndarray, hop_s: float, duration_s: float, cfg: SileroConfig) -> Regions:
    """Regions where the probability rose to `threshold`, each ending where it then stayed below
    `release` for `min_silence_s`."""
    out: Regions = []
    start: float | None = None
    quiet_since: float | None = None
    for i, p in enumerate(probs):
        t = i * hop_s
        if start is None:
            if p >= cfg.threshold:
                start, quiet_since = max(0.0, t - cfg.onset_lead_s), None
            continue
        if p >= cfg.release:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = t
        if quiet_since is not None and t + hop_s - quiet_since >= cfg.min_silence_s:
            out.append((start, quiet_since))
            start = quiet_since = None
    if start is not None:
        out.append((start, quiet_since if quiet_since is not None else duration_s))
    return [(round(s, 3), round(min(e, duration_s), 3)) for s, e in out if e > s]


class EnergyVad:
    def regions(self, audio: np.ndarray, sr: int) -> Regions:
        return voiced_regions(audio, sr)


VADS: dict[str, Callable[[], SileroVad | EnergyVad]] = {"silero": SileroVad, "energy": EnergyVad}


def load_vad(name: str) -> SileroVad | EnergyVad:
    if name not in VADS:
        raise ConfigError(f"align.vad = {name!r} is not one of {sorted(VADS)}")
    return VADS[name]()
