"""Quality numbers on hand-made code streams whose answers are known."""
import numpy as np
import pytest

from mmdata.tokenizers.report import code_stats, purity_pnmi, render, word_frame_labels


def test_code_stats_counts_usage_dead_codes_and_perplexity():
    st = code_stats(np.array([0, 0, 1, 1, 2, 2, 3, 3]), vocab_size=8)
    assert st == {"vocab_size": 8, "tokens": 8, "used": 4, "usage": 0.5, "dead": 4, "perplexity": 4.0}
    assert code_stats(np.zeros(10, np.uint16), 4)["perplexity"] == 1.0
    assert code_stats(np.zeros(0, np.int64), 4)["used"] == 0


def test_purity_and_pnmi_extremes():
    labels = np.repeat(np.arange(4), 25)
    perfect = purity_pnmi(labels * 3 + 1, labels)  # a one-to-one relabelling
    assert perfect["code_purity"] == perfect["word_purity"] == perfect["pnmi"] == 1.0
    rng = np.random.default_rng(0)
    noise = purity_pnmi(rng.integers(0, 4, 40000), np.tile(np.arange(4), 10000))
    assert noise["pnmi"] < 0.01 and noise["code_purity"] == pytest.approx(0.25, abs=0.02)
    # frames outside words (-1) are left out
    assert purity_pnmi(np.array([5, 5, 7]), np.array([0, 0, -1]))["frames"] == 2


def test_word_frame_labels_use_frame_centres():
    words = [{"w": "Hello,", "start": 0.0, "end": 0.05}, {"w": "world", "start": 0.1, "end": 0.2}]
    vocab = {}
    labels = word_frame_labels(words, 12, vocab)
    # centres 0.0125, 0.0325 | 0.0525 (outside) ... 0.1125 .. 0.1925 | 0.2125 outside
    assert labels.tolist() == [0, 0, -1, -1, -1, 1, 1, 1, 1, 1, -1, -1]
    assert vocab == {"hello": 0, "world": 1}


def test_render_names_every_number():
    rep = {"speech": {"vocab_size": 8, "hash": "ab" * 32, "source": "x",
                      "usage_stats": code_stats(np.arange(6), 8),
                      "word_labels": {"frames": 10, "labels": 2, "code_purity": 0.9, "word_purity": 0.5, "pnmi": 0.4}}}
    text = render(rep)
    assert "used 6 (75.0%)" in text and "dead 2" in text and "PNMI 0.400" in text
