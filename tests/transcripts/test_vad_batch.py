"""Batched Silero VAD (several streams at once, the encoder over blocks of windows, only the LSTM cell
stepping through time) against the network's own window-by-window API, on real espeak-ng speech: the same
probabilities within float rounding and the very same speech regions, whatever the batch and block."""
from __future__ import annotations

import numpy as np
import pytest

from mmdata.testing.speech import SAMPLE_RATE, spoken_corpus
from mmdata.transcripts import vad as vad_module
from mmdata.transcripts.vad import SILERO_WINDOW, SileroVad, hysteresis, stepwise_probabilities


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    speech = spoken_corpus("set white with two soon please".split(), speeds=(150, 200),
                           cache=tmp_path_factory.mktemp("said")).wav
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = (0.01 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    # lengths that are and are not whole windows, one shorter than a window, an empty one
    return [speech, speech[:speech.size // 2] * 0.5, speech[3001:], tone, noise, speech[:100],
            np.zeros(0, np.float32), speech[:SILERO_WINDOW * 40]]


@pytest.fixture(scope="module")
def vad():
    return SileroVad()


def _reference(vad, audio):
    probs = stepwise_probabilities(vad.model, audio)
    return probs, hysteresis(probs, SILERO_WINDOW / SAMPLE_RATE, audio.size / SAMPLE_RATE, vad.cfg)


@pytest.mark.parametrize("block", [2048, 7])  # one block for every stream; many, with rows leaving mid-block
def test_batched_equals_window_by_window(vad, streams, monkeypatch, block):
    monkeypatch.setattr(vad_module, "ENCODER_BLOCK", block)
    want = [_reference(vad, a) for a in streams]
    got = vad.probabilities_many(streams)
    for (probs, _), p in zip(want, got):
        assert p.shape == probs.shape
        assert np.abs(p - probs).max(initial=0.0) < 1e-4
    assert vad.regions_many(streams, SAMPLE_RATE) == [r for _, r in want]
    assert want[0][1] and not want[3][1] and not want[6][1]  # speech found in speech only


def test_one_stream_alone_is_the_same_as_in_a_batch(vad, streams):
    alone = [vad.regions(a, SAMPLE_RATE) for a in streams]
    assert alone == vad.regions_many(streams, SAMPLE_RATE)
    assert vad.regions_many([], SAMPLE_RATE) == []
    again = vad.probabilities(streams[0])
    assert np.array_equal(again, vad.probabilities(streams[0]))  # the same audio: the same numbers, every time
