"""Voice activity detection: where in a clip's audio someone speaks, as [(start_s, end_s)].

Two detectors, chosen by name (`VADS`):
- `silero`: the Silero VAD network (the `silero-vad` package ships its TorchScript weights, so it works
  offline): a speech probability per 32 ms window at 16 kHz, turned into regions with hysteresis.
  Robust to breath, hum and background noise.
- `energy`: frame energy against the noise floor (`energy.voiced_regions`): no weights, but noise and
  breaths above the floor count as speech.

The Silero file is loaded straight from the package folder with torch.jit (the package's own loader
imports a module that sets torch's thread count for the whole process).

Batched Silero (`SileroVad.probabilities_many`): the network is an STFT + convolutional encoder that sees one
window (512 samples and the 64 before them) and knows nothing of the others, then one LSTM cell that carries
the state from window to window, then a small convolutional head on the cell's output. Only the LSTM cell is
recurrent, so the encoder and the head run over thousands of windows of every stream at once, and the cell's
weights run as a torch LSTM over whole sequences, one row per stream (a batch of clips: padded to the longest,
a row leaving the batch at the first block after its stream ends). That is 6x (one long source) to 9x (a batch of
10 s clips) faster than calling the network window by window (its own API, `stepwise_probabilities`,
kept as the reference) and equal to it within float rounding (~4e-6 in a probability, the same regions:
tests/transcripts/test_vad_batch.py); the same audio in the same batch gives the same numbers.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmdata.environment import import_library
from mmdata.errors import ConfigError
from mmdata.transcripts.energy import voiced_regions

Regions = list[tuple[float, float]]
SILERO_RATE = 16000
SILERO_WINDOW = 512  # samples per probability at 16 kHz
SILERO_CONTEXT = 64  # samples of the window before that the network sees with each window
ENCODER_BLOCK = 2048  # windows through the encoder at once per stream: bounds memory on hour-long sources


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
        self.net = _parts(self.model)

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability per SILERO_WINDOW samples (the last window zero-padded)."""
        return self.probabilities_many([audio])[0]

    def probabilities_many(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """`probabilities` of several streams at once (see the module's docstring)."""
        import torch

        n = [_windows(a.size) for a in audios]
        order = sorted(range(len(audios)), key=lambda i: -n[i])  # longest first: rows still running are a prefix
        longest = n[order[0]] if audios else 0
        if not longest:
            return [np.zeros(0) for _ in audios]
        x = np.zeros((len(audios), SILERO_CONTEXT + longest * SILERO_WINDOW), np.float32)
        for row, i in enumerate(order):
            x[row, SILERO_CONTEXT:SILERO_CONTEXT + audios[i].size] = audios[i]
        lengths = np.array([n[i] for i in order])
        probs = np.zeros((len(audios), longest), np.float64)
        h = c = torch.zeros(1, len(audios), self.net.hidden)
        with torch.inference_mode():
            windows = torch.from_numpy(x).unfold(1, SILERO_WINDOW + SILERO_CONTEXT, SILERO_WINDOW)  # [B, T, 576]
            for t0 in range(0, longest, ENCODER_BLOCK):
                t1 = min(t0 + ENCODER_BLOCK, longest)
                rows = int((lengths > t0).sum())  # streams that end before this block leave the batch
                feats = self.net.encode(windows[:rows, t0:t1].reshape(-1, windows.shape[-1]))
                # the LSTM is causal: a stream's windows after its end (zeros) change none of its own outputs
                out, (h, c) = self.net.lstm(feats.reshape(rows, t1 - t0, -1), (h[:, :rows], c[:, :rows]))
                probs[:rows, t0:t1] = self.net.head(out.reshape(rows * (t1 - t0), -1)).reshape(rows, -1).numpy()
        result: list[np.ndarray] = [np.zeros(0)] * len(audios)
        for row, i in enumerate(order):
            result[i] = probs[row, :n[i]]
        return result

    def regions(self, audio: np.ndarray, sr: int) -> Regions:
        return self.regions_many([audio], sr)[0]

    def regions_many(self, audios: list[np.ndarray], sr: int) -> list[Regions]:
        if sr != SILERO_RATE:
            raise ValueError(f"silero VAD reads {SILERO_RATE} Hz audio, not {sr} Hz")
        return [hysteresis(p, SILERO_WINDOW / sr, a.size / sr, self.cfg)
                for a, p in zip(audios, self.probabilities_many(audios))]


def _windows(samples: int) -> int:
    return -(-samples // SILERO_WINDOW)


@dataclass(frozen=True)
class _Parts:
    """The 16 kHz network of silero-vad 6's TorchScript file, in its three parts."""

    encode: Callable  # [N, 576] samples -> [N, hidden, 1] features (the STFT, then the encoder)
    lstm: Any  # torch.nn.LSTM with the weights of the file's LSTMCell: [B, T, hidden] in one call
    head: Callable  # [N, hidden] cell outputs -> [N] speech probabilities
    hidden: int


def _parts(model) -> _Parts:
    """The network's parts; its LSTMCell becomes an nn.LSTM over whole sequences (one call instead of one per
    window: ~10x faster on a CPU thread, equal within 4e-6)."""
    import torch

    try:
        net = model._model
        stft, encoder, cell, head = net.stft, net.encoder, net.decoder.rnn, net.decoder.decoder
        hidden = int(cell.hidden_size)
        lstm = torch.nn.LSTM(int(cell.input_size), hidden, batch_first=True).eval()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(lstm, f"{name}_l0").copy_(getattr(cell, name))
    except (AttributeError, RuntimeError) as e:
        raise ConfigError(f"the silero-vad package's network is not laid out as mmdata reads it ({e}); "
                          "install the version in uv.lock (`make setup`)") from e
    return _Parts(encode=lambda w: encoder(stft(w)).squeeze(-1), lstm=lstm,
                  head=lambda hs: head(hs.unsqueeze(-1)).squeeze(-1).mean(-1), hidden=hidden)


def stepwise_probabilities(model, audio: np.ndarray) -> np.ndarray:
    """The network's own API, one window per call: the reference the batched path is checked against
    (tests) and timed against (bench/filters.py)."""
    import torch

    n = _windows(audio.size)
    x = np.zeros(n * SILERO_WINDOW, np.float32)
    x[:audio.size] = audio
    model.reset_states()  # the network is recurrent: every call starts from silence
    with torch.inference_mode():
        return np.array([float(model(w, SILERO_RATE)) for w in torch.from_numpy(x).view(n, SILERO_WINDOW)])


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

    def regions_many(self, audios: list[np.ndarray], sr: int) -> list[Regions]:
        return [voiced_regions(a, sr) for a in audios]


VADS: dict[str, Callable[[], SileroVad | EnergyVad]] = {"silero": SileroVad, "energy": EnergyVad}


def load_vad(name: str) -> SileroVad | EnergyVad:
    if name not in VADS:
        raise ConfigError(f"align.vad = {name!r} is not one of {sorted(VADS)}")
    return VADS[name]()
